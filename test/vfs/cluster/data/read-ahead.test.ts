/*
 * Read-ahead: a sequential reader finds the next blocks already in the
 * block cache (fetched while it was served the previous ones); random
 * reads prefetch nothing; the window and the state kept are bounded.
 */
import t from 'tap'
import { createFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { ReadAhead } from '../../../../vfs/cluster/data/read-ahead.ts'
import { prng } from '../../../helpers/prng.ts'
import { fixture } from './setup.ts'

const now = { sec: 1_700_000_000, nsec: 0 }
const small = { chunkSize: 256 * 1024, blockSize: 16 * 1024 }

t.test('the window doubles from one block to the maximum', async (t) => {
  const ra = new ReadAhead({ maxWindow: 64, minWindow: 8, slack: 16 })
  t.equal(ra.access(1n, 0, 4, 1000), undefined, 'a first read is not yet a stream')
  t.strictSame(ra.access(1n, 4, 4, 1000), { from: 8, to: 16 }, 'second in order: one block ahead')
  t.strictSame(ra.access(1n, 8, 4, 1000), { from: 12, to: 28 }, 'then two')
  t.strictSame(ra.access(1n, 12, 4, 1000), { from: 16, to: 48 }, 'then four')
  t.strictSame(ra.access(1n, 16, 4, 1000), { from: 20, to: 84 }, 'capped at maxWindow past the reader')
  t.strictSame(ra.access(1n, 20, 4, 1000), { from: 24, to: 88 }, 'and moves with it')
  t.strictSame(ra.access(1n, 28, 4, 1000), { from: 32, to: 96 }, 'a read a little ahead (out of order) is still sequential')
  t.strictSame(ra.access(1n, 24, 4, 1000), { from: 32, to: 96 }, 'and so is the one it overtook')
  t.equal(ra.access(1n, 500, 4, 1000), undefined, 'a jump starts over')
  t.strictSame(ra.access(1n, 504, 4, 510), { from: 508, to: 510 }, 'never past the end of the file')
  t.equal(ra.access(1n, 508, 2, 510), undefined, 'nothing left to prefetch')
  const off = new ReadAhead({ maxWindow: 0, minWindow: 8 })
  off.access(2n, 0, 4, 100)
  t.equal(off.access(2n, 4, 4, 100), undefined, 'maxWindow 0: no read-ahead')
  const few = new ReadAhead({ maxWindow: 64, minWindow: 8, maxFiles: 3 })
  for (let i = 0n; i < 100n; i++) few.access(i, 0, 4, 100)
  t.equal(few.tracked, 3, 'state for at most maxFiles files')
})

t.test('a sequential reader is served from prefetched blocks; random reads prefetch nothing', async (t) => {
  const fx = await fixture(t)
  const writer = createFileData({ db: fx.db, store: fx.store, sid: 1n, ...small })
  t.teardown(() => writer.close())
  const ino = await fx.newFile()
  const blocks = 40
  const size = blocks * small.blockSize
  const data = Buffer.alloc(size)
  for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 14)) & 0xff
  await writer.write(ino, 0n, data, 'file_sync', now)

  const cacheBytes = 32 * small.blockSize
  const reader = createFileData({ db: fx.db, store: fx.store, sid: 2n, ...small, cacheBytes })
  t.teardown(() => reader.close())
  const step = 4096
  let maxCached = 0
  for (let off = 0; off < size; off += step) {
    const got = await reader.read(ino, BigInt(off), step, BigInt(size))
    if (!got.equals(data.subarray(off, off + step))) t.fail(`bytes at ${off} differ`)
    // Let the prefetches started by this read run, as the next request's network time would.
    await new Promise((r) => setImmediate(r))
    maxCached = Math.max(maxCached, reader.blocks.size)
  }
  await reader.idle()
  const { hits, misses, prefetched } = reader.blocks
  t.comment(`sequential: ${hits} hits, ${misses} misses, ${prefetched} prefetched of ${blocks} blocks`)
  t.ok(prefetched >= blocks - 3, 'nearly every block was prefetched')
  t.ok(misses <= 3, 'the reader fetched at most the first blocks itself')
  t.ok(maxCached <= cacheBytes, `the cache stayed within its budget (${maxCached} bytes)`)
  t.equal(prefetched + misses, blocks, 'each block fetched once')

  const seed = Number(process.env['TSNFS_SEED'] ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const rnd = prng(seed)
  const cold = createFileData({ db: fx.db, store: fx.store, sid: 3n, ...small, cacheBytes })
  t.teardown(() => cold.close())
  for (let i = 0; i < 30; i++) {
    // Block-aligned reads 12 or more blocks from the last (past the slack of 4 blocks): no stream forms.
    const block = (i * 13 + Math.floor(rnd() * 2)) % blocks
    const off = block * small.blockSize
    const got = await cold.read(ino, BigInt(off), step, BigInt(size))
    if (!got.equals(data.subarray(off, off + step))) t.fail(`random bytes at ${off} differ`)
  }
  await cold.idle()
  t.equal(cold.blocks.prefetched, 0, 'random reads prefetch nothing')

  const none = createFileData({ db: fx.db, store: fx.store, sid: 4n, ...small, cacheBytes, readAheadBytes: 0 })
  t.teardown(() => none.close())
  for (let off = 0; off < size; off += step) await none.read(ino, BigInt(off), step, BigInt(size))
  await none.idle()
  t.equal(none.blocks.prefetched, 0, 'readAheadBytes 0 turns it off')
  t.equal(none.blocks.misses, blocks, 'then every block is a wait')
})
