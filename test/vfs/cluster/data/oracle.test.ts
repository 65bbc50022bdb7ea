/*
 * Random writes (UNSTABLE, DATA_SYNC, FILE_SYNC), flushes, truncations,
 * compactions and reads on two servers sharing one database and store,
 * checked against an in-memory copy of every file. Small chunks and blocks
 * so writes cross both. TSNFS_SEED reproduces a run.
 */
import t from 'tap'
import { createFileData, type ClusterFileData } from '../../../../vfs/cluster/data/file-data.ts'
import { checkReferences } from '../../../../vfs/cluster/data/fsck.ts'
import { collectGarbage } from '../../../../vfs/cluster/data/gc.ts'
import { COUNTER } from '../../../../vfs/cluster/schema.ts'
import type { Stability } from '../../../../vfs/types.ts'
import { counter, fixture, nodeSize } from './setup.ts'

const layout = { chunkSize: 8192, blockSize: 2048 }

function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('random operations on two servers match an in-memory oracle', async (t) => {
  const seed = Number(process.env['TSNFS_SEED'] ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const rand = rng(seed)
  const int = (n: number): number => Math.floor(rand() * n)
  const fx = await fixture(t)
  const servers: ClusterFileData[] = [1n, 2n].map((sid) => createFileData({ db: fx.db, store: fx.store, sid, ...layout, compactAt: 6, cacheBytes: 64 * 1024 }))
  t.teardown(async () => {
    for (const s of servers) await s.close()
  })
  const files = await Promise.all([0, 1, 2].map(async () => ({ inode: await fx.newFile(), oracle: Buffer.alloc(0), at: 0 })))
  let clock = 1_700_000_000
  let reads = 0

  const sizeOn = async (f: (typeof files)[number]): Promise<bigint> => {
    const db = await nodeSize(fx.db, f.inode)
    const st = servers[f.at]?.staged(f.inode)
    return st !== undefined && st.size > db ? st.size : db
  }
  const check = async (f: (typeof files)[number], server: ClusterFileData, off: number, len: number): Promise<boolean> => {
    reads++
    const size = await sizeOn(f)
    if (size !== BigInt(f.oracle.length)) {
      t.fail(`inode ${f.inode}: size ${size}, oracle ${f.oracle.length}`)
      return false
    }
    const got = await server.read(f.inode, BigInt(off), len, size)
    const want = f.oracle.subarray(Math.min(off, f.oracle.length), Math.min(off + len, f.oracle.length))
    if (!got.equals(want)) {
      t.fail(`inode ${f.inode}: read ${off}+${len} differs`)
      return false
    }
    return true
  }

  let ok = true
  for (let step = 0; step < 300 && ok; step++) {
    const f = files[int(files.length)]
    if (f === undefined) continue
    const server = servers[f.at]
    if (server === undefined) continue
    const other = servers[1 - f.at]
    const op = int(100)
    clock++
    if (op < 45) {
      const max = Math.max(f.oracle.length, 1)
      const off = int(max + layout.chunkSize)
      const len = 1 + int(op < 5 ? 2 * layout.chunkSize : 3000)
      const data = Buffer.alloc(len)
      for (let i = 0; i < len; i++) data[i] = 1 + int(255)
      const stable: Stability = (['unstable', 'unstable', 'data_sync', 'file_sync'] as const)[int(4)] ?? 'unstable'
      await server.write(f.inode, BigInt(off), data, stable, { sec: clock, nsec: 0 })
      if (off + len > f.oracle.length) {
        const grown = Buffer.alloc(off + len)
        f.oracle.copy(grown)
        f.oracle = grown
      }
      data.copy(f.oracle, off)
      if (stable !== 'unstable') other?.invalidate(f.inode)
    } else if (op < 55) {
      await server.flush(f.inode)
      other?.invalidate(f.inode)
    } else if (op < 63) {
      // setattr(size): flush, then truncate and set the size in one transaction.
      await server.flush(f.inode)
      const newSize = int(f.oracle.length + layout.chunkSize)
      const oldSize = await nodeSize(fx.db, f.inode)
      await fx.db.transaction(async (tx) => {
        await server.truncate(tx, f.inode, oldSize, BigInt(newSize))
        await tx.query('UPDATE tsnfs_node SET size = $2 WHERE inode = $1', [f.inode, newSize])
      })
      other?.invalidate(f.inode)
      const resized = Buffer.alloc(newSize)
      f.oracle.copy(resized, 0, 0, Math.min(newSize, f.oracle.length))
      f.oracle = resized
    } else if (op < 68) {
      // The client moves to the other server: close-to-open, so flush first.
      await server.flush(f.inode)
      other?.invalidate(f.inode)
      f.at = 1 - f.at
    } else if (op < 72) {
      await server.flush(f.inode)
      const chunks = Math.ceil(f.oracle.length / layout.chunkSize)
      if (chunks > 0) await server.compact(f.inode, int(chunks))
      other?.invalidate(f.inode)
    } else {
      const off = int(f.oracle.length + 100)
      ok = await check(f, server, off, 1 + int(3 * layout.chunkSize))
    }
  }
  for (const s of servers) {
    await s.flushAll()
    await s.idle()
  }
  for (const f of files) {
    for (const s of servers) {
      s.invalidate(f.inode)
      if (ok) ok = await check(f, s, 0, f.oracle.length + 10)
    }
  }
  t.ok(ok, `every read matched (${reads} reads)`)
  await servers[0]?.reap()
  for (const s of servers) await s.flushUsage()
  const fsck = await checkReferences(fx.db, fx.store, layout)
  t.strictSame(fsck.problems, [], 'fsck finds nothing wrong')
  const gc = await collectGarbage(fx.db, fx.store, { minAgeMs: 0, blockSize: layout.blockSize })
  t.equal(gc.orphans, 0, 'no orphan blocks')
  const r = await fx.db.query('SELECT COALESCE(sum(size), 0) AS b FROM tsnfs_slice_ref WHERE refs > 0')
  t.ok(Number(r.rows[0]?.['b']) > 0)
  t.equal(await counter(fx.db, COUNTER.usedBytes), Number(r.rows[0]?.['b']), 'usedBytes is the live slices\' bytes')
})
