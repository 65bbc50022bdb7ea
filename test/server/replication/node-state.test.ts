/*
 * A node's replication identity on disk: created, reopened, changed
 * durably and atomically (no temp files left), the epoch only rising, and
 * exact errors for a corrupt file, another format version or another node's.
 */
import t from 'tap'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NODE_STATE_VERSION, NodeState, writeAtomic } from '../../../server/replication/node-state.ts'

const me = { cluster: 'c1', node: 'n1', role: 'standby', epoch: 1n } as const

t.test('created, reopened, updated', async (t) => {
  const dir = t.testdir()
  t.equal(await NodeState.read(dir), null, 'nothing before open')
  const s = await NodeState.open(dir, me)
  t.same(s.get(), me)
  const file = join(dir, 'replication', 'node.json')
  t.same(JSON.parse(readFileSync(file, 'utf8')), { version: NODE_STATE_VERSION, cluster: 'c1', node: 'n1', role: 'standby', epoch: '1' })
  t.same(await s.update({ role: 'primary', epoch: 2n ** 63n }), { ...me, role: 'primary', epoch: 2n ** 63n })
  t.equal(JSON.parse(readFileSync(file, 'utf8')).epoch, '9223372036854775808', 'the epoch as a decimal string: exact past 2^53')
  const again = await NodeState.open(dir, me)
  t.same(again.get(), { ...me, role: 'primary', epoch: 2n ** 63n }, 'the stored identity wins over the initial one')
  await t.rejects(again.update({ epoch: 5n }), { code: 'NODE_STATE_EPOCH' })
  t.equal(again.get().epoch, 2n ** 63n, 'unchanged')
  const [a, b] = await Promise.all([again.update({ role: 'fenced' }), again.update({ epoch: 2n ** 63n + 1n })])
  t.equal(a.role, 'fenced')
  t.same(b, { ...me, role: 'fenced', epoch: 2n ** 63n + 1n }, 'updates apply one after the other')
  t.same(readdirSync(join(dir, 'replication')), ['node.json'], 'no temp file left')
})

t.test('refusals', async (t) => {
  const dir = t.testdir()
  await NodeState.open(dir, me)
  await t.rejects(NodeState.open(dir, { ...me, node: 'n2' }), { code: 'NODE_STATE_MISMATCH', message: /belongs to node "n1" of cluster "c1"/ })
  await t.rejects(NodeState.open(join(dir, 'x1'), { ...me, cluster: '' }), { code: 'NODE_STATE_MISMATCH' })
  await t.rejects(NodeState.open(join(dir, 'x2'), { ...me, node: 'x'.repeat(65) }), { code: 'NODE_STATE_MISMATCH' })
  const file = join(dir, 'replication', 'node.json')
  const cases: [string, string][] = [
    ['{"version":1,"cluster":"c1","node":"n1","role":"standby","epoch":"1"', 'not JSON'],
    ['[]', 'no version'],
    ['{"version":1,"cluster":"c1","node":"n1","role":"leader","epoch":"1"}', 'bad role'],
    ['{"version":1,"cluster":"c1","node":"n1","role":"standby","epoch":1}', 'bad epoch'],
    ['{"version":1,"cluster":"c1","node":"n1","role":"standby","epoch":"18446744073709551616"}', 'bad epoch'],
    ['{"version":1,"cluster":"","node":"n1","role":"standby","epoch":"1"}', 'bad cluster'],
    [' '.repeat(5000), 'more than 4096'],
  ]
  for (const [text, why] of cases) {
    writeFileSync(file, text)
    await t.rejects(NodeState.open(dir, me), { code: 'NODE_STATE_CORRUPT', message: new RegExp(`node\\.json: .*${why}`) }, why)
  }
  writeFileSync(file, '{"version":2,"cluster":"c1","node":"n1","role":"standby","epoch":"1"}')
  await t.rejects(NodeState.read(dir), { code: 'NODE_STATE_VERSION', message: /format version 2, this tsnfs reads version 1/ })
})

t.test('writeAtomic replaces a file whole', async (t) => {
  const dir = t.testdir({ x: 'old' })
  await writeAtomic(dir, 'x', 'new contents')
  t.equal(readFileSync(join(dir, 'x'), 'utf8'), 'new contents')
  t.same(readdirSync(dir), ['x'])
})
