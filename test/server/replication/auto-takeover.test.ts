/*
 * --auto-takeover and the witness, over real sockets: a standby that no
 * longer hears its primary takes over only when the witnesses agree the
 * primary is dead. A witness that still sees the primary (the standby alone
 * is cut off) vetoes; once the primary is really gone, the witness reports it
 * silent and the standby takes over (epoch 2). No witnesses, no answer from
 * them, a primary heard recently, or an export out of step: no takeover.
 */
import t from 'tap'
import type { Test } from 'tap'
import { join } from 'node:path'
import { silentLogger } from '../../../server/logger.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import { AutoTakeover } from '../../../server/replication/auto-takeover.ts'
import type { AutoTakeoverOptions } from '../../../server/replication/auto-takeover.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import { createPrimaryProgram } from '../../../server/replication/primary-program.ts'
import { status } from '../../../server/replication/quorum-probe.ts'
import { WitnessNode } from '../../../server/replication/witness.ts'
import { repl_role } from '../../../xdr/generated/replication.ts'
import { startStandby } from './fixtures.ts'
import type { StandbyFixture } from './fixtures.ts'
import { closedPort } from '../../helpers/ports.ts'


/** A primary's replication program (node 'a', epoch 1) on its own port, as `tsnfs serve` answers it. */
async function livePrimary(t: Test): Promise<{ port: number; stop: () => Promise<void> }> {
  const p = await PrimaryReplication.open({ stateDir: t.testdir(), cluster: 'c1', node: 'a', standbys: [], mode: 'sync', log: silentLogger })
  const rpc = new RpcServer({ programs: [createPrimaryProgram(p)], logger: silentLogger })
  const { port } = await rpc.listen({ port: 0, host: '127.0.0.1' })
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await rpc.close()
    await p.close()
  }
  t.teardown(stop)
  return { port, stop }
}

async function witnessOf(t: Test, primaryPort: number): Promise<WitnessNode> {
  const w = await WitnessNode.open({ node: 'w', primary: { name: 'a', host: '127.0.0.1', port: primaryPort }, listen: { host: '127.0.0.1', port: 0 }, heartbeatMs: 50, timeoutMs: 400, log: silentLogger })
  t.teardown(() => w.close())
  return w
}

function auto(sb: StandbyFixture, o: Partial<AutoTakeoverOptions> & Pick<AutoTakeoverOptions, 'primary' | 'witnesses'>): AutoTakeover {
  return new AutoTakeover({
    self: 'b',
    timeoutMs: 400,
    silenceMs: () => 10_000,
    role: () => sb.state.get().role,
    epoch: () => sb.state.get().epoch,
    notReady: () => null,
    takeover: async () => {
      await sb.service.takeover({ force: true })
    },
    log: silentLogger,
    ...o,
  })
}

const waitFor = async (what: string, ok: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test('a witness that still sees the primary vetoes; once the primary is gone the standby takes over', async (t) => {
  const primary = await livePrimary(t)
  const w = await witnessOf(t, primary.port)
  await waitFor('the witness to hear the primary', () => w.view().peers[0]?.alive === true)
  const ws = await status({ name: 'w', host: '127.0.0.1', port: w.port }, 1000)
  t.equal(ws?.role, repl_role.REPL_WITNESS, 'the witness answers STATUS as a witness')
  t.equal(ws?.epoch, 1n, 'with the epoch the primary answered')

  const sb = await startStandby(t, { dir: join(t.testdir(), 'b'), targets: [] })
  // The standby is cut off from the primary: its own heartbeat goes to a port nobody answers.
  const unreachable = { name: 'a', host: '127.0.0.1', port: await closedPort() }
  const a = auto(sb, { primary: unreachable, witnesses: [{ name: 'w', host: '127.0.0.1', port: w.port }] })
  t.equal(await a.check(), false, 'no takeover while the witness sees the primary')
  t.equal(a.last?.decision.veto, 'QUORUM_PRIMARY_SEEN', a.last?.decision.detail ?? '')
  t.equal(sb.state.get().role, 'standby')

  await primary.stop()
  await waitFor('the witness to find the primary silent', () => w.view().peers[0]?.alive === false)
  t.equal(await a.check(), true, 'the witness agrees the primary is dead: takeover')
  t.equal(a.last?.decision.votes, 1)
  t.equal(sb.state.get().role, 'primary')
  t.equal(sb.state.get().epoch, 2n, 'the epoch rose')
  t.equal(await a.check(), false, 'a primary does not take over again')
})

t.test('no takeover: the primary heard recently, no witness answering, an export out of step', async (t) => {
  const sb = await startStandby(t, { dir: t.testdir(), targets: [] })
  const dead = { name: 'a', host: '127.0.0.1', port: await closedPort() }
  const quietWitness = { name: 'w', host: '127.0.0.1', port: await closedPort() }

  const recent = auto(sb, { primary: dead, witnesses: [quietWitness], silenceMs: () => 100 })
  t.equal(await recent.check(), false)
  t.equal(recent.last, null, 'a primary heard 100 ms ago is not probed at all')

  const never = auto(sb, { primary: dead, witnesses: [quietWitness], silenceMs: () => null })
  t.equal(await never.check(), false, 'no primary ever attached: nothing to take over')

  const alone = auto(sb, { primary: dead, witnesses: [quietWitness] })
  t.equal(await alone.check(), false)
  t.equal(alone.last?.decision.veto, 'QUORUM_NO_MAJORITY', 'a witness that does not answer is no vote')

  // A witness that would agree, but an export needs a resync: the copy is known incomplete.
  const primary = await livePrimary(t)
  const w = await witnessOf(t, primary.port)
  await waitFor('the witness to hear the primary', () => w.view().peers[0]?.alive === true)
  await primary.stop()
  await waitFor('the witness to find the primary silent', () => w.view().peers[0]?.alive === false)
  const behind = auto(sb, { primary: dead, witnesses: [{ name: 'w', host: '127.0.0.1', port: w.port }], notReady: () => 'export /x is not in step' })
  t.equal(await behind.check(), false)
  t.equal(behind.last?.decision.takeover, true, 'the quorum agreed')
  t.equal(sb.state.get().role, 'standby', 'yet the node stays a standby')

  t.throws(() => auto(sb, { primary: dead, witnesses: [] }), { message: /--auto-takeover needs --witness/ })
})
