/*
 * The standby's reply file is written through an O_DSYNC fd (drc-store.ts):
 * each REPL_DRC's write is its own flush, so a sync reply's REPL_DRC round
 * trip pays one thread-pool trip on the standby, not a write and then an
 * fdatasync. Checked on the fd the store holds (/proc/self/fdinfo), after
 * open, after an append and after a rewrite; the entries read back.
 */
import t from 'tap'
import { dsync, flagsOf } from '../../helpers/fd-flags.ts'
import { join } from 'node:path'
import { silentLogger } from '../../../server/logger.ts'
import { ReplyStore } from '../../../server/replication/drc-store.ts'

const entry = (i: number): { key: string; reply: Buffer } => ({ key: `10.0.0.1|${String(i)}|100003|3|8`, reply: Buffer.alloc(64, i & 0xff) })

t.test('replies.drc is appended through an O_DSYNC fd, after open and after a rewrite', { skip: process.platform !== 'linux' ? 'reads /proc/self/fdinfo' : false }, async (t) => {
  const path = join(t.testdir(), 'replies.drc')
  // Bounds of 4 entries: the file is rewritten once it holds 8 records.
  const s = await ReplyStore.open(path, silentLogger, { maxEntries: 4 })
  t.same(flagsOf(path).map(dsync), [true], 'opened O_DSYNC')
  for (let i = 1; i <= 10; i++) await s.addAll([entry(i)])
  t.same(flagsOf(path).map(dsync), [true], 'after appends and a rewrite: one fd, O_DSYNC')
  await s.close()
  t.same(flagsOf(path), [], 'closed')
  const r = await ReplyStore.open(path, silentLogger, { maxEntries: 4 })
  t.same(r.all().map(([k]) => k), [7, 8, 9, 10].map((i) => entry(i).key), 'the latest four read back')
  await r.close()
})
