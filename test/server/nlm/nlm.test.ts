/*
 * The server's lock manager over real sockets: NLM v4, v1 and v3 calls from
 * an RPC client, a fake client host (test/helpers/nlm-peer.ts) whose own lock
 * manager receives GRANTED and _RES messages through its portmapper, and
 * restarts of the server in the same state directory for the grace period.
 */
import t from 'tap'
import type { Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { RpcTcpClient } from '../../../client/rpc/tcp-client.ts'
import { RpcUdpClient } from '../../../client/rpc/udp-client.ts'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import type { LockingOptions } from '../../../server/locking.ts'
import { NLM_PROG } from '../../../xdr/generated/nlm.ts'
import type { nlm4_lock, nlm4_res, nlm4_testres, nlm_lock } from '../../../xdr/generated/nlm.ts'
import { SM_PROG } from '../../../xdr/generated/nsm.ts'
import { Nfs, rawRecord, replyWords } from '../../helpers/e2e.ts'
import { encodeToBuffer } from '../../../xdr/runtime/codec.ts'
import { startFakeNlmHost } from '../../helpers/nlm-peer.ts'
import type { FakeNlmHost } from '../../helpers/nlm-peer.ts'
import { ROOT_CRED, mountRoot } from '../../helpers/server.ts'

const V4 = NLM_PROG.versions.NLM4_VERS.procs
const V1 = NLM_PROG.versions.NLM_VERS.procs
const V3 = NLM_PROG.versions.NLM_VERSX.procs
const EXPORTS = parseExports('/export *(rw,insecure,no_root_squash,backend=memory)\n', 'exports')
const S = { GRANTED: 0, DENIED: 1, NOLOCKS: 2, BLOCKED: 3, GRACE: 4, DEADLCK: 5, STALE_FH: 7, FBIG: 8 } as const

interface Rig {
  c: RpcTcpClient
  fh: Buffer
  peer: FakeNlmHost
  port: number
  stop(): Promise<void>
}

function stateDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-nlm-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }); })
  return dir
}

async function rig(t: Test, opts: { dir?: string; peer?: FakeNlmHost; locking?: LockingOptions } = {}): Promise<Rig> {
  const peer = opts.peer ?? (await startFakeNlmHost(t, '127.0.0.1'))
  const server = await createServer({
    exports: EXPORTS,
    stateDir: opts.dir ?? stateDir(t),
    port: 0,
    host: '127.0.0.1',
    locking: {
      nsm: { name: 'srv', peerPortmapPort: peer.port, notifyFirstRetryMs: 100 },
      nlm: { graceMs: 0, grantRetryMs: 100, ...opts.locking?.nlm },
      ...opts.locking,
    },
  })
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    await c.close()
    await server.close()
  }
  t.teardown(stop)
  const c = await RpcTcpClient.connect('127.0.0.1', server.port, { cred: ROOT_CRED })
  const nfs = new Nfs(c)
  const root = await mountRoot(c, '/export')
  const fh = (await nfs.lookup(root, 'f')).fh ?? (await nfs.create(root, 'f'))
  return { c, fh, peer, port: server.port, stop }
}

const cookie = Buffer.from('c00k1e')
const alock = (fh: Buffer, who: string, svid: number, l_offset: bigint, l_len: bigint): nlm4_lock => ({ caller_name: who, fh, oh: Buffer.from(`${who}-${String(svid)}`), svid, l_offset, l_len })

async function lock(r: Rig, l: nlm4_lock, o: { exclusive?: boolean; block?: boolean; reclaim?: boolean } = {}): Promise<number> {
  const res = await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_LOCK, { cookie, block: o.block ?? false, exclusive: o.exclusive ?? true, alock: l, reclaim: o.reclaim ?? false, state: 1 })
  t.same(res.cookie, cookie, 'the cookie comes back')
  return res.stat.stat
}
const unlock = async (r: Rig, l: nlm4_lock): Promise<number> => (await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_UNLOCK, { cookie, alock: l })).stat.stat
const test4 = (r: Rig, l: nlm4_lock, exclusive = true): Promise<nlm4_testres> => r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_TEST, { cookie, exclusive, alock: l })

t.test('v4: grant, conflict with the holder named, same owner never conflicts, unlock splits', async (t) => {
  const r = await rig(t)
  const a = alock(r.fh, 'host-a', 1, 0n, 100n)
  t.equal(await lock(r, a), S.GRANTED)
  t.equal(await lock(r, a), S.GRANTED, 'a retransmission is granted again')
  const b = alock(r.fh, 'host-b', 7, 50n, 10n)
  const tr = await test4(r, b)
  t.same(tr.test_stat, { stat: S.DENIED, holder: { exclusive: true, svid: 1, oh: Buffer.from('host-a-1'), l_offset: 0n, l_len: 100n } })
  t.equal(await lock(r, b), S.DENIED)
  t.equal(await lock(r, b, { exclusive: false }), S.DENIED, 'a shared lock conflicts with an exclusive one')
  t.equal((await test4(r, alock(r.fh, 'host-a', 1, 10n, 5n))).test_stat.stat, S.GRANTED, 'the owner itself is not in its own way')
  // Unlock the middle: the holder's lock splits in two, the hole is free.
  t.equal(await unlock(r, alock(r.fh, 'host-a', 1, 40n, 30n)), S.GRANTED)
  t.equal(await lock(r, b), S.GRANTED, 'the hole is free')
  const left = await test4(r, alock(r.fh, 'host-c', 3, 0n, 0n))
  t.same(left.test_stat, { stat: S.DENIED, holder: { exclusive: true, svid: 1, oh: Buffer.from('host-a-1'), l_offset: 0n, l_len: 40n } }, 'the first holder is the left half')
  // Shared locks of two owners coexist.
  const s1 = alock(r.fh, 'host-c', 3, 1000n, 10n)
  const s2 = alock(r.fh, 'host-d', 4, 1005n, 10n)
  t.equal(await lock(r, s1, { exclusive: false }), S.GRANTED)
  t.equal(await lock(r, s2, { exclusive: false }), S.GRANTED)
  t.equal(await lock(r, alock(r.fh, 'host-c', 3, 1000n, 10n)), S.DENIED, 'an upgrade in place waits for the other reader')
})

t.test('v4: 64-bit ranges, to end of file, and the FBIG overflow rule; a stale handle', async (t) => {
  const r = await rig(t)
  const big = alock(r.fh, 'host-a', 1, 1n << 40n, 0n)
  t.equal(await lock(r, big), S.GRANTED)
  const tr = await test4(r, alock(r.fh, 'host-b', 2, (1n << 62n), 1n))
  t.same(tr.test_stat, { stat: S.DENIED, holder: { exclusive: true, svid: 1, oh: Buffer.from('host-a-1'), l_offset: 1n << 40n, l_len: 0n } }, 'to end of file is length 0')
  t.equal(await lock(r, alock(r.fh, 'host-b', 2, 0n, 1n << 40n)), S.GRANTED, 'the bytes just below are free')
  t.equal(await lock(r, alock(r.fh, 'host-b', 2, (1n << 64n) - 1n, 2n)), S.FBIG, 'a range past the last 64-bit offset')
  t.equal(await lock(r, alock(r.fh, 'host-b', 2, (1n << 64n) - 1n, 1n)), S.DENIED, 'the very last byte is a byte (and held)')
  const stale = Buffer.alloc(r.fh.length, 0xab)
  t.equal(await lock(r, alock(stale, 'host-b', 2, 0n, 1n)), S.STALE_FH)
  t.equal((await test4(r, alock(stale, 'host-b', 2, 0n, 1n))).test_stat.stat, S.STALE_FH)
})

t.test('v1 and v3: 32-bit ranges meet v4 locks; holders past 4 GiB are reported clamped', async (t) => {
  const r = await rig(t)
  t.equal(await lock(r, alock(r.fh, 'host-a', 1, 1n << 33n, 10n)), S.GRANTED)
  const l32 = (who: string, uppid: number, l_offset: number, l_len: number): nlm_lock => ({ caller_name: who, fh: r.fh, oh: Buffer.from(who), uppid, l_offset, l_len })
  // Length 0 is the whole file, past 4 GiB too: it meets the v4 lock.
  const whole = l32('host-b', 2, 0, 0)
  const t1 = await r.c.call(NLM_PROG.prog, 1, V1.NLMPROC_TEST, { cookie, exclusive: true, alock: whole })
  t.same(t1.test_stat, { stat: S.DENIED, holder: { exclusive: true, uppid: 1, oh: Buffer.from('host-a-1'), l_offset: 0xffffffff, l_len: 0 } })
  const l1 = await r.c.call(NLM_PROG.prog, 3, V3.NLMPROC3_LOCK, { cookie, block: false, exclusive: true, alock: whole, reclaim: false, state: 1 })
  t.equal(l1.stat.stat, S.DENIED)
  // A range whose end overflows 32 bits stops at 4 GiB and so misses the v4 lock at 8 GiB.
  const l2 = await r.c.call(NLM_PROG.prog, 3, V3.NLMPROC3_LOCK, { cookie, block: false, exclusive: true, alock: l32('host-b', 2, 0xfffffff0, 0xffffffff), reclaim: false, state: 1 })
  t.equal(l2.stat.stat, S.GRANTED)
  const t2 = await test4(r, alock(r.fh, 'host-c', 3, (1n << 32n) - 1n, 2n))
  t.same(t2.test_stat, { stat: S.DENIED, holder: { exclusive: true, svid: 2, oh: Buffer.from('host-b'), l_offset: 0xfffffff0n, l_len: 16n } })
  // v3's stale handle is "no locks": v1/v3 have no STALE_FH.
  const l3 = await r.c.call(NLM_PROG.prog, 3, V3.NLMPROC3_LOCK, { cookie, block: false, exclusive: true, alock: { ...l32('host-b', 2, 0, 1), fh: Buffer.alloc(32, 1) }, reclaim: false, state: 1 })
  t.equal(l3.stat.stat, S.NOLOCKS)
})

t.test('blocking: BLOCKED, then GRANTED to the client once the holder unlocks; CANCEL withdraws', async (t) => {
  const r = await rig(t)
  const a = alock(r.fh, 'host-a', 1, 0n, 0n)
  t.equal(await lock(r, a), S.GRANTED)
  const b = alock(r.fh, 'host-b', 2, 10n, 10n)
  t.equal(await lock(r, b, { block: true }), S.BLOCKED)
  const c = alock(r.fh, 'host-c', 3, 30n, 10n)
  t.equal(await lock(r, c, { block: true }), S.BLOCKED)
  t.equal((await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_CANCEL, { cookie, block: true, exclusive: true, alock: c })).stat.stat, S.GRANTED)
  const from = r.peer.events.length
  t.equal(await unlock(r, a), S.GRANTED)
  const ev = await r.peer.next('GRANTED', from)
  t.equal(ev.kind, 'GRANTED')
  if (ev.kind === 'GRANTED') t.same({ ...ev.args.alock, fh: null }, { ...b, fh: null }, 'GRANTED names the lock the client asked for')
  const held = await test4(r, alock(r.fh, 'host-d', 4, 0n, 0n))
  t.same(held.test_stat.stat === S.DENIED ? held.test_stat.holder.svid : -1, 2, 'host-b holds it now')
  await sleep(300)
  t.equal(r.peer.events.slice(from).filter((e) => e.kind === 'GRANTED').length, 1, 'the cancelled request was never granted')
  t.equal((await test4(r, alock(r.fh, 'host-d', 4, 30n, 10n))).test_stat.stat, S.GRANTED, 'and holds nothing')
})

t.test('a refused GRANTED gives the lock back; an unanswered one is retried', async (t) => {
  const r = await rig(t)
  const a = alock(r.fh, 'host-a', 1, 0n, 10n)
  const b = alock(r.fh, 'host-b', 2, 0n, 10n)
  t.equal(await lock(r, a), S.GRANTED)
  t.equal(await lock(r, b, { block: true }), S.BLOCKED)
  r.peer.grantedReply = S.DENIED
  let from = r.peer.events.length
  await unlock(r, a)
  await r.peer.next('GRANTED', from)
  await sleep(200)
  t.equal((await test4(r, alock(r.fh, 'host-c', 3, 0n, 10n))).test_stat.stat, S.GRANTED, 'the client no longer wanted it: released')
  // Grace-period answers from the client mean "again later".
  t.equal(await lock(r, a), S.GRANTED)
  t.equal(await lock(r, b, { block: true }), S.BLOCKED)
  r.peer.grantedReply = S.GRACE
  from = r.peer.events.length
  await unlock(r, a)
  await r.peer.next('GRANTED', from)
  r.peer.grantedReply = S.GRANTED
  await r.peer.next('GRANTED', r.peer.events.length)
  t.equal((await test4(r, alock(r.fh, 'host-c', 3, 0n, 10n))).test_stat.stat, S.DENIED, 'offered again and taken')
})

t.test('the message forms: LOCK_MSG and TEST_MSG answered by _RES calls to the client', async (t) => {
  const r = await rig(t)
  const a = alock(r.fh, 'host-a', 1, 0n, 10n)
  await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_LOCK_MSG, { cookie, block: false, exclusive: true, alock: a, reclaim: false, state: 1 })
  const lr = await r.peer.next('LOCK_RES')
  t.same(lr.kind === 'LOCK_RES' ? (lr.res satisfies nlm4_res) : null, { cookie, stat: { stat: S.GRANTED } })
  await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_TEST_MSG, { cookie, exclusive: true, alock: alock(r.fh, 'host-b', 2, 5n, 1n) })
  const tr = await r.peer.next('TEST_RES')
  t.equal(tr.kind === 'TEST_RES' ? tr.res.test_stat.stat : -1, S.DENIED)
  // A blocked LOCK_MSG is granted with GRANTED_MSG, and the client's GRANTED_RES settles it.
  await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_LOCK_MSG, { cookie, block: true, exclusive: true, alock: alock(r.fh, 'host-b', 2, 0n, 10n), reclaim: false, state: 1 })
  const from = r.peer.events.length
  await unlock(r, a)
  const gm = await r.peer.next('GRANTED_MSG', from)
  if (gm.kind !== 'GRANTED_MSG') throw new Error('unreachable')
  await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_GRANTED_RES, { cookie: gm.args.cookie, stat: { stat: S.GRANTED } })
  const n = r.peer.events.filter((e) => e.kind === 'GRANTED_MSG').length
  await sleep(400)
  t.equal(r.peer.events.filter((e) => e.kind === 'GRANTED_MSG').length, n, 'no more offers once answered')
})

t.test('shares: deny modes against access; UNSHARE frees', async (t) => {
  const r = await rig(t)
  const share = (who: string, access: 0 | 1 | 2 | 3, mode: 0 | 1 | 2 | 3) =>
    r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_SHARE, { cookie, share: { caller_name: who, fh: r.fh, oh: Buffer.from(who), mode, access }, reclaim: false })
  t.equal((await share('host-a', 3, 2)).stat, S.GRANTED, 'read-write, deny write')
  t.equal((await share('host-b', 2, 0)).stat, S.DENIED, 'a writer is denied')
  t.equal((await share('host-b', 1, 0)).stat, S.GRANTED, 'a reader is not')
  await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_UNSHARE, { cookie, share: { caller_name: 'host-a', fh: r.fh, oh: Buffer.from('host-a'), mode: 2, access: 3 }, reclaim: false })
  t.equal((await share('host-c', 2, 0)).stat, S.GRANTED, 'after UNSHARE the writer gets in')
})

t.test('FREE_ALL, and a client restart told by its NSM, free its locks and grant the waiters', async (t) => {
  const r = await rig(t)
  t.equal(await lock(r, alock(r.fh, 'host-a', 1, 0n, 10n)), S.GRANTED)
  t.equal(await lock(r, alock(r.fh, 'host-b', 2, 0n, 10n), { block: true }), S.BLOCKED)
  const from = r.peer.events.length
  await r.c.call(NLM_PROG.prog, 4, V4.NLMPROC4_FREE_ALL, { name: 'host-a', state: 3 })
  await r.peer.next('GRANTED', from)
  // host-b restarts: its NSM says so (SM_NOTIFY), and what it held goes.
  await r.c.call(SM_PROG.prog, 1, SM_PROG.versions.SM_VERS.procs.SM_NOTIFY, { mon_name: 'host-b', state: 5 })
  await sleep(100)
  t.equal((await test4(r, alock(r.fh, 'host-c', 3, 0n, 10n))).test_stat.stat, S.GRANTED)
})

t.test('restart: the server tells its clients, refuses new locks in grace, takes reclaims, ends grace early', async (t) => {
  const dir = stateDir(t)
  const peer = await startFakeNlmHost(t, '127.0.0.1')
  const first = await rig(t, { dir, peer })
  t.equal(await lock(first, alock(first.fh, 'host-a', 1, 0n, 10n)), S.GRANTED)
  await first.stop()
  const seen = peer.notifications.length
  const r = await rig(t, { dir, peer, locking: { nlm: { graceMs: 30_000, graceQuietMs: 300 } } })
  const n = await peer.waitFor(seen + 1)
  t.match(n[seen], { mon_name: 'srv' }, 'SM_NOTIFY names the server')
  t.equal(await lock(r, alock(r.fh, 'host-b', 2, 0n, 10n)), S.GRACE, 'a new lock waits for the grace period')
  t.equal((await test4(r, alock(r.fh, 'host-b', 2, 0n, 10n))).test_stat.stat, S.GRACE)
  t.equal(await lock(r, alock(r.fh, 'host-a', 1, 0n, 10n), { reclaim: true }), S.GRANTED, 'the reclaim is granted')
  // host-a was the only client: its reclaims stop, grace ends long before 30 s.
  const t0 = performance.now()
  let stat: number = S.GRACE
  while (stat === S.GRACE && performance.now() - t0 < 5000) {
    await sleep(100)
    stat = await lock(r, alock(r.fh, 'host-b', 2, 0n, 10n))
  }
  t.equal(stat, S.DENIED, 'after grace host-b meets host-a reclaimed lock')
})

t.test('a client that floods locks is capped with NOLOCKS', async (t) => {
  const r = await rig(t, { locking: { nlm: { graceMs: 0, limits: { maxPerClient: 8 } } } })
  const stats: number[] = []
  for (let i = 0; i < 10; i++) stats.push(await lock(r, alock(r.fh, 'host-a', 1, BigInt(i * 10), 5n)))
  t.same(stats, [0, 0, 0, 0, 0, 0, 0, 0, S.NOLOCKS, S.NOLOCKS])
  t.equal(await lock(r, alock(r.fh, 'host-b', 1, 1000n, 5n)), S.GRANTED, 'another client is not affected')
  // Unlocking the middle of a held range would split it past the limit: refused, the lock stays whole.
  t.equal(await unlock(r, alock(r.fh, 'host-a', 1, 1n, 2n)), S.NOLOCKS)
  t.equal((await test4(r, alock(r.fh, 'host-b', 1, 2n, 1n))).test_stat.stat, S.DENIED, 'still held')
  t.equal(await unlock(r, alock(r.fh, 'host-a', 1, 0n, 5n)), S.GRANTED, 'a whole range unlocks')
})

t.test('UDP: the same lock manager; a lock blocked over UDP is granted back over UDP', async (t) => {
  const r = await rig(t)
  const u = await RpcUdpClient.connect('127.0.0.1', r.port, { cred: ROOT_CRED, timeoutMs: 1000, retries: 3 })
  t.teardown(() => u.close())
  const a = alock(r.fh, 'host-a', 1, 0n, 10n)
  t.equal(await lock(r, a), S.GRANTED, 'held over TCP')
  const b = alock(r.fh, 'host-b', 2, 5n, 10n)
  const tr = await u.call(NLM_PROG.prog, 4, V4.NLMPROC4_TEST, { cookie, exclusive: true, alock: b })
  t.equal(tr.test_stat.stat, S.DENIED, 'seen over UDP')
  const lr = await u.call(NLM_PROG.prog, 4, V4.NLMPROC4_LOCK, { cookie, block: true, exclusive: true, alock: b, reclaim: false, state: 1 })
  t.equal(lr.stat.stat, S.BLOCKED)
  const from = r.peer.events.length
  await unlock(r, a)
  const ev = await r.peer.next('GRANTED', from)
  t.equal(ev.kind === 'GRANTED' ? ev.args.alock.svid : -1, 2)
  t.equal((await u.call(NLM_PROG.prog, 4, V4.NLMPROC4_UNLOCK, { cookie, alock: b })).stat.stat, S.GRANTED)
  t.equal((await test4(r, alock(r.fh, 'host-c', 3, 0n, 0n))).test_stat.stat, S.GRANTED, 'and released over UDP')
})

t.test('malformed NLM calls are GARBAGE_ARGS and the server keeps serving', async (t) => {
  const r = await rig(t)
  const good = encodeToBuffer(V4.NLMPROC4_LOCK.args, { cookie, block: false, exclusive: true, alock: alock(r.fh, 'x', 1, 0n, 1n), reclaim: false, state: 1 })
  // The cookie claims 2^31 bytes: refused before anything is allocated.
  const huge = Buffer.from(good)
  huge.writeUInt32BE(0x80000000, 0)
  const cases: [string, number, number, Buffer][] = [
    ['v4 LOCK truncated', 4, 2, good.subarray(0, good.length - 4)],
    ['v4 LOCK with a 2 GiB cookie', 4, 2, huge],
    ['v4 LOCK with a trailing word', 4, 2, Buffer.concat([good, Buffer.alloc(4)])],
    ['v1 TEST empty', 1, 1, Buffer.alloc(0)],
    ['v3 SHARE truncated', 3, 20, good.subarray(0, 12)],
  ]
  let xid = 0x4000
  for (const [label, vers, proc, args] of cases) {
    const x = ++xid
    t.equal((await r.c.callRaw(rawRecord(x, NLM_PROG.prog, vers, proc, args))).toString('hex'), replyWords.garbageArgs(x).toString('hex'), label)
  }
  t.equal(await lock(r, alock(r.fh, 'host-a', 1, 0n, 1n)), S.GRANTED, 'still serving')
})
