/*
 * replies.drc version 2 (server/replication/drc-file-format.ts, drc-store.ts):
 * each entry carries the change it describes (export, seq), because a sync
 * standby writes a REPL_DRC_HELD entry while that change is still on its way.
 * An entry is usable only once the durable position in its export reaches its
 * seq: all() leaves the others out, a reopen drops them, settle() fixes the
 * usable ones before the positions start counting another log. Version 1
 * files (no seq: written only after their change was durable) are still read,
 * as usable, and rewritten as version 2.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { silentLogger } from '../../../server/logger.ts'
import { ReplyStore, encodeRecordV1 } from '../../../server/replication/drc-store.ts'
import { drcHeader } from '../../../server/replication/drc-file-format.ts'

const reply = (k: string): Buffer => Buffer.from(`reply of ${k}`)

/** Durable positions the test moves, per export. */
function positions(): { at: Map<number, bigint>; durable: (id: number) => bigint } {
  const at = new Map<number, bigint>()
  return { at, durable: (id) => at.get(id) ?? 0n }
}

t.test('a version 1 file is read (its entries usable) and rewritten as version 2', async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  await writeFile(path, Buffer.concat([drcHeader(1), encodeRecordV1('k1', reply('k1')), encodeRecordV1('k2', reply('k2'))]))
  const s = await ReplyStore.open(path, silentLogger)
  t.same(s.all(), [['k1', reply('k1')], ['k2', reply('k2')]], 'both entries, usable with no position (seq 0)')
  await s.close()
  t.equal((await readFile(path)).readUInt32BE(8), 2, 'the file is version 2 now')
  const r = await ReplyStore.open(path, silentLogger)
  t.same(r.all().map(([k]) => k), ['k1', 'k2'], 'and reads back the same')
  await r.close()
})

t.test('an entry is usable once its export\'s durable position reaches its seq; seq 0 always', async (t) => {
  const p = positions()
  const s = new ReplyStore({ durable: p.durable })
  await s.addAll([
    { key: 'none', reply: reply('none') },
    { key: 'e1s5', reply: reply('e1s5'), exportId: 1, seq: 5n },
    { key: 'e2s5', reply: reply('e2s5'), exportId: 2, seq: 5n },
  ])
  t.equal(s.size, 3, 'all three held')
  t.same(s.all().map(([k]) => k), ['none'], 'no change durable yet: only seq 0')
  p.at.set(1, 4n)
  t.same(s.all().map(([k]) => k), ['none'], 'export 1 at 4: not yet')
  p.at.set(1, 5n)
  t.same(s.all().map(([k]) => k), ['none', 'e1s5'], 'export 1 at 5: its entry; export 2\'s still not')
  t.same(new ReplyStore().all(), [], 'a store without positions')
  const bare = new ReplyStore()
  bare.add('x', reply('x'), 1, 1n)
  t.same(bare.all(), [], 'a store without positions uses no entry that names a change')
})

t.test('a reopen drops the entries whose change is not durable, on disk too', async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  const p = positions()
  p.at.set(1, 10n)
  const s = await ReplyStore.open(path, silentLogger, { durable: p.durable })
  await s.addAll([{ key: 'had', reply: reply('had'), exportId: 1, seq: 10n }])
  await s.addAll([{ key: 'never', reply: reply('never'), exportId: 1, seq: 11n }])
  await s.close()
  t.ok((await readFile(path)).includes('never'), 'the entry was written although its change was not durable')

  const r = await ReplyStore.open(path, silentLogger, { durable: p.durable })
  t.equal(r.size, 1, 'the restart dropped it')
  t.same(r.all().map(([k]) => k), ['had'])
  await r.close()
  t.notOk((await readFile(path)).includes('never'), 'and the file was written again without it')
  // Its change coming later does not bring it back: it is gone.
  p.at.set(1, 20n)
  const again = await ReplyStore.open(path, silentLogger, { durable: p.durable })
  t.same(again.all().map(([k]) => k), ['had'])
  await again.close()
})

t.test('settle() keeps the usable entries for good and drops the others, in the file too', async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  const p = positions()
  p.at.set(1, 5n)
  const s = await ReplyStore.open(path, silentLogger, { durable: p.durable })
  await s.addAll([
    { key: 'came', reply: reply('came'), exportId: 1, seq: 3n },
    { key: 'lost', reply: reply('lost'), exportId: 1, seq: 7n },
  ])
  await s.settle()
  t.equal(s.size, 1, 'the entry whose change never came is gone')
  // A new primary's log: the positions start over (a full resync), lower than the old seqs.
  p.at.set(1, 0n)
  t.same(s.all().map(([k]) => k), ['came'], 'the kept entry stays usable under the new positions')
  p.at.set(1, 7n)
  t.same(s.all().map(([k]) => k), ['came'], 'and the dropped one is not revived by the new log\'s seq 7')
  await s.close()
  p.at.set(1, 0n)
  const r = await ReplyStore.open(path, silentLogger, { durable: p.durable })
  t.same(r.all().map(([k]) => k), ['came'], 'the file says so too: kept as seq 0, the other gone')
  await r.close()
})
