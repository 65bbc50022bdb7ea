/*
 * vfs/replica/id-map.ts: vids survive reopen (bindings, counter, epoch, applied position), a
 * torn log tail is cut, damage is EIO with a message naming it, compaction keeps everything,
 * and concurrent flushes share their fsync.
 */
import t from 'tap'
import { appendFileSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { VfsError } from '../../../vfs/errors.ts'
import { COUNTER_BITS, IdMap, ROOT_VID } from '../../../vfs/replica/id-map.ts'
import { encodeRecord, header, LOG_FILE, MAX_PAYLOAD, SNAP_FILE } from '../../../vfs/replica/id-map-format.ts'

const ROOT = { id: 2n, gen: 7 }

t.test('a new map: root bound, vids from epoch << 40, gen 1', async (t) => {
  const dir = t.testdir()
  const map = await IdMap.open({ dir, root: ROOT, epoch: 3 })
  t.teardown(() => map.close())
  t.strictSame(map.root(), ROOT_VID)
  t.strictSame(map.local(ROOT_VID), ROOT)
  t.strictSame(map.vidOf(ROOT), ROOT_VID)
  t.equal(map.epoch, 3)
  t.strictSame(map.allocate(), { id: (3n << COUNTER_BITS) | 1n, gen: 1 })
  t.strictSame(map.allocate(), { id: (3n << COUNTER_BITS) | 2n, gen: 1 })
  t.equal(map.position(), 0n)
})

t.test('bindings, counter, epoch and position survive reopen; generations are checked', async (t) => {
  const dir = t.testdir()
  const map = await IdMap.open({ dir, root: ROOT })
  const a = map.allocate()
  const b = map.allocate()
  const c = map.allocate()
  map.bind(a, { id: 10n, gen: 1 })
  map.bind(b, { id: 11n, gen: 1 })
  map.bind(c, { id: 12n, gen: 1 })
  map.unbind(b)
  // One object has one vid: binding c's object to a new vid drops c.
  const d = map.allocate()
  map.bind(d, { id: 12n, gen: 1 })
  await map.flush(42n)
  t.equal(map.position(), 42n)
  await map.close()

  const again = await IdMap.open({ dir, root: ROOT, epoch: 9 })
  t.teardown(() => again.close())
  t.equal(again.epoch, 1, 'an existing map keeps its epoch')
  t.equal(again.position(), 42n)
  t.strictSame(again.local(a), { id: 10n, gen: 1 })
  t.equal(again.local(b), undefined)
  t.equal(again.local(c), undefined)
  t.strictSame(again.local(d), { id: 12n, gen: 1 })
  t.strictSame(again.vidOf({ id: 10n, gen: 1 }), a)
  t.equal(again.vidOf({ id: 10n, gen: 2 }), undefined, 'a recycled local id is not the old object')
  t.strictSame(again.vidOfId(10n), a)
  t.equal(again.local({ id: a.id, gen: 2 }), undefined, 'a vid of another generation is not bound')
  t.strictSame(again.allocate(), { id: (1n << COUNTER_BITS) | 5n, gen: 1 }, 'the counter does not go back, even for unbound vids')
  t.equal(again.size, 3)

  again.setEpoch(4)
  t.strictSame(again.allocate(), { id: (4n << COUNTER_BITS) | 1n, gen: 1 })
  t.throws(() => { again.setEpoch(4) }, { code: 'EINVAL' })
  await again.flush()
})

t.test('the epoch and counter persist across reopen after setEpoch', async (t) => {
  const dir = t.testdir()
  const map = await IdMap.open({ dir, root: ROOT })
  map.setEpoch(2)
  const v = map.allocate()
  map.bind(v, { id: 20n, gen: 1 })
  await map.flush()
  await map.close()
  const again = await IdMap.open({ dir, root: ROOT })
  t.teardown(() => again.close())
  t.equal(again.epoch, 2)
  t.strictSame(again.allocate(), { id: (2n << COUNTER_BITS) | 2n, gen: 1 })
})

t.test('concurrent flushes share fsyncs and all resolve after their records are on disk', async (t) => {
  const dir = t.testdir()
  const map = await IdMap.open({ dir, root: ROOT })
  t.teardown(() => map.close())
  const before = statSync(join(dir, LOG_FILE)).size
  const flushes: Promise<void>[] = []
  for (let i = 0; i < 50; i++) {
    map.bind(map.allocate(), { id: 100n + BigInt(i), gen: 1 })
    flushes.push(map.flush())
  }
  await Promise.all(flushes)
  // 50 bind records of 8 + 25 bytes each, all on disk.
  t.equal(statSync(join(dir, LOG_FILE)).size - before, 50 * 33)
})

t.test('a torn tail is cut at load; the records before it hold', async (t) => {
  const dir = t.testdir()
  const map = await IdMap.open({ dir, root: ROOT })
  const a = map.allocate()
  map.bind(a, { id: 10n, gen: 1 })
  await map.flush()
  await map.close()
  const log = join(dir, LOG_FILE)
  const whole = readFileSync(log).length
  // Half a record, as SIGKILL mid-append leaves it.
  appendFileSync(log, encodeRecord({ kind: 'bind', vid: 99n, vidGen: 1, local: 5n, localGen: 1 }).subarray(0, 20))
  const again = await IdMap.open({ dir, root: ROOT })
  t.strictSame(again.local(a), { id: 10n, gen: 1 })
  t.equal(again.local({ id: 99n, gen: 1 }), undefined)
  t.equal(readFileSync(log).length, whole, 'cut back to the last whole record')
  // A whole last record with a bad CRC (its bytes not all written), and zeros after a file extension.
  const rec = encodeRecord({ kind: 'unbind', vid: a.id })
  rec[rec.length - 1] = (rec[rec.length - 1] ?? 0) ^ 0xff
  await again.close()
  appendFileSync(log, rec)
  const third = await IdMap.open({ dir, root: ROOT })
  t.strictSame(third.local(a), { id: 10n, gen: 1 }, 'the torn unbind is not applied')
  await third.close()
  appendFileSync(log, Buffer.alloc(100))
  const fourth = await IdMap.open({ dir, root: ROOT })
  t.strictSame(fourth.local(a), { id: 10n, gen: 1 })
  await fourth.close()
  t.equal(readFileSync(log).length, whole)
})

async function openError(dir: string): Promise<unknown> {
  try {
    const m = await IdMap.open({ dir, root: ROOT })
    await m.close()
    return null
  } catch (err) {
    return err
  }
}

t.test('damage is EIO with a message naming it', async (t) => {
  const fresh = async (): Promise<string> => {
    const dir = t.testdir()
    const map = await IdMap.open({ dir, root: ROOT })
    map.bind(map.allocate(), { id: 10n, gen: 1 })
    map.bind(map.allocate(), { id: 11n, gen: 1 })
    await map.flush()
    await map.close()
    return dir
  }
  const cases: [string, (log: Buffer) => Buffer, RegExp][] = [
    ['bad magic', (b) => Buffer.concat([Buffer.from('NOTAMAP!'), b.subarray(8)]), /map\.log: not an id map \(bad magic\)/],
    ['header CRC', (b) => { const c = Buffer.from(b); c[15] = (c[15] ?? 0) ^ 1; return c }, /map\.log: header CRC mismatch/],
    ['short header', (b) => b.subarray(0, 10), /map\.log: 10 bytes, shorter than the header/],
    ['a record CRC in the middle', (b) => { const c = Buffer.from(b); c[24 + 8 + 3] = (c[24 + 8 + 3] ?? 0) ^ 1; return c }, /map\.log: record CRC mismatch at offset 24/],
    ['a length over the cap', (b) => { const c = Buffer.from(b); c.writeUInt32BE(MAX_PAYLOAD + 1, 24); return c }, /map\.log: record length 65 at offset 24/],
    ['an unknown kind', (b) => {
      const bad = encodeRecord({ kind: 'unbind', vid: 1n })
      bad[8] = 9
      bad.writeUInt32BE(crc32(bad.subarray(8)), 4)
      return Buffer.concat([b.subarray(0, 24), bad, b.subarray(24)])
    }, /map\.log: unknown record kind 9 at offset 24/],
  ]
  for (const [what, damage, message] of cases) {
    const dir = await fresh()
    const log = join(dir, LOG_FILE)
    writeFileSync(log, damage(readFileSync(log)))
    const err = await openError(dir)
    t.ok(err instanceof VfsError, what)
    t.equal((err as VfsError).code, 'EIO', what)
    t.match((err as VfsError).message, message, what)
  }

  const dir = await fresh()
  const v3 = header(0n)
  v3.writeUInt32BE(3, 8)
  v3.writeUInt32BE(crc32(v3.subarray(0, 20)), 20)
  writeFileSync(join(dir, LOG_FILE), v3)
  t.match(await openError(dir), { code: 'EIO', message: /map\.log: format version 3, this build reads 1 to 2/ })

  const dir2 = await fresh()
  writeFileSync(join(dir2, LOG_FILE), header(5n))
  t.match(await openError(dir2), { code: 'EIO', message: /map\.log: generation 5 has no snapshot \(snapshot is 0\)/ })
})

t.test('compaction: snapshot and a new log, nothing lost; a damaged snapshot is EIO', async (t) => {
  const dir = t.testdir()
  const map = await IdMap.open({ dir, root: ROOT, compactRecords: 20 })
  const vids = []
  for (let i = 0; i < 30; i++) {
    const v = map.allocate()
    map.bind(v, { id: 1000n + BigInt(i), gen: 1 })
    vids.push(v)
    if (i % 2 === 1) map.unbind(vids[i - 1]!)
    await map.flush(BigInt(i))
  }
  await map.close()
  t.ok(statSync(join(dir, SNAP_FILE)).size > 0, 'a snapshot was written')
  t.ok(statSync(join(dir, LOG_FILE)).size < 30 * 33, 'the log was restarted')
  const again = await IdMap.open({ dir, root: ROOT, compactRecords: 20 })
  for (let i = 0; i < 30; i++) {
    if (i % 2 === 0) t.equal(again.local(vids[i]!), undefined)
    else t.strictSame(again.local(vids[i]!), { id: 1000n + BigInt(i), gen: 1 })
  }
  t.equal(again.position(), 29n)
  t.strictSame(again.allocate(), { id: (1n << COUNTER_BITS) | 31n, gen: 1 })
  await again.close()

  const snap = join(dir, SNAP_FILE)
  const s = readFileSync(snap)
  writeFileSync(snap, s.subarray(0, s.length - 3))
  t.match(await openError(dir), { code: 'EIO', message: /map\.snap: truncated record at offset/ })
})
