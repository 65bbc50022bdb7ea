/*
 * PrimaryReplication.open refuses a state directory whose node is not a
 * primary: a standby becomes primary only through a takeover, a fenced node
 * only after rejoining (two primaries of one epoch would be split brain); and
 * a restarted former primary asks its standbys before serving (fencing at start).
 */
import t from 'tap'
import { join } from 'node:path'
import { silentLogger } from '../../../server/logger.ts'
import { NodeState } from '../../../server/replication/node-state.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import { startStandby } from './fixtures.ts'
import { closedPort } from '../../helpers/ports.ts'

const open = (stateDir: string): Promise<PrimaryReplication> =>
  PrimaryReplication.open({ stateDir, cluster: 'c', node: 'n', standbys: [], mode: 'sync', log: silentLogger })

t.test('a new state directory becomes a primary of epoch 1', async (t) => {
  const dir = t.testdir()
  const p = await open(dir)
  t.equal(p.epoch, 1n)
  t.equal(p.view().role, 'primary')
  await p.close()
  t.same(await NodeState.read(dir), { cluster: 'c', node: 'n', role: 'primary', epoch: 1n })
})

for (const role of ['standby', 'fenced'] as const) {
  t.test(`a ${role} node is refused, and nothing changes`, async (t) => {
    const dir = t.testdir()
    const s = await NodeState.open(dir, { cluster: 'c', node: 'n', role, epoch: 4n })
    t.equal(s.get().role, role)
    await t.rejects(open(dir), { message: role === 'standby' ? /this node is a standby \(epoch 4\); it becomes primary through `tsnfs replication takeover`/ : /this node was fenced at epoch 4/ })
    t.same(await NodeState.read(dir), { cluster: 'c', node: 'n', role, epoch: 4n })
  })
}

t.test('fencing at start: a standby that took over (higher epoch) fences a restarted primary before it serves', async (t) => {
  const standbyDir = t.testdir()
  const primaryDir = join(standbyDir, 'primary')
  const sb = await startStandby(t, { dir: join(standbyDir, 'standby'), targets: [], role: 'primary', epoch: 3n })
  const p = await PrimaryReplication.open({ stateDir: primaryDir, cluster: 'c1', node: 'old', standbys: [{ host: '127.0.0.1', port: sb.port }], mode: 'sync', log: silentLogger })
  t.equal(p.epoch, 1n)
  await t.rejects(p.checkPeersAtStart(), { message: /a standby serves epoch 3, above this node's 1 .*this node is fenced/ })
  t.same(await NodeState.read(primaryDir), { cluster: 'c1', node: 'old', role: 'fenced', epoch: 1n })
  // The next start is refused from the state alone, even with the standby gone.
  await sb.close()
  await t.rejects(PrimaryReplication.open({ stateDir: primaryDir, cluster: 'c1', node: 'old', standbys: [], mode: 'sync', log: silentLogger }), { message: /this node was fenced at epoch 1/ })
})

t.test('fencing at start: a standby of the same epoch, or none answering, lets the primary serve', async (t) => {
  const dir = t.testdir()
  const sb = await startStandby(t, { dir: join(dir, 'standby'), targets: [], role: 'standby', epoch: 1n })
  // A port nothing listens on: the connection is refused at once (counts as a dead standby).
  const dead = await closedPort()
  const p = await PrimaryReplication.open({ stateDir: join(dir, 'primary'), cluster: 'c1', node: 'p', standbys: [{ host: '127.0.0.1', port: sb.port }, { host: '127.0.0.1', port: dead }], mode: 'sync', log: silentLogger, timeoutMs: 1000 })
  await p.checkPeersAtStart()
  t.equal(p.view().role, 'primary')
  t.same(await NodeState.read(join(dir, 'primary')), { cluster: 'c1', node: 'p', role: 'primary', epoch: 1n })
  await p.close()
})

