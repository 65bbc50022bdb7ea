/*
 * PrimaryReplication.open refuses a state directory whose node is not a
 * primary: a standby becomes primary only through a takeover, a fenced node
 * only after rejoining (two primaries of one epoch would be split brain).
 */
import t from 'tap'
import { silentLogger } from '../../../server/logger.ts'
import { NodeState } from '../../../server/replication/node-state.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'

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
