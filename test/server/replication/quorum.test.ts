/*
 * Automatic takeover's witness quorum (server/replication/quorum.ts): named
 * cases, then every combination of answers for witness sets of up to four
 * other nodes (with and without this node in the set) against a reference
 * written from the rules, plus the properties that keep out split brain; then
 * the probe (quorum-probe.ts) over real sockets against peers that serve the
 * REPL program.
 */
import t from 'tap'
import type { Test } from 'tap'
import { decideTakeover } from '../../../server/replication/quorum.ts'
import type { TakeoverInput, WitnessAnswer } from '../../../server/replication/quorum.ts'
import { QuorumError, parseWitness, probeQuorum, witnessAnswer } from '../../../server/replication/quorum-probe.ts'
import type { PeerAddress } from '../../../server/replication/quorum-probe.ts'
import { silentLogger } from '../../../server/logger.ts'
import { defineProgram } from '../../../server/rpc/program.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import { TSNFS_REPL_PROG, repl_role, repl_stat } from '../../../xdr/generated/replication.ts'
import type { repl_heartbeat_res, repl_peer, repl_status_res } from '../../../xdr/generated/replication.ts'
import { closedPort } from '../../helpers/ports.ts'

const dead = (witness: string, epoch = 3n): WitnessAnswer => ({ witness, seesPrimary: false, epoch })
const alive = (witness: string, epoch = 3n): WitnessAnswer => ({ witness, seesPrimary: true, epoch })
const base = { self: 's', selfEpoch: 3n, selfSeesPrimary: false }

t.test('named cases', async (t) => {
  const cases: [string, TakeoverInput, boolean, string | null][] = [
    ['2 of 3 answer, neither sees the primary', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('b')] }, true, null],
    ['1 of 3 answers', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a')] }, false, 'QUORUM_NO_MAJORITY'],
    ['this node is one of 3 and one other agrees', { ...base, witnesses: ['s', 'a', 'b'], answers: [dead('a')] }, true, null],
    ['this node alone of 3', { ...base, witnesses: ['s', 'a', 'b'], answers: [] }, false, 'QUORUM_NO_MAJORITY'],
    ['2 of 4 is not a strict majority', { ...base, witnesses: ['a', 'b', 'c', 'd'], answers: [dead('a'), dead('b')] }, false, 'QUORUM_NO_MAJORITY'],
    ['3 of 4', { ...base, witnesses: ['a', 'b', 'c', 'd'], answers: [dead('a'), dead('b'), dead('d')] }, true, null],
    ['this node still sees the primary', { ...base, selfSeesPrimary: true, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('b'), dead('c')] }, false, 'QUORUM_PRIMARY_SEEN'],
    ['one witness still sees it', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('b'), alive('c')] }, false, 'QUORUM_PRIMARY_SEEN'],
    ['a witness is at a higher epoch', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('b', 4n)] }, false, 'QUORUM_HIGHER_EPOCH'],
    ['a witness behind us is no veto', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('b', 1n)] }, true, null],
    ['sighting beats epoch', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a', 9n), alive('b')] }, false, 'QUORUM_PRIMARY_SEEN'],
    ['a live standby ranked first', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('b')], outrankedBy: ['s0'] }, false, 'QUORUM_OUTRANKED'],
    ['answers from outside the set are ignored', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('x'), dead('y'), alive('z')] }, false, 'QUORUM_NO_MAJORITY'],
    ['a witness answering twice counts once', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('a')] }, false, 'QUORUM_NO_MAJORITY'],
    ['any of its answers can veto', { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('b'), alive('a')] }, false, 'QUORUM_PRIMARY_SEEN'],
    ["an answer in this node's name is not a vote", { ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a'), dead('s')] }, false, 'QUORUM_NO_MAJORITY'],
    ['repeated names in the set count once', { ...base, witnesses: ['a', 'a', 'b'], answers: [dead('a'), dead('b')] }, true, null],
    ['no witnesses', { ...base, witnesses: [], answers: [] }, false, 'QUORUM_NO_WITNESSES'],
    ['a set of one: that witness', { ...base, witnesses: ['a'], answers: [dead('a')] }, true, null],
    ['a set of one: this node', { ...base, witnesses: ['s'], answers: [] }, true, null],
  ]
  for (const [name, input, takeover, veto] of cases) {
    const d = decideTakeover(input)
    t.equal(d.takeover, takeover, `${name}: ${d.detail}`)
    t.equal(d.veto, veto, `${name}: veto`)
  }
  t.match(decideTakeover({ ...base, witnesses: ['a', 'b', 'c'], answers: [dead('a')] }), { votes: 1, needed: 2 })
})

type State = 'none' | 'dead' | 'alive' | 'ahead'
const STATES: readonly State[] = ['none', 'dead', 'alive', 'ahead']

function* assignments(n: number): Generator<State[]> {
  if (n === 0) {
    yield []
    return
  }
  for (const rest of assignments(n - 1)) for (const s of STATES) yield [...rest, s]
}

// The rules as counts, written apart from the implementation.
function reference(states: State[], selfIn: boolean, selfSees: boolean, outranked: boolean): string | null {
  const size = states.length + (selfIn ? 1 : 0)
  if (size === 0) return 'QUORUM_NO_WITNESSES'
  if (selfSees || states.includes('alive')) return 'QUORUM_PRIMARY_SEEN'
  if (states.includes('ahead')) return 'QUORUM_HIGHER_EPOCH'
  if (outranked) return 'QUORUM_OUTRANKED'
  const agree = states.filter((s) => s !== 'none').length + (selfIn ? 1 : 0)
  return 2 * agree > size ? null : 'QUORUM_NO_MAJORITY'
}

function inputOf(states: State[], selfIn: boolean, selfSees: boolean, outranked: boolean): TakeoverInput {
  const names = states.map((_, i) => `w${String(i)}`)
  const answers: WitnessAnswer[] = []
  states.forEach((s, i) => {
    const w = names[i] ?? ''
    if (s === 'dead') answers.push(dead(w))
    if (s === 'alive') answers.push(alive(w))
    if (s === 'ahead') answers.push(dead(w, 4n))
  })
  return { ...base, selfSeesPrimary: selfSees, witnesses: selfIn ? [...names, 's'] : names, answers, outrankedBy: outranked ? ['s0'] : [] }
}

t.test('every combination for up to four other witnesses matches the rules', async (t) => {
  let cases = 0
  let takeovers = 0
  let wrong = 0
  for (let n = 0; n <= 4; n++) {
    for (const states of assignments(n)) {
      for (const selfIn of [false, true]) {
        for (const selfSees of [false, true]) {
          for (const outranked of [false, true]) {
            const input = inputOf(states, selfIn, selfSees, outranked)
            const d = decideTakeover(input)
            const want = reference(states, selfIn, selfSees, outranked)
            cases++
            if (d.veto !== want || d.takeover !== (want === null)) {
              wrong++
              if (wrong < 10) t.fail(`${JSON.stringify({ states, selfIn, selfSees, outranked })}: got ${String(d.veto)}, want ${String(want)}`)
            }
            if (!d.takeover) continue
            takeovers++
            // Split brain is kept out: a strict majority agreed, and nobody who answered saw the primary.
            const size = new Set(input.witnesses).size
            if (!(2 * d.votes > size) || input.answers.some((a) => a.seesPrimary) || input.selfSeesPrimary) t.fail(`unsafe takeover: ${JSON.stringify(states)}`)
            // More agreeing answers never turn a takeover into a refusal.
            const more = states.map((s) => (s === 'none' ? 'dead' : s))
            if (!decideTakeover(inputOf(more, selfIn, selfSees, outranked)).takeover) t.fail(`not monotonic: ${JSON.stringify(states)}`)
          }
        }
      }
    }
  }
  t.equal(cases, (1 + 4 + 16 + 64 + 256) * 8, 'every combination checked')
  t.equal(wrong, 0, 'all agree with the reference')
  t.ok(takeovers > 0 && takeovers < cases, `${String(takeovers)} of them take over`)
})

t.test("a witness's status: the primary counts as seen when listed alive, heard from within the timeout, or the witness is a primary", async (t) => {
  const peer = (node: string, isAlive: boolean, ms: bigint): repl_peer => ({ node: Buffer.from(node), address: Buffer.from('x'), role: repl_role.REPL_PRIMARY, alive: isAlive, last_heartbeat_ms: ms, acked: 0n, lag_ops: 0n, lag_bytes: 0n, state: Buffer.from('dead') })
  const st = (role: repl_role, peers: repl_peer[]) => ({ node: Buffer.from('w'), role, epoch: 7n, positions: [], peers })
  t.strictSame(witnessAnswer('w', st(repl_role.REPL_STANDBY, [peer('p', false, 9000n)]), 'p', 5000), { witness: 'w', seesPrimary: false, epoch: 7n })
  t.equal(witnessAnswer('w', st(repl_role.REPL_STANDBY, [peer('p', true, 0n)]), 'p', 5000).seesPrimary, true, 'listed alive')
  t.equal(witnessAnswer('w', st(repl_role.REPL_STANDBY, [peer('p', false, 4999n)]), 'p', 5000).seesPrimary, true, 'heard from 4999 ms ago')
  t.equal(witnessAnswer('w', st(repl_role.REPL_STANDBY, [peer('p', false, 5000n)]), 'p', 5000).seesPrimary, false, 'not within 5000 ms')
  t.equal(witnessAnswer('w', st(repl_role.REPL_STANDBY, [peer('p', false, 0n)]), 'p', 5000).seesPrimary, false, 'never heard from')
  t.equal(witnessAnswer('w', st(repl_role.REPL_STANDBY, [peer('q', true, 1n)]), 'p', 5000).seesPrimary, false, 'another node alive is not the primary')
  t.equal(witnessAnswer('w', st(repl_role.REPL_PRIMARY, []), 'p', 5000).seesPrimary, true, 'the witness itself serves as primary')
})

interface Node {
  heartbeat: repl_heartbeat_res | 'hang'
  status: repl_status_res | 'hang'
}

/** A peer serving the REPL program on 127.0.0.1 with canned answers ('hang': never answers). */
async function startNode(t: Test, name: string, n: Node): Promise<PeerAddress> {
  let release = (): void => undefined
  const hung = new Promise<never>((_, reject) => {
    release = () => {
      reject(new Error('released'))
    }
  })
  hung.catch(() => undefined)
  const prog = defineProgram(TSNFS_REPL_PROG, 'TSNFS_REPL_V1', {
    REPL_NULL: () => undefined,
    REPL_HELLO: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_HEARTBEAT: () => (n.heartbeat === 'hang' ? hung : n.heartbeat),
    REPL_APPEND: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_STATUS: () => (n.status === 'hang' ? hung : n.status),
    REPL_TAKEOVER: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_RESYNC_BEGIN: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_RESYNC_DIR: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_RESYNC_SUMS: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_RESYNC_DATA: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_RESYNC_END: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_DRC: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_FAILURES: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_DRC_HELD: () => ({ status: repl_stat.REPL_BUSY }),
    REPL_APPEND_DRC: () => ({ append: { status: repl_stat.REPL_BUSY }, drc: repl_stat.REPL_BUSY }),
  })
  const server = new RpcServer({ programs: [prog], logger: silentLogger })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    release()
    await server.close()
  })
  return { name, host: '127.0.0.1', port }
}

const statusOf = (role: repl_role, epoch: bigint, primarySeenMsAgo: bigint): repl_status_res => ({
  status: repl_stat.REPL_OK,
  ok: {
    node: Buffer.from('w'),
    role,
    epoch,
    positions: [],
    peers: [{ node: Buffer.from('p'), address: Buffer.from('10.0.0.1:2050'), role: repl_role.REPL_PRIMARY, alive: false, last_heartbeat_ms: primarySeenMsAgo, acked: 0n, lag_ops: 0n, lag_bytes: 0n, state: Buffer.from('dead') }],
  },
})
const ANSWERS_DEAD: Node = { heartbeat: { status: repl_stat.REPL_OK, ok: { role: repl_role.REPL_STANDBY, epoch: 3n } }, status: statusOf(repl_role.REPL_STANDBY, 3n, 9000n) }

t.test('the probe over real sockets', async (t) => {
  const closed: PeerAddress = { name: 'p', host: '127.0.0.1', port: await closedPort() }
  const w1 = await startNode(t, 'w1', ANSWERS_DEAD)
  const w2 = await startNode(t, 'w2', ANSWERS_DEAD)
  const sees = await startNode(t, 'w3', { ...ANSWERS_DEAD, status: statusOf(repl_role.REPL_STANDBY, 3n, 800n) })
  const ahead = await startNode(t, 'w3', { ...ANSWERS_DEAD, status: statusOf(repl_role.REPL_STANDBY, 4n, 9000n) })
  const busy = await startNode(t, 'w3', { ...ANSWERS_DEAD, status: { status: repl_stat.REPL_BUSY } })
  const hangs = await startNode(t, 'w3', { heartbeat: 'hang', status: 'hang' })
  const opts = { self: 's', selfEpoch: 3n, primary: closed, timeoutMs: 1500 }

  const ok = await probeQuorum({ ...opts, witnesses: [w1, w2, { ...closed, name: 'w3' }] })
  t.equal(ok.decision.takeover, true, `primary refused, 2 of 3 witnesses agree: ${ok.decision.detail}`)
  t.equal(ok.input.selfSeesPrimary, false)
  t.equal(ok.input.answers.length, 2, 'the unreachable witness did not answer')

  t.equal((await probeQuorum({ ...opts, witnesses: [w1, w2, sees] })).decision.veto, 'QUORUM_PRIMARY_SEEN', 'a witness heard the primary 800 ms ago')
  t.equal((await probeQuorum({ ...opts, witnesses: [w1, w2, ahead] })).decision.veto, 'QUORUM_HIGHER_EPOCH', 'a witness at epoch 4')
  t.equal((await probeQuorum({ ...opts, witnesses: [w1, busy, { ...closed, name: 'w4' }] })).decision.veto, 'QUORUM_NO_MAJORITY', 'REPL_BUSY is no answer')

  const start = performance.now()
  const slow = await probeQuorum({ ...opts, witnesses: [w1, hangs, { ...closed, name: 'w4' }] })
  const took = performance.now() - start
  t.equal(slow.decision.veto, 'QUORUM_NO_MAJORITY', 'a witness that never answers is no vote')
  t.ok(took < 1500 + 1000, `bounded by the timeout (${took.toFixed(0)} ms)`)

  const liveStandby = await startNode(t, 's0', ANSWERS_DEAD)
  t.equal((await probeQuorum({ ...opts, witnesses: [w1, w2], rankedBefore: [liveStandby] })).decision.veto, 'QUORUM_OUTRANKED', 'a live standby ranked first')
  t.equal((await probeQuorum({ ...opts, witnesses: [w1, w2], rankedBefore: [{ ...closed, name: 's0' }] })).decision.takeover, true, 'a dead one does not outrank')
})

t.test("this node's heartbeat to the primary", async (t) => {
  const w = await startNode(t, 'w1', ANSWERS_DEAD)
  const asPrimary = await startNode(t, 'p', { ...ANSWERS_DEAD, heartbeat: { status: repl_stat.REPL_OK, ok: { role: repl_role.REPL_PRIMARY, epoch: 3n } } })
  const staleUs = await startNode(t, 'p', { ...ANSWERS_DEAD, heartbeat: { status: repl_stat.REPL_STALE_EPOCH, epoch: 5n } })
  const fenced = await startNode(t, 'p', { ...ANSWERS_DEAD, heartbeat: { status: repl_stat.REPL_OK, ok: { role: repl_role.REPL_FENCED, epoch: 3n } } })
  const opts = { self: 's', selfEpoch: 3n, witnesses: [w, { name: 's', host: '127.0.0.1', port: 1 }], timeoutMs: 1500 }
  const a = await probeQuorum({ ...opts, primary: asPrimary })
  t.equal(a.input.selfSeesPrimary, true, 'answers as primary')
  t.equal(a.decision.veto, 'QUORUM_PRIMARY_SEEN')
  t.equal((await probeQuorum({ ...opts, primary: staleUs })).decision.veto, 'QUORUM_PRIMARY_SEEN', 'refuses us as stale: alive and ahead')
  const f = await probeQuorum({ ...opts, primary: fenced })
  t.equal(f.input.selfSeesPrimary, false, 'a fenced former primary serves nothing')
  t.equal(f.decision.takeover, true, `this node and w1 are 2 of 2: ${f.decision.detail}`)
})

t.test('--witness NAME=HOST:PORT is parsed strictly', async (t) => {
  t.strictSame(parseWitness('c=192.0.2.3:2050'), { name: 'c', host: '192.0.2.3', port: 2050 })
  t.strictSame(parseWitness('node-d=[fd00::4]:2050'), { name: 'node-d', host: 'fd00::4', port: 2050 })
  t.strictSame(parseWitness('e=witness.example:1'), { name: 'e', host: 'witness.example', port: 1 })
  for (const bad of ['192.0.2.3:2050', 'c=192.0.2.3', 'c=192.0.2.3:0', 'c=192.0.2.3:65536', '=h:1', 'c=fd00::4:2050', 'c d=h:1', `${'n'.repeat(65)}=h:1`, `${'é'.repeat(33)}=h:1`]) {
    t.throws(() => parseWitness(bad), { code: 'QUORUM_BAD_WITNESS' }, bad)
  }
  t.ok(new QuorumError('QUORUM_BAD_WITNESS', 'x') instanceof Error)
})
