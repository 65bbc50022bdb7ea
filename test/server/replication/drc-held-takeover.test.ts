/*
 * The hazard REPL_DRC_HELD must not open (server/replication/README.md, "The
 * duplicate request cache across a takeover"): a sync primary ships a reply's
 * cached copy before the change it describes is on the standby. If the primary
 * dies in between, the standby would hold "OK" for a CREATE it never made, and
 * after a takeover a client's retransmission would get that answer while the
 * file does not exist. Over real servers (held-ghost.ts): standby B attached to
 * primary A; the test sends B, as A's epoch, a REPL_DRC_HELD entry for a CREATE
 * naming a change A never made; B writes it to replies.drc (the write overlaps
 * the change's flush) but must not use it; A is stopped; B takes over; the
 * client's CREATE with that xid reaches B, which runs it (the file is made, the
 * answer is B's own), not the cached "OK". With REPL_DRC's semantics (usable at
 * once) the test fails.
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { REPLIES_FILE } from '../../../server/replication/standby-service.ts'
import { repl_stat } from '../../../xdr/generated/replication.ts'
import { until } from './resync-fixtures.ts'
import { retransmissionRuns, shipGhost } from './held-ghost.ts'

t.test('a reply shipped ahead of a change the standby never got is not replayed after a takeover: the call runs', async (t) => {
  const g = await shipGhost(t)
  const b = g.b
  const usableOnB = (): boolean => b.service.replies.all().some(([k]) => k === g.key)
  await until('B has the entry (waiting for its change, or usable)', () => b.service.durableWaits.waiting === 1 || usableOnB())
  t.notOk(usableOnB(), 'not usable: B lacks the change')
  await until('B wrote the entry to replies.drc (while waiting for its change)', async () => (await readFile(join(b.service.stateDir, REPLIES_FILE))).includes(g.cachedOk))
  await g.a.close()

  t.equal((await b.service.takeover({ force: true })).status, 0, 'B: TAKEOVER REPL_OK')
  t.same(await g.shipped, { status: repl_stat.REPL_BUSY }, 'the entry is refused at the takeover, never used')
  await retransmissionRuns(t, b, g)
})
