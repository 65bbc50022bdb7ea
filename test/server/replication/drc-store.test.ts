/*
 * The standby's cached replies on disk (server/replication/drc-store.ts):
 * kept across a reopen, a torn tail cut, damage dropping only what follows
 * it, a file of another version (or not ours) replaced instead of misread,
 * lengths past the caps refused before anything is allocated, and the file
 * bounded by rewriting at twice the store's bounds.
 */
import t from 'tap'
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { silentLogger } from '../../../server/logger.ts'
import { DRC_FILE_MAGIC, ReplyStore, encodeRecord } from '../../../server/replication/drc-store.ts'

const entry = (i: number): { key: string; reply: Buffer } => ({ key: `10.0.0.1|${String(i)}|100003|3|8|120|${String(i * 7)}`, reply: Buffer.alloc(100 + i, i & 0xff) })

t.test('entries survive a reopen, in order; a key sent again replaces its entry', async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  const s = await ReplyStore.open(path, silentLogger)
  await s.addAll([entry(1), entry(2)])
  await s.addAll([entry(3), { key: entry(1).key, reply: Buffer.from('again') }])
  await s.close()
  const r = await ReplyStore.open(path, silentLogger)
  t.same(r.all().map(([k]) => k), [entry(2).key, entry(3).key, entry(1).key])
  t.same(r.all()[2]?.[1], Buffer.from('again'))
  t.same(r.all()[0]?.[1], entry(2).reply, 'the reply bytes, byte for byte')
  t.equal((await readFile(path)).toString('latin1', 0, 8), DRC_FILE_MAGIC)
  await r.close()
})

t.test('a torn tail is cut; damage drops what follows it, keeps what precedes it', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'replies.drc')
  const s = await ReplyStore.open(path, silentLogger)
  await s.addAll([entry(1), entry(2)])
  await s.close()
  const whole = await readFile(path)
  // Half a record, as a crash mid-write leaves it.
  await appendFile(path, encodeRecord(entry(3).key, entry(3).reply).subarray(0, 30))
  const torn = await ReplyStore.open(path, silentLogger)
  t.same(torn.all().map(([k]) => k), [entry(1).key, entry(2).key], 'torn tail: the whole records kept')
  await torn.close()
  t.same(await readFile(path), whole, 'the file written again without the torn tail')

  // A flipped byte in the first record's reply: its CRC fails, the second goes with it.
  const bad = Buffer.from(whole)
  // Version 2 records: a 24-byte head (lengths, export id, seq, CRC), the key, the reply.
  const at = 16 + 24 + Buffer.byteLength(entry(1).key) + 5
  bad[at] = (bad[at] ?? 0) ^ 0xff
  await writeFile(path, bad)
  const damaged = await ReplyStore.open(path, silentLogger)
  t.equal(damaged.size, 0, 'nothing after the damaged record is trusted')
  await damaged.close()
})

t.test('lengths past the caps are refused before they are read by', async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  const s = await ReplyStore.open(path, silentLogger)
  await s.addAll([entry(1)])
  await s.close()
  const huge = Buffer.alloc(24)
  huge.writeUInt32BE(8, 0)
  huge.writeUInt32BE(0xffff_fff0, 4)
  await appendFile(path, Buffer.concat([huge, Buffer.alloc(8)]))
  const r = await ReplyStore.open(path, silentLogger)
  t.same(r.all().map(([k]) => k), [entry(1).key])
  await r.close()
  // Entries over the wire caps are not kept (they could not have come over REPL_DRC).
  const r2 = await ReplyStore.open(path, silentLogger)
  await r2.addAll([{ key: 'k'.repeat(513), reply: Buffer.alloc(1) }, { key: 'k', reply: Buffer.alloc(8193) }])
  t.equal(r2.size, 1)
  await r2.close()
})

t.test('a file of another version, or not ours, is replaced, not misread', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'replies.drc')
  const s = await ReplyStore.open(path, silentLogger)
  await s.addAll([entry(1)])
  await s.close()
  const v3 = await readFile(path)
  v3.writeUInt32BE(3, 8)
  await writeFile(path, v3)
  const r = await ReplyStore.open(path, silentLogger)
  t.equal(r.size, 0, 'version 3: not read')
  await r.addAll([entry(5)])
  await r.close()
  const back = await readFile(path)
  t.equal(back.readUInt32BE(8), 2, 'replaced by a version 2 file')
  t.equal((await ReplyStore.open(path, silentLogger)).size, 1)

  await writeFile(path, 'not a cached replies file at all')
  const other = await ReplyStore.open(path, silentLogger)
  t.equal(other.size, 0)
  await other.close()
})

t.test('the file stays within about twice the bounds; a reopen keeps the latest', async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  const s = await ReplyStore.open(path, silentLogger, { maxEntries: 4, maxBytes: 100_000 })
  let peak = 0
  for (let i = 0; i < 40; i++) {
    await s.addAll([entry(i)])
    peak = Math.max(peak, (await stat(path)).size)
  }
  t.equal(s.size, 4)
  const one = encodeRecord(entry(39).key, entry(39).reply).length
  t.ok(peak <= 16 + 9 * one, `the file peaked at ${String(peak)} bytes (≤ 9 records of ≤ ${String(one)})`)
  await s.close()
  const r = await ReplyStore.open(path, silentLogger, { maxEntries: 4, maxBytes: 100_000 })
  t.same(r.all().map(([k]) => k), [36, 37, 38, 39].map((i) => entry(i).key))
  await r.close()
})

t.test('clear() empties memory and file', async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  const s = await ReplyStore.open(path, silentLogger)
  await s.addAll([entry(1), entry(2)])
  await s.clear()
  t.equal(s.size, 0)
  await s.close()
  t.equal((await ReplyStore.open(path, silentLogger)).size, 0)
  t.equal((await stat(path)).size, 16, 'the header alone')
})
