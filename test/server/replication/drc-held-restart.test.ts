/*
 * The restart side of the REPL_DRC_HELD hazard (drc-held-takeover.test.ts):
 * standby B writes a held entry to replies.drc while its change is on the way
 * (server/replication/drc-held.ts). If B restarts before that change is durable
 * there, the entry is on disk without its change: the reopened B must drop it,
 * so after a takeover a client's retransmission of the CREATE runs on B instead
 * of getting the cached "OK" for a file B never made.
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { StandbyNode } from '../../../server/replication/standby-node.ts'
import { REPLIES_FILE } from '../../../server/replication/standby-service.ts'
import { until } from './resync-fixtures.ts'
import { retransmissionRuns, shipGhost } from './held-ghost.ts'

t.test('a held entry on disk without its change is dropped when the standby restarts: the retransmission runs', async (t) => {
  const g = await shipGhost(t)
  const file = join(g.b.service.stateDir, REPLIES_FILE)
  await until('B wrote the entry to replies.drc (while waiting for its change)', async () => (await readFile(file)).includes(g.cachedOk))
  await g.a.close()
  // The REPL_DRC_HELD call may end either way as B goes (REPL_BUSY, or its connection closed).
  g.shipped.catch(() => undefined)
  // The entries B holds: the ghost, and the replies of the calls whose changes B has (the first CREATE).
  const held = g.b.service.replies.size
  await g.b.close()
  t.ok((await readFile(file)).includes(g.cachedOk), 'B stopped with the entry on disk, its change never durable')

  g.b = await StandbyNode.open(g.bOptions)
  const b = g.b
  t.notOk(b.service.replies.all().some(([k]) => k === g.key), 'the reopened B does not use it')
  t.equal(b.service.replies.size, held - 1, 'it dropped it, and it alone')
  t.notOk((await readFile(file)).includes(g.cachedOk), 'from the file too')

  t.equal((await b.service.takeover({ force: true })).status, 0, 'B: TAKEOVER REPL_OK')
  await retransmissionRuns(t, b, g)
})
