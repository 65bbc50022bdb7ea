/*
 * The client's lock service on its own, over real sockets: what a server
 * finds when it asks our portmapper, how GRANTED and SM_STAT are answered,
 * what hostile bytes do (a closed connection, never a crash), and the NSM
 * state: odd, larger at every start, and SM_NOTIFY sent at start to every
 * server the previous instance locked on (received by an RPC endpoint of
 * the test's own, with its own portmapper).
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createSocket } from 'node:dgram'
import { join } from 'node:path'
import { once } from 'node:events'
import { resolveOptions } from '../../client/options.ts'
import type { ClientOptions } from '../../client/options.ts'
import { dumpPorts, getPort } from '../../client/portmap.ts'
import { connectTransport } from '../../client/rpc/connect.ts'
import { LockClient } from '../../client/lock/lock-client.ts'
import { LockService } from '../../client/lock/lock-service.ts'
import { RpcService, serve } from '../../client/lock/rpc-service.ts'
import { mappingsAt, portmapProgram } from '../../client/lock/portmap-program.ts'
import { NLM_PROG, nlm4_stats } from '../../xdr/generated/nlm.ts'
import { SM_PROG } from '../../xdr/generated/nsm.ts'
import { freePort } from '../helpers/ports.ts'

const NLM4 = NLM_PROG.versions.NLM4_VERS
const SM1 = SM_PROG.versions.SM_VERS
const dir = t.testdir({})
const warnings: string[] = []
const log = { warn: (m: string) => { warnings.push(m) } }

async function service(t: Test, o: ClientOptions): Promise<LockService> {
  const opts = resolveOptions({ lockStateDir: join(dir, 'state'), ...o })
  const svc = await LockService.acquire({ lock: opts.lock, proto: 'tcp', clientAddress: opts.clientAddress, log })
  t.teardown(() => svc.release())
  return svc
}

t.test('portmapper on the fixed port answers for NLM v4 and NSM v1 only', async t => {
  const P = await freePort()
  const one = await service(t, { callerName: 'pm-one', clientAddress: '127.0.0.3', lockPortmapPort: P })
  t.equal(one.port, P, 'without a lockPort, one port serves the portmapper and the programs (as our server does)')
  t.equal(await getPort({ host: '127.0.0.3', portmapPort: P, protocol: 'udp' }, 100021, 4), P)
  const Q = await freePort()
  const svc = await service(t, { callerName: 'pm-host', clientAddress: '127.0.0.2', lockPort: Q, lockPortmapPort: P })
  t.equal(svc.port, Q, 'the service on its own port, the portmapper on the fixed one')
  for (const protocol of ['tcp', 'udp'] as const) {
    const q = { host: '127.0.0.2', portmapPort: P, protocol }
    t.equal(await getPort(q, 100021, 4), svc.port, `NLM v4 over ${protocol}`)
    t.equal(await getPort(q, 100024, 1), svc.port, `NSM v1 over ${protocol}`)
    await t.rejects(getPort(q, 100021, 1), { code: 'RPC_PROG_NOT_REGISTERED' }, 'NLM v1 is not served')
    await t.rejects(getPort(q, 100005, 3), { code: 'RPC_PROG_NOT_REGISTERED' }, 'nothing else is answered for')
  }
  const dump = await dumpPorts({ host: '127.0.0.2', portmapPort: P, protocol: 'tcp' })
  t.same(dump.map(m => `${String(m.prog)}/${String(m.vers)}/${String(m.protocol)}/${String(m.port)}`).sort(), [
    `100021/4/tcp/${String(svc.port)}`, `100021/4/udp/${String(svc.port)}`, `100024/1/tcp/${String(svc.port)}`, `100024/1/udp/${String(svc.port)}`,
  ])
  await t.rejects(getPort({ host: '127.0.0.1', portmapPort: P, protocol: 'tcp', policy: { timeoutMs: 1000, retrans: 0 } }, 100021, 4), { code: 'RPC_CONNECTION_CLOSED' }, 'bound to its own address only')
})

t.test('GRANTED for no waiter is refused; SM_STAT tells the state; NULL answers', async t => {
  const svc = await service(t, { callerName: 'cb-host', clientAddress: '127.0.0.2', lockPortmapPort: 0 })
  t.equal(svc.state % 2, 1, 'state is odd while up')
  for (const protocol of ['tcp', 'udp'] as const) {
    const c = await connectTransport('127.0.0.2', svc.port, { protocol, cred: 'none' })
    t.teardown(() => c.close())
    await c.call(NLM_PROG.prog, 4, NLM4.procs.NLMPROC4_NULL, undefined)
    const alock = { caller_name: 'server', fh: Buffer.from('fh'), oh: Buffer.from('oh'), svid: 7, l_offset: 0n, l_len: 0n }
    const r = await c.call(NLM_PROG.prog, 4, NLM4.procs.NLMPROC4_GRANTED, { cookie: Buffer.from('c1'), exclusive: true, alock })
    t.same(r, { cookie: Buffer.from('c1'), stat: { stat: nlm4_stats.NLM4_DENIED } }, `unknown GRANTED denied over ${protocol}, cookie echoed`)
    const s = await c.call(SM_PROG.prog, 1, SM1.procs.SM_STAT, { mon_name: 'x' })
    t.same(s, { res_stat: 0, state: svc.state })
    await t.rejects(c.call(SM_PROG.prog, 1, SM1.procs.SM_MON, { mon_id: { mon_name: 'x', my_id: { my_name: 'y', my_prog: 1, my_vers: 1, my_proc: 1 } }, priv: Buffer.alloc(16) }), { code: 'RPC_PROC_UNAVAIL' })
    await t.rejects(c.call(NLM_PROG.prog, 1, { proc: 0, args: NLM4.procs.NLMPROC4_NULL.args, res: NLM4.procs.NLMPROC4_NULL.res }, undefined), { code: 'RPC_PROG_MISMATCH', low: 4, high: 4 })
    await t.rejects(c.call(100003, 3, { proc: 0, args: NLM4.procs.NLMPROC4_NULL.args, res: NLM4.procs.NLMPROC4_NULL.res }, undefined), { code: 'RPC_PROG_UNAVAIL' })
  }
})

t.test('hostile input: garbage arguments, an oversized record, junk datagrams', async t => {
  const svc = await service(t, { callerName: 'bad-host', clientAddress: '127.0.0.2', lockPortmapPort: 0 })
  const c = await connectTransport('127.0.0.2', svc.port, { protocol: 'tcp', cred: 'none' })
  t.teardown(() => c.close())
  const truncated = { proc: 5, args: { encode: (w: { u32(v: number): void }) => { w.u32(4) }, decode: () => undefined }, res: NLM4.procs.NLMPROC4_GRANTED.res }
  await t.rejects(c.call(NLM_PROG.prog, 4, truncated as never, undefined), { code: 'RPC_GARBAGE_ARGS' })

  const s = connect(svc.port, '127.0.0.2')
  await once(s, 'connect')
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE((0x8000_0000 | (1024 * 1024)) >>> 0)
  s.write(mark)
  await once(s, 'close')
  t.pass('a 1 MiB record mark closes the connection')

  const u = createSocket('udp4')
  u.send(Buffer.from('not rpc at all'), svc.port, '127.0.0.2')
  u.send(Buffer.alloc(16 * 1024), svc.port, '127.0.0.2')
  await new Promise(r => setTimeout(r, 100))
  u.close()
  await c.call(NLM_PROG.prog, 4, NLM4.procs.NLMPROC4_NULL, undefined)
  t.pass('still answering')
})

t.test('state: odd, larger at each start; SM_NOTIFY at start to the servers of the previous instance', async t => {
  const stateDir = join(dir, 'notify')
  const file = join(stateDir, 'client-n-host.json')
  // A "server": its own portmapper and NSM on one port, recording the notifications.
  const got: { mon_name: string; state: number; from: string }[] = []
  let port = 0
  const nsm = new RpcService([
    portmapProgram(() => mappingsAt([[SM_PROG.prog, 1]], port)),
    { prog: SM_PROG.prog, vers: 1, procs: [serve(SM1.procs.SM_NOTIFY, (a, call) => { got.push({ ...a, from: call.peer.address }) })] },
  ], log)
  port = await nsm.listen('127.0.0.1', 0)
  t.teardown(() => nsm.close())

  const first = await LockService.acquire({ lock: resolveOptions({ callerName: 'n-host', lockStateDir: stateDir, lockPortmapPort: 0 }).lock, proto: 'tcp', clientAddress: '127.0.0.3', log })
  const s1 = first.state
  await first.release()
  t.equal(s1 % 2, 1)
  t.same(JSON.parse(readFileSync(file, 'utf8')), { state: s1, servers: [] })

  // As if the first instance had died holding locks there.
  writeFileSync(file, JSON.stringify({ state: s1, servers: [{ host: '127.0.0.1', portmapPorts: [1, port], proto: 'tcp' }] }))
  const second = await LockService.acquire({ lock: resolveOptions({ callerName: 'n-host', lockStateDir: stateDir, lockPortmapPort: 0 }).lock, proto: 'tcp', clientAddress: '127.0.0.3', log })
  const again = await LockService.acquire({ lock: resolveOptions({ callerName: 'n-host', lockStateDir: stateDir, lockPortmapPort: 0 }).lock, proto: 'tcp', clientAddress: '127.0.0.3', log })
  t.equal(again, second, 'the same settings share one service')
  await again.release()
  t.equal(second.state, s1 + 2, 'the next odd number')
  t.same(got, [{ mon_name: 'n-host', state: s1 + 2, from: '127.0.0.3' }], 'the server heard of the restart, from our address (the first portmapper tried was dead)')
  t.same(JSON.parse(readFileSync(file, 'utf8')).servers, [], 'a notified server is forgotten')
  await second.release()

  writeFileSync(file, '{not json')
  const third = await LockService.acquire({ lock: resolveOptions({ callerName: 'n-host', lockStateDir: stateDir, lockPortmapPort: 0 }).lock, proto: 'tcp', clientAddress: '127.0.0.3', log })
  t.equal(third.state, 1, 'a damaged file starts over')
  await third.release()
})

t.test('without lockPortmapPort: NLM v4 and NSM v1 go to the system rpcbind, unless a live process holds them', async t => {
  if (!(await rpcbindRunning(t))) return
  const q = { host: '127.0.0.1', portmapPort: 111, protocol: 'tcp' as const, policy: { timeoutMs: 2000, retrans: 0 } }
  const held = async (prog: number, vers: number): Promise<number> => getPort(q, prog, vers).catch(() => 0)
  const before = [await held(100021, 4), await held(100024, 1)]
  const seen: string[] = []
  const opts = resolveOptions({ callerName: 'rpcb-host', clientAddress: '127.0.0.2', lockStateDir: join(dir, 'rpcb') })
  const svc = await LockService.acquire({ lock: opts.lock, proto: 'tcp', clientAddress: opts.clientAddress, log: { warn: m => { seen.push(m) } } })
  if (before.every(p => p === 0)) {
    t.same(seen, [], 'registered without a word')
    t.equal(await held(100021, 4), svc.port, 'NLM v4 maps to the service')
    t.equal(await held(100024, 1), svc.port, 'NSM v1 maps to the service')
    await svc.release()
    t.equal(await held(100021, 4), 0, 'unregistered at release')
    t.equal(await held(100024, 1), 0)
  } else {
    await svc.release()
    // A lockd, rpc.statd or Ganesha of this host (or of another test) holds them: left alone, and said why.
    t.match(seen, [/not registered/], 'not registered, and the log says why')
    t.same([await held(100021, 4), await held(100024, 1)], before, 'the holder keeps its mappings')
  }
})

t.test('GRANTED_MSG: the waiter is granted and GRANTED_RES goes back to the server that sent it', async t => {
  // A lock manager of the test's own on 127.0.0.1: it queues every LOCK (BLOCKED) and records GRANTED_RES.
  const results: { cookie: string; stat: number; from: string }[] = []
  let port = 0
  const nlm = new RpcService([
    portmapProgram(() => mappingsAt([[NLM_PROG.prog, 4]], port)),
    {
      prog: NLM_PROG.prog,
      vers: 4,
      procs: [
        serve(NLM4.procs.NLMPROC4_LOCK, a => ({ cookie: a.cookie, stat: { stat: nlm4_stats.NLM4_BLOCKED } })),
        serve(NLM4.procs.NLMPROC4_UNLOCK, a => ({ cookie: a.cookie, stat: { stat: nlm4_stats.NLM4_GRANTED } })),
        serve(NLM4.procs.NLMPROC4_GRANTED_RES, (r, call) => { results.push({ cookie: r.cookie.toString(), stat: r.stat.stat, from: call.peer.address }) }),
      ],
    },
  ], log)
  port = await nlm.listen('127.0.0.1', 0)
  t.teardown(() => nlm.close())
  const opts = resolveOptions({ nfsport: port, callerName: 'msg-host', clientAddress: '127.0.0.2', lockPortmapPort: 0, lockStateDir: join(dir, 'msg'), lockPollMs: 60_000 })
  const locks = new LockClient({ host: '127.0.0.1', options: opts })
  t.teardown(() => locks.close())
  const fh = Buffer.from('a file handle')
  const waiting = locks.lock(fh, { start: 10, length: 5, exclusive: true, wait: true, owner: 42 })
  const svc = await locks.service()
  await new Promise(r => setTimeout(r, 200))
  // The server's callback comes from its own address, as a one-way message.
  const cb = await connectTransport('127.0.0.2', svc.port, { protocol: 'udp', cred: 'none', localAddress: '127.0.0.1' })
  t.teardown(() => cb.close())
  const alock = { caller_name: 'msg-host', fh, oh: Buffer.from('x'), svid: 42, l_offset: 10n, l_len: 5n }
  await cb.call(NLM_PROG.prog, 4, NLM4.procs.NLMPROC4_GRANTED_MSG, { cookie: Buffer.from('k1'), exclusive: true, alock })
  await waiting
  t.same((await locks.heldBy(fh, 42)).map(r => [r.start, r.end, r.exclusive]), [[10n, 15n, true]], 'the waiter holds the lock')
  for (let i = 0; i < 50 && results.length === 0; i++) await new Promise(r => setTimeout(r, 20))
  t.same(results, [{ cookie: 'k1', stat: nlm4_stats.NLM4_GRANTED, from: '127.0.0.2' }], 'GRANTED_RES with the cookie, from our address')
  await cb.call(NLM_PROG.prog, 4, NLM4.procs.NLMPROC4_GRANTED_MSG, { cookie: Buffer.from('k2'), exclusive: true, alock })
  for (let i = 0; i < 50 && results.length < 2; i++) await new Promise(r => setTimeout(r, 20))
  t.same(results[1], { cookie: 'k2', stat: nlm4_stats.NLM4_DENIED, from: '127.0.0.2' }, 'a second grant of it nobody waits for is refused')
})

t.test('warnings', async t => {
  t.same(warnings, [])
})

/** A system rpcbind for the test: the running one, or `rpcbind -f -w` started now (and stopped at t's end). */
async function rpcbindRunning(t: Test): Promise<boolean> {
  const answers = (): Promise<boolean> => getPort({ host: '127.0.0.1', portmapPort: 111, protocol: 'tcp', policy: { timeoutMs: 1000, retrans: 0 } }, 100000, 2).then(() => true, () => false)
  if (await answers()) return true
  const child = spawn('rpcbind', ['-f', '-w'], { stdio: 'ignore' })
  child.on('error', () => undefined)
  t.teardown(() => { child.kill('SIGTERM') })
  for (let i = 0; i < 30; i++) {
    if (await answers()) return true
    await new Promise(r => setTimeout(r, 100))
  }
  t.fail('rpcbind (Debian package rpcbind) did not start')
  return false
}
