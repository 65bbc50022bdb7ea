/*
 * Wireshark's NLM and NSM dissectors judge our server's locking on the wire
 * (Debian's tshark; test/helpers/tshark.ts). Loopback traffic on the
 * server's one port is captured while nfsprobe (libnfs's raw NLM v4 and NSM
 * calls, an independent client) works through a script, then read back with
 * the port decoded as ONC RPC: every call and reply must be dissected by
 * procedure name, with the statuses the probe printed, and no packet may be
 * malformed or carry an expert error. Then our own RPC client (client/rpc
 * with the generated NLM and NSM codecs) does what libnfs cannot: NLM v1
 * and v3 (32-bit ranges), SHARE/UNSHARE, NM_LOCK, FREE_ALL, over UDP, and
 * SM_NOTIFY; and our client library's locks (two client hosts on 127.0.0.2
 * and .3, a blocking wait the server ends with a GRANTED callback found
 * through the waiter's portmapper) go over the wire both ways, as do the
 * restarted server's SM_NOTIFY and the client's reclaim. A deliberately
 * truncated call shows the judge can fail. Needs root
 * (capturing).
 */
import t from 'tap'
import { mkdirSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { join } from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { RpcUdpClient } from '../../client/rpc/udp-client.ts'
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import { NLM_PROG } from '../../xdr/generated/nlm.ts'
import { SM_PROG } from '../../xdr/generated/nsm.ts'
import { freePort } from '../helpers/ports.ts'
import { connect, mountRoot, NFS3, ROOT_CRED, startServer } from '../helpers/server.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { createServer } from '../../server/index.ts'
import type { TsnfsServer } from '../../server/index.ts'
import { readCapture, readPackets, startCapture } from '../helpers/tshark.ts'
import type { Ports } from '../helpers/tshark.ts'
import { buildProbe } from './conform.ts'
import { runNlm } from './nlm-probe.ts'

const dir = t.testdir({})
const s = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
// After the server: the build's assertion lets the root test end at its next idle moment.
const bin = await buildProbe(t)
const ports: Ports = { tcp: [s.port], udp: [s.port] }

/** "V4 LOCK Call FH:0x… svid:1 pos:0-10" -> "V4 LOCK Call"; "V1 STAT Reply (Call In 9)" -> "V1 STAT Reply". */
const callName = (info: string): string => /^(V\d+ \S+ (?:Call|Reply))/.exec(info)?.[1] ?? `undissected: ${info}`

const errors = (file: string): Promise<string[][]> =>
  readCapture(file, ports, '_ws.malformed || _ws.expert.severity >= error', ['frame.number', '_ws.col.Protocol', '_ws.col.Info', '_ws.expert.message'])

t.test('NLM and NSM calls from libnfs and our replies dissect by name, with the statuses sent, and nothing malformed', async (t) => {
  const file = join(dir, 'probe.pcapng')
  const cap = await startCapture(t, ports, file)
  const r = await runNlm(bin, { url: s.url('/export'), pmapPort: s.port, caller: 'wire-host' }, '/wire', [
    'null',
    'lock,x,off=0,len=10,svid=1,oh=one',
    'test,x,off=5,len=1,svid=2,oh=two',
    'lock,x,off=0,len=1,svid=2,oh=two',
    'lock,x,block,off=0,len=1,svid=2,oh=two',
    'cancel,x,block,off=0,len=1,svid=2,oh=two',
    'lock,x,off=0xfffffffffffffff0,len=0,svid=3,oh=three',
    'unlock,off=0,len=10,svid=1,oh=one',
    'unlock,off=0xfffffffffffffff0,len=0,svid=3,oh=three',
    'sm-null',
    'sm-stat,name=wire-host',
    'sm-mon,name=wire-host,my=wire-host',
    'sm-unmon,name=wire-host,my=wire-host',
    'sm-unmon-all,my=wire-host',
  ])
  await cap.stop()
  t.equal(r.exitCode, 0, `the probe had every reply (stderr: ${r.stderr.trim() || 'none'}; ${r.lines.join(' | ')})`)

  // One pass of the dissectors over the capture; the rows are then split by program.
  const rows = await readPackets(file, ports, 'nlm || stat || portmap', [
    'rpc.program', 'rpc.msgtyp', '_ws.col.Info', 'rpc.replystat', 'rpc.state_accept',
    'nlm.stat', 'nlm.test_stat.stat', 'nlm.lock.svid', 'nlm.lock.l_offset64', 'nlm.lock.l_len64', 'stat.stat_res.state',
  ])
  const of = (prog: string): Record<string, string>[] => rows.filter((p) => p['rpc.program'] === prog)
  const nlm = of('100021')
  t.strictSame(nlm.map((p) => callName(p['_ws.col.Info'] ?? '')), [
    'V4 NULL Call', 'V4 NULL Reply',
    'V4 LOCK Call', 'V4 LOCK Reply',
    'V4 TEST Call', 'V4 TEST Reply',
    'V4 LOCK Call', 'V4 LOCK Reply',
    'V4 LOCK Call', 'V4 LOCK Reply',
    'V4 CANCEL Call', 'V4 CANCEL Reply',
    'V4 LOCK Call', 'V4 LOCK Reply',
    'V4 UNLOCK Call', 'V4 UNLOCK Reply',
    'V4 UNLOCK Call', 'V4 UNLOCK Reply',
  ], 'every NLM call and reply, by name, in order')
  const replies = nlm.filter((p) => p['rpc.msgtyp'] === '1').slice(1)
  // nlm4_stats as Wireshark read them: granted, (TEST) denied, denied, blocked, granted (CANCEL), granted (2^64 - 16 to the end), granted, granted.
  t.strictSame(replies.map((p) => p['nlm.stat'] === '' ? `test:${p['nlm.test_stat.stat'] ?? ''}` : p['nlm.stat']), ['0', 'test:1', '1', '3', '0', '0', '0', '0'], 'the statuses')
  const holder = replies[1] ?? {}
  t.strictSame([holder['nlm.lock.svid'], holder['nlm.lock.l_offset64'], holder['nlm.lock.l_len64']], ['1', '0', '10'], 'the denied TEST names its holder: svid 1, offset 0, length 10')
  t.equal(nlm.find((p) => p['rpc.msgtyp'] === '0' && p['nlm.lock.svid'] === '3')?.['nlm.lock.l_offset64'], '18446744073709551600', 'a 64-bit offset on the wire')

  const nsm = of('100024')
  t.strictSame(nsm.map((p) => callName(p['_ws.col.Info'] ?? '')), [
    'V1 NULL Call', 'V1 NULL Reply',
    'V1 STAT Call', 'V1 STAT Reply',
    'V1 MON Call', 'V1 MON Reply',
    'V1 UNMON Call', 'V1 UNMON Reply',
    'V1 UNMON_ALL Call', 'V1 UNMON_ALL Reply',
  ], 'every NSM call and reply, by name')
  const state = nsm[3]?.['stat.stat_res.state'] ?? ''
  t.match(state, /^\d+$/, 'STAT\'s reply carries our state')
  t.equal(nsm[5]?.['stat.stat_res.state'], state, 'and MON\'s the same state')

  const portmap = of('100000').map((p) => p['_ws.col.Info'] ?? '')
  t.ok(portmap.length >= 4 && portmap.every((i) => /^V2 GETPORT (Call|Reply)/.test(i)), `the probe found NLM and NSM through our portmapper: ${portmap.join(' | ')}`)

  const answers = rows.filter((p) => p['rpc.msgtyp'] === '1')
  t.ok(answers.length > 0 && answers.every((p) => p['rpc.replystat'] === '0' && p['rpc.state_accept'] === '0'), 'every reply is MSG_ACCEPTED, SUCCESS')
  t.strictSame(await errors(file), [], 'no malformed packet, no expert error')
})

t.test('our RPC client over UDP: NLM v1 and v3, shares, NM_LOCK, FREE_ALL and SM_NOTIFY dissect by name, nothing malformed', async (t) => {
  const tcp = await connect(t, s.port)
  const root = await mountRoot(tcp, '/export')
  const looked = await tcp.call(NFS_PROGRAM.prog, 3, NFS3.NFSPROC3_LOOKUP, { what: { dir: { data: root }, name: Buffer.from('wire') } })
  if (looked.status !== 0) throw new Error(`LOOKUP wire: ${String(looked.status)} (the first test makes the file)`)
  const fh = Buffer.from(looked.resok.object.data)
  const udp = await RpcUdpClient.connect('127.0.0.1', s.port, { cred: ROOT_CRED })
  t.teardown(() => udp.close())
  const file = join(dir, 'client.pcapng')
  const cap = await startCapture(t, ports, file)
  const v1 = NLM_PROG.versions.NLM_VERS.procs
  const v3 = NLM_PROG.versions.NLM_VERSX.procs
  const v4 = NLM_PROG.versions.NLM4_VERS.procs
  const cookie = (n: number): Buffer => Buffer.from([0, 0, 0, n])
  const lock32 = (owner: string, uppid: number) => ({ caller_name: 'udp-host', fh, oh: Buffer.from(owner), uppid, l_offset: 100, l_len: 50 })
  const got: string[] = []
  const lock = await udp.call(NLM_PROG.prog, 1, v1.NLMPROC_LOCK, { cookie: cookie(1), block: false, exclusive: true, alock: lock32('v1-owner', 7), reclaim: false, state: 0 })
  got.push(`v1 LOCK ${String(lock.stat.stat)}`)
  const test = await udp.call(NLM_PROG.prog, 3, v3.NLMPROC3_TEST, { cookie: cookie(2), exclusive: false, alock: lock32('v3-owner', 8) })
  got.push(`v3 TEST ${String(test.test_stat.stat)}`)
  const nm = await udp.call(NLM_PROG.prog, 3, v3.NLMPROC3_NM_LOCK, { cookie: cookie(3), block: false, exclusive: false, alock: { ...lock32('v3-owner', 8), l_offset: 1000 }, reclaim: false, state: 0 })
  got.push(`v3 NM_LOCK ${String(nm.stat.stat)}`)
  const share = { caller_name: 'udp-host', fh, oh: Buffer.from('share-owner'), mode: 0, access: 1 } as const
  const sh = await udp.call(NLM_PROG.prog, 3, v3.NLMPROC3_SHARE, { cookie: cookie(4), share, reclaim: false })
  got.push(`v3 SHARE ${String(sh.stat)}`)
  const ush = await udp.call(NLM_PROG.prog, 4, v4.NLMPROC4_UNSHARE, { cookie: cookie(5), share, reclaim: false })
  got.push(`v4 UNSHARE ${String(ush.stat)}`)
  await udp.call(NLM_PROG.prog, 3, v3.NLMPROC3_FREE_ALL, { name: 'udp-host', state: 0 })
  await udp.call(SM_PROG.prog, 1, SM_PROG.versions.SM_VERS.procs.SM_NOTIFY, { mon_name: 'udp-host', state: 3 })
  const after = await udp.call(NLM_PROG.prog, 4, v4.NLMPROC4_TEST, { cookie: cookie(6), exclusive: true, alock: { caller_name: 'other', fh, oh: Buffer.from('x'), svid: 1, l_offset: 0n, l_len: 0n } })
  got.push(`v4 TEST ${String(after.test_stat.stat)}`)
  await cap.stop()
  t.strictSame(got, ['v1 LOCK 0', 'v3 TEST 1', 'v3 NM_LOCK 0', 'v3 SHARE 0', 'v4 UNSHARE 0', 'v4 TEST 0'],
    'granted, a shared TEST denied by the v1 lock, granted, granted, granted, and after FREE_ALL nothing held')

  const rows = await readCapture(file, ports, 'nlm || stat', ['_ws.col.Protocol', '_ws.col.Info', 'udp.srcport', 'nlm.lock.l_offset', 'nlm.lock.l_len'])
  t.strictSame(rows.map((p) => `${p[0] ?? ''} ${callName(p[1] ?? '')}`), [
    'NLM V1 LOCK Call', 'NLM V1 LOCK Reply',
    'NLM V3 TEST Call', 'NLM V3 TEST Reply',
    'NLM V3 NM_LOCK Call', 'NLM V3 NM_LOCK Reply',
    'NLM V3 SHARE Call', 'NLM V3 SHARE Reply',
    'NLM V4 UNSHARE Call', 'NLM V4 UNSHARE Reply',
    'NLM V3 FREE_ALL Call', 'NLM V3 FREE_ALL Reply',
    'STAT V1 NOTIFY Call', 'STAT V1 NOTIFY Reply',
    'NLM V4 TEST Call', 'NLM V4 TEST Reply',
  ], 'every call and reply, by name and version')
  t.ok(rows.every((p) => p[2] !== ''), 'all of it over UDP')
  t.strictSame(rows[0]?.slice(3), ['100', '50'], 'the v1 range in 32-bit fields')
  t.strictSame(await errors(file), [], 'no malformed packet, no expert error')
})

t.test('our client library\'s locks, and the server\'s GRANTED callback to a waiting host, dissect by name, nothing malformed', async (t) => {
  // The server finds a client host's lock service through that host's portmapper on port P.
  const P = await freePort()
  const srv = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n', { locking: { nsm: { peerPortmapPort: P } } })
  const host = async (name: string, addr: string): Promise<NfsClient> => {
    const q = `callername=${name}&clientaddr=${addr}&lockportmapport=${String(P)}&lockstatedir=${join(dir, name)}`
    // A wait is never ended by polling here: only the GRANTED callback ends it.
    const c = await NfsClient.mount(srv.url('/export', '', q), { lockPollMs: 60_000 })
    t.teardown(() => c.umount())
    return c
  }
  const a = await host('wire-a', '127.0.0.2')
  const b = await host('wire-b', '127.0.0.3')
  await a.writeFile('/locked', Buffer.alloc(64))
  const svcA = await (await a.locks()).service()
  const svcB = await (await b.locks()).service()
  const here: Ports = { tcp: [srv.port, P, svcA.port, svcB.port], udp: [srv.port, P, svcA.port, svcB.port] }
  const file = join(dir, 'library.pcapng')
  const cap = await startCapture(t, here, file)
  await a.lock('/locked', { start: 0, length: 0, exclusive: true, wait: false, owner: 1 })
  const holder = await b.test('/locked', { start: 10, length: 1, exclusive: false, owner: 2 })
  const waiting = b.lock('/locked', { start: 0, length: 32, exclusive: true, wait: true, owner: 2 })
  await new Promise((r) => setTimeout(r, 300))
  await a.unlock('/locked', { start: 0, length: 0, owner: 1 })
  await waiting
  await b.unlock('/locked', { start: 0, length: 32, owner: 2 })
  await cap.stop()
  t.match(holder, { exclusive: true, svid: 1, start: 0n, length: 0n }, 'TEST named a\'s lock')

  const rows = await readPackets(file, here, 'nlm || stat || portmap', ['rpc.program', '_ws.col.Info', 'ip.src', 'ip.dst'])
  const seen = new Set(rows.map((p) => `${p['ip.src'] ?? ''}>${p['ip.dst'] ?? ''} ${callName(p['_ws.col.Info'] ?? '')}`))
  for (const want of [
    '127.0.0.2>127.0.0.1 V4 LOCK Call', '127.0.0.1>127.0.0.2 V4 LOCK Reply',
    '127.0.0.3>127.0.0.1 V4 TEST Call', '127.0.0.1>127.0.0.3 V4 TEST Reply',
    '127.0.0.3>127.0.0.1 V4 LOCK Call', '127.0.0.1>127.0.0.3 V4 LOCK Reply',
    '127.0.0.2>127.0.0.1 V4 UNLOCK Call', '127.0.0.1>127.0.0.2 V4 UNLOCK Reply',
    // The server asks b's portmapper where b's NLM is, then calls it back.
    '127.0.0.1>127.0.0.3 V2 GETPORT Call', '127.0.0.3>127.0.0.1 V2 GETPORT Reply',
    '127.0.0.1>127.0.0.3 V4 GRANTED Call', '127.0.0.3>127.0.0.1 V4 GRANTED Reply',
    '127.0.0.3>127.0.0.1 V4 UNLOCK Call', '127.0.0.1>127.0.0.3 V4 UNLOCK Reply',
  ]) t.ok(seen.has(want), want)
  t.notOk([...seen].some((x) => x.includes('undissected')), `every packet dissected: ${[...seen].join(' | ')}`)
  t.strictSame(await readCapture(file, here, '_ws.malformed || _ws.expert.severity >= error', ['frame.number', '_ws.col.Info']), [], 'no malformed packet, no expert error')
})

t.test('a restarted server\'s SM_NOTIFY to a client host and the client\'s reclaim dissect by name, nothing malformed', async (t) => {
  const P = await freePort()
  const port = await freePort()
  const stateDir = join(dir, 'restart-state')
  // A host directory: the file and its handle outlive the server.
  const exported = join(dir, 'restart-export')
  mkdirSync(exported, { recursive: true })
  const locking = { nsm: { peerPortmapPort: P }, nlm: { graceMs: 10_000 } }
  const start = (): Promise<TsnfsServer> => createServer({ exports: parseExports(`${exported} *(rw,insecure,no_root_squash)\n`, 'exports'), stateDir, port, host: '127.0.0.1', locking })
  let srv = await start()
  t.teardown(() => srv.close())
  const q = `callername=wire-r&clientaddr=127.0.0.4&lockportmapport=${String(P)}&lockstatedir=${join(dir, 'wire-r')}`
  const c = await NfsClient.mount(`nfs://127.0.0.1${exported}?nfsport=${String(port)}&mountport=${String(port)}&${q}`, { lockPollMs: 60_000 })
  t.teardown(() => c.umount())
  await c.writeFile('/kept', Buffer.alloc(16))
  await c.lock('/kept', { start: 0, length: 0, exclusive: true, wait: false, owner: 1 })
  const svc = await (await c.locks()).service()
  const here: Ports = { tcp: [port, P, svc.port], udp: [port, P, svc.port] }
  const file = join(dir, 'restart.pcapng')
  const cap = await startCapture(t, here, file)
  await srv.close()
  srv = await start()
  const deadline = Date.now() + 10_000
  while (srv.locking?.nlm.table.holds('wire-r') !== true && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  await cap.stop()
  t.equal(srv.locking?.nlm.table.holds('wire-r'), true, 'the client reclaimed its lock')

  const rows = await readPackets(file, here, 'nlm || stat || portmap', ['_ws.col.Info', 'ip.src', 'ip.dst', 'nlm.reclaim'])
  const seen = rows.map((p) => `${p['ip.src'] ?? ''}>${p['ip.dst'] ?? ''} ${callName(p['_ws.col.Info'] ?? '')}`)
  for (const want of [
    '127.0.0.1>127.0.0.4 V2 GETPORT Call', '127.0.0.4>127.0.0.1 V2 GETPORT Reply',
    '127.0.0.1>127.0.0.4 V1 NOTIFY Call', '127.0.0.4>127.0.0.1 V1 NOTIFY Reply',
    '127.0.0.4>127.0.0.1 V4 LOCK Call', '127.0.0.1>127.0.0.4 V4 LOCK Reply',
  ]) t.ok(seen.includes(want), want)
  t.ok(rows.some((p) => p['_ws.col.Info']?.startsWith('V4 LOCK Call') === true && p['nlm.reclaim'] === '1'), 'the LOCK is a reclaim')
  t.notOk(seen.some((x) => x.includes('undissected')), `every packet dissected: ${seen.join(' | ')}`)
  t.strictSame(await readCapture(file, here, '_ws.malformed || _ws.expert.severity >= error', ['frame.number', '_ws.col.Info']), [], 'no malformed packet, no expert error')
})

t.test('the judge can fail: a truncated LOCK call is flagged malformed', async (t) => {
  const file = join(dir, 'bad.pcapng')
  const cap = await startCapture(t, ports, file)
  // An RPC call to NLM v4 LOCK whose arguments stop after the cookie: our server answers GARBAGE_ARGS.
  const body = Buffer.alloc(40 + 8)
  let o = 0
  for (const v of [0x4a4a4a4a, 0, 2, 100021, 4, 2, 0, 0, 0, 0, 4]) o = body.writeUInt32BE(v, o)
  body.writeUInt32BE(0xdeadbeef, o)
  const record = Buffer.concat([Buffer.from([0x80, 0, 0, body.length]), body])
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const sock = tcpConnect(s.port, '127.0.0.1', () => sock.write(record))
    sock.once('data', (d) => {
      sock.destroy()
      resolve(d)
    })
    sock.once('error', reject)
  })
  await cap.stop()
  t.equal(reply.readUInt32BE(4 + 20), 4, 'our server answered GARBAGE_ARGS')
  const bad = await errors(file)
  t.ok(bad.length > 0 && bad.some((p) => p[1] === 'NLM'), `Wireshark flags the call: ${bad.map((p) => p.join(' ')).join(' | ')}`)
})
