/*
 * The NSM program served by a real tsnfs server (ServerOptions.locking.nsm), over
 * real sockets: the state number persists and is the next odd number after
 * each restart; on restart the server sends SM_NOTIFY to each monitored
 * peer's NSM, found through the peer's portmapper (a fake peer host on
 * 127.0.0.2), retrying while that peer is down; SM_NOTIFY from a peer fires
 * onPeerRestart and calls back a local SM_MON registrant; SM_MON is for
 * local callers only; malformed calls get GARBAGE_ARGS.
 */
import t from 'tap'
import type { Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { callPeer } from '../../../server/callback/caller.ts'
import type { CallOptions, PeerCall } from '../../../server/callback/caller.ts'
import { peerPort } from '../../../server/callback/portmap.ts'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import type { ServerOptions, TsnfsServer } from '../../../server/index.ts'
import type { Logger } from '../../../server/logger.ts'
import { silentLogger } from '../../../server/logger.ts'
import { createPortmapProgram } from '../../../server/portmap/program.ts'
import { PortRegistry } from '../../../server/portmap/registry.ts'
import { defineProgram } from '../../../server/rpc/program.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import { SM_PROG, sm_res, sm_status } from '../../../xdr/generated/nsm.ts'
import type { mon } from '../../../xdr/generated/nsm.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import { xdr_uint, xdr_void } from '../../../xdr/runtime/codec.ts'
import type { ProgramDef } from '../../../xdr/runtime/program.ts'
import { freePort } from '../../helpers/ports.ts'
import { startFakeNsmPeer } from '../../helpers/nsm-peer.ts'

const SM = SM_PROG.versions.SM_VERS.procs
const EXPORTS = parseExports('/export *(rw,insecure,backend=memory)\n', 'exports')

function stateDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-nsm-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

/** A server with the NSM on; `close` once (teardown closes it if the test did not). */
async function serve(t: Test, dir: string, nsm: NonNullable<Exclude<ServerOptions['locking'], false>>['nsm'] = {}, extra: Partial<ServerOptions> = {}): Promise<TsnfsServer & { stop(): Promise<void> }> {
  const server = await createServer({ exports: EXPORTS, stateDir: dir, port: 0, host: '127.0.0.1', locking: { nsm: { name: 'srv', ...nsm } }, ...extra })
  let closed: Promise<void> | null = null
  const stop = (): Promise<void> => (closed ??= server.close())
  t.teardown(stop)
  return Object.assign(server, { stop })
}

/** Call our server's NSM. */
function sm<A, R>(port: number, p: { proc: number; args: Codec<A>; res: Codec<R> }, argv: A, opts: CallOptions & { transport?: 'udp' | 'tcp'; host?: string } = {}): Promise<R> {
  const target: PeerCall = { host: opts.host ?? '127.0.0.1', port, transport: opts.transport ?? 'tcp', prog: SM_PROG.prog, vers: 1, proc: p.proc }
  return callPeer(target, p.args, argv, p.res, opts)
}

/** A logger that keeps its debug and info messages. */
function recording(): { log: Logger; messages: string[] } {
  const messages: string[] = []
  const keep = (a: object | string, msg?: string): void => {
    messages.push(typeof a === 'string' ? a : (msg ?? ''))
  }
  const log: Logger = { ...silentLogger, debug: keep, info: keep, child: () => log }
  return { log, messages }
}

const myId = { my_name: 'localhost', my_prog: 300100, my_vers: 1, my_proc: 1 }
const monOf = (name: string): mon => ({ mon_id: { mon_name: name, my_id: myId }, priv: Buffer.alloc(16, 0x5a) })

t.test('the state number persists and is the next odd number after each restart', async (t) => {
  const dir = stateDir(t)
  for (const expected of [1, 3, 5]) {
    const s = await serve(t, dir)
    t.equal(s.locking?.nsm.state, expected)
    t.same(await sm(s.port, SM.SM_STAT, { mon_name: 'anyone' }), { res_stat: sm_res.stat_succ, state: expected }, `SM_STAT answers ${String(expected)}`)
    t.same(await sm(s.port, SM.SM_STAT, { mon_name: 'anyone' }, { transport: 'udp' }), { res_stat: sm_res.stat_succ, state: expected }, 'over UDP too')
    await s.stop()
  }
})

t.test('no NSM when locking is off', async (t) => {
  const server = await createServer({ exports: EXPORTS, stateDir: stateDir(t), port: 0, host: '127.0.0.1', locking: false })
  t.teardown(() => server.close())
  t.equal(server.locking, null)
  await t.rejects(sm(server.port, SM.SM_NULL, undefined), { code: 'CALL_RPC_ERROR', status: 'PROG_UNAVAIL' })
})

t.test('SM_MON, SM_UNMON, SM_UNMON_ALL from this host; the list persists; garbage is GARBAGE_ARGS', async (t) => {
  const dir = stateDir(t)
  const s = await serve(t, dir)
  t.equal(await peerPort('127.0.0.1', s.port, SM_PROG.prog, 1, 'udp', { cache: null }), s.port, 'our portmapper knows the NSM')
  t.same(await sm(s.port, SM.SM_MON, monOf('client-a')), { res_stat: sm_res.stat_succ, state: 1 })
  t.same(await sm(s.port, SM.SM_MON, monOf('client-b'), { transport: 'udp' }), { res_stat: sm_res.stat_succ, state: 1 })
  t.same(await sm(s.port, SM.SM_MON, monOf('client-c')), { res_stat: sm_res.stat_succ, state: 1 })
  t.same(await sm(s.port, SM.SM_UNMON, monOf('client-a').mon_id), { state: 1 })
  await s.stop()

  const again = await serve(t, dir)
  t.same(again.locking?.nsm.entries().map((e) => e.name), ['client-b', 'client-c'], 'the list survived the restart')
  t.same(await sm(again.port, SM.SM_UNMON_ALL, myId), { state: 3 })
  t.same(again.locking?.nsm.entries(), [])
  await t.rejects(sm(again.port, { proc: SM.SM_MON.proc, args: xdr_uint, res: xdr_void }, 5), { code: 'CALL_RPC_ERROR', status: 'GARBAGE_ARGS' }, 'a truncated mon')
  await t.rejects(sm(again.port, { proc: SM.SM_NOTIFY.proc, args: xdr_uint, res: xdr_void }, 2000), { code: 'CALL_RPC_ERROR', status: 'GARBAGE_ARGS' }, 'a stat_chge whose name runs past the end')
  await t.resolves(sm(again.port, SM.SM_NULL, undefined), 'SM_NULL')
})

const outside = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address

t.test('SM_MON from another host is refused', { skip: outside === undefined ? 'this machine has no non-loopback IPv4 address to call from' : false }, async (t) => {
  const address = outside ?? ''
  const s = await serve(t, stateDir(t), {}, { host: '0.0.0.0' })
  const from = { host: address, localAddress: address }
  t.same(await sm(s.port, SM.SM_MON, monOf('client-a'), from), { res_stat: sm_res.stat_fail, state: 1 })
  t.same(await sm(s.port, SM.SM_MON, monOf('client-a')), { res_stat: sm_res.stat_succ, state: 1 }, 'from loopback it works')
  t.same(await sm(s.port, SM.SM_UNMON_ALL, myId, from), { state: 1 })
  await sm(s.port, SM.SM_SIMU_CRASH, undefined, from)
  t.equal(s.locking?.nsm.state, 1, 'no crash simulated for another host')
  t.equal(s.locking?.nsm.entries().length, 1, 'and nothing unmonitored')
  t.same(await sm(s.port, SM.SM_STAT, { mon_name: 'x' }, from), { res_stat: sm_res.stat_succ, state: 1 }, 'SM_STAT answers anyone')
})

t.test('the list bound holds over RPC', async (t) => {
  const s = await serve(t, stateDir(t), { maxEntries: 2 })
  t.equal((await sm(s.port, SM.SM_MON, monOf('a'))).res_stat, sm_res.stat_succ)
  t.equal((await sm(s.port, SM.SM_MON, monOf('b'))).res_stat, sm_res.stat_succ)
  t.equal((await sm(s.port, SM.SM_MON, monOf('c'))).res_stat, sm_res.stat_fail, 'the third is refused')
  t.equal((await sm(s.port, SM.SM_MON, monOf('a'))).res_stat, sm_res.stat_succ, 'monitoring a listed host again is fine')
  await t.rejects(s.locking?.nsm.monitor('d', '10.0.0.4') ?? Promise.resolve(), { code: 'NSM_FULL' })
})

t.test('on restart the server notifies its monitored peers, retrying while one is down', async (t) => {
  const dir = stateDir(t)
  const P = await freePort()
  const nsm = { peerPortmapPort: P, notifyFirstRetryMs: 200 }
  const first = await serve(t, dir, nsm)
  await first.locking?.nsm.monitor('client-a', '127.0.0.2')
  await first.stop()

  const { log, messages } = recording()
  const s = await serve(t, dir, nsm, { logger: log })
  t.same(s.locking?.nsm.known(), [{ name: 'client-a', address: '127.0.0.2' }], 'the client to expect reclaims from')
  await new Promise((r) => setTimeout(r, 300))
  const peer = await startFakeNsmPeer(t, '127.0.0.2', P)
  t.same(await peer.waitFor(1), [{ mon_name: 'srv', state: 3, from: '127.0.0.1' }], 'SM_NOTIFY with our name and new state')
  const report = await s.locking?.nsm.lastNotify
  t.same(report, { notified: [{ name: 'client-a', address: '127.0.0.2' }], gaveUp: [], stopped: [] })
  t.ok(messages.includes('status monitor: peer not notified yet'), 'the first try failed and was retried')
  t.ok(messages.includes('status monitor: peer notified of our restart'))
  t.same(s.locking?.nsm.entries(), [], 'the acknowledged entry of the previous run is gone')

  // SM_SIMU_CRASH (from this host): the next odd state, and the peers are told again.
  await s.locking?.nsm.monitor('client-a', '127.0.0.2')
  await sm(s.port, SM.SM_SIMU_CRASH, undefined)
  t.equal(s.locking?.nsm.state, 5)
  t.same((await peer.waitFor(2))[1], { mon_name: 'srv', state: 5, from: '127.0.0.1' })
})

t.test('a peer that never answers is given up on after notifyGiveUpMs', async (t) => {
  const dir = stateDir(t)
  const P = await freePort()
  const first = await serve(t, dir, { peerPortmapPort: P })
  await first.locking?.nsm.monitor('client-z', '127.0.0.3')
  await first.stop()
  const s = await serve(t, dir, { peerPortmapPort: P, notifyGiveUpMs: 400, notifyFirstRetryMs: 100 })
  const report = await s.locking?.nsm.lastNotify
  t.same(report?.gaveUp.map((g) => g.name), ['client-z'])
  t.match(report?.gaveUp[0]?.error, /127\.0\.0\.3/)
  t.same(s.locking?.nsm.entries().map((e) => e.name), ['client-z'], 'kept for the next restart')
})

/** A lock manager's callback program on this host: receives sm_status. */
const LM_PROG = {
  name: 'LM_PROG',
  prog: 300100,
  versions: {
    LM_V1: { name: 'LM_V1', vers: 1, procs: { LM_NULL: { name: 'LM_NULL', proc: 0, args: xdr_void, res: xdr_void }, LM_STATUS: { name: 'LM_STATUS', proc: 1, args: sm_status, res: xdr_void } } },
  },
} as const satisfies ProgramDef

t.test('SM_NOTIFY from a peer fires onPeerRestart and calls back the local SM_MON registrant', async (t) => {
  const P = await freePort()
  // The local lock manager, found through 127.0.0.1's portmapper at P.
  const statuses: sm_status[] = []
  const registry = new PortRegistry()
  const lm = defineProgram(LM_PROG, 'LM_V1', {
    LM_NULL: () => undefined,
    LM_STATUS: (s) => {
      statuses.push({ ...s, priv: Buffer.from(s.priv) })
      return undefined
    },
  })
  const lmServer = new RpcServer({ programs: [createPortmapProgram(registry), lm], logger: silentLogger })
  await lmServer.listen({ port: P, host: '127.0.0.1' })
  t.teardown(() => lmServer.close())
  registry.registerAll([lm], P)

  const s = await serve(t, stateDir(t), { peerPortmapPort: P })
  const restarts: string[] = []
  s.locking?.nsm.onPeerRestart((name, state, address) => restarts.push(`${name} ${String(state)} ${address}`))
  t.equal((await sm(s.port, SM.SM_MON, monOf('client-b'))).res_stat, sm_res.stat_succ)

  await sm(s.port, SM.SM_NOTIFY, { mon_name: 'client-b', state: 7 }, { transport: 'udp', localAddress: '127.0.0.2' })
  await sm(s.port, SM.SM_NOTIFY, { mon_name: 'client-b', state: 7 }, { localAddress: '127.0.0.2' })
  await sm(s.port, SM.SM_NOTIFY, { mon_name: 'client-q', state: 3 }, { localAddress: '127.0.0.4' })
  t.same(restarts, ['client-b 7 127.0.0.2', 'client-q 3 127.0.0.4'], 'once per state, with the address it came from')
  for (let i = 0; i < 200 && statuses.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
  t.same(statuses, [{ mon_name: 'client-b', state: 7, priv: Buffer.alloc(16, 0x5a) }], 'sm_status reached the registrant, priv unchanged')
})
