/*
 * The built-in portmapper (RFC 1833 §3) on a whole server: GETPORT for our
 * own programs on both transports, DUMP, SET/UNSET from loopback, UDP, and
 * the optional second listener (`portmapPort`).
 */
import t from 'tap'
import { createServer as netServer } from 'node:net'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { RpcUdpClient } from '../../client/rpc/udp-client.ts'
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PROG } from '../../xdr/generated/portmap.ts'
import type { mapping } from '../../xdr/generated/portmap.ts'
import { connect, startServer } from '../helpers/server.ts'
import { MOUNT_PROG, NFS_PROG, PMAP_PROG_NUMBER } from '../helpers/e2e.ts'

const PMAP = PMAP_PROG.versions.PMAP_VERS.procs
const TCP = IPPROTO_TCP
const UDP = IPPROTO_UDP

interface Caller {
  call: RpcTcpClient['call']
}
const getport = (c: Caller, prog: number, vers: number, prot: number): Promise<number> =>
  c.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_GETPORT, { prog, vers, prot, port: 0 })
const key = (m: mapping): string => `${m.prog}/${m.vers}/${m.prot}/${m.port}`

t.test('GETPORT answers for our programs on TCP and UDP, 0 for others', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  // NLM (100021) v1, v3, v4 and NSM (100024) v1: locking is on by default.
  for (const [prog, vers] of [[NFS_PROG, 3], [MOUNT_PROG, 3], [MOUNT_PROG, 1], [PMAP_PROG_NUMBER, 2], [100021, 1], [100021, 3], [100021, 4], [100024, 1]] as const) {
    t.equal(await getport(cl, prog, vers, TCP), port, `${prog} v${vers} tcp`)
    t.equal(await getport(cl, prog, vers, UDP), port, `${prog} v${vers} udp`)
  }
  t.equal(await getport(cl, 123_456, 1, TCP), 0, 'unknown program')
  t.equal(await getport(cl, NFS_PROG, 2, TCP), 0, 'NFS v2 is not served')
  t.equal(await getport(cl, NFS_PROG, 3, 99), 0, 'unknown protocol')
})

t.test('DUMP lists every mapping', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  const got = (await cl.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_DUMP, undefined)).map((n) => key(n.map)).sort()
  const want: string[] = []
  // NLM (100021) v1, v3, v4 and NSM (100024) v1: locking is on by default.
  for (const [prog, vers] of [[NFS_PROG, 3], [MOUNT_PROG, 3], [MOUNT_PROG, 1], [PMAP_PROG_NUMBER, 2], [100021, 1], [100021, 3], [100021, 4], [100024, 1]] as const) {
    want.push(key({ prog, vers, prot: TCP, port }), key({ prog, vers, prot: UDP, port }))
  }
  t.same(got, want.sort())
})

t.test('SET and UNSET from loopback', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  const m = { prog: 300_001, vers: 2, prot: TCP, port: 4321 }
  t.equal(await cl.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_SET, m), true, 'SET of a new mapping')
  t.equal(await cl.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_SET, { ...m, port: 9999 }), false, 'SET of a mapped (prog, vers, prot)')
  t.equal(await cl.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_SET, { ...m, prot: UDP, port: 4322 }), true, 'the same on UDP is another mapping')
  t.equal(await getport(cl, m.prog, m.vers, TCP), 4321)
  t.equal(await getport(cl, m.prog, m.vers, UDP), 4322)
  t.equal(await cl.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_SET, { ...m, prot: 1 }), false, 'SET with an unknown protocol')
  t.equal(await cl.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_UNSET, { ...m, port: 0 }), true, 'UNSET')
  t.equal(await getport(cl, m.prog, m.vers, TCP), 0, 'gone on TCP')
  t.equal(await getport(cl, m.prog, m.vers, UDP), 0, 'and on UDP (UNSET ignores prot)')
  t.equal(await cl.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_UNSET, m), false, 'UNSET of nothing')
  t.equal(await getport(cl, NFS_PROG, 3, TCP), port, 'our own mappings untouched')
})

t.test('over UDP', async (t) => {
  const { port } = await startServer(t)
  const u = await RpcUdpClient.connect('127.0.0.1', port, { timeoutMs: 500 })
  t.teardown(() => u.close())
  t.equal(await getport(u, NFS_PROG, 3, UDP), port, 'GETPORT')
  t.equal(await u.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_SET, { prog: 300_002, vers: 1, prot: UDP, port: 7 }), true, 'SET')
  t.equal(await getport(u, 300_002, 1, UDP), 7)
  t.equal((await u.call(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_DUMP, undefined)).length, 17, 'DUMP: 16 of ours (8 of them NLM and NSM) and the new one')
})

async function freePort(): Promise<number> {
  const s = netServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const a = s.address()
  await new Promise<void>((resolve) => s.close(() => { resolve() }))
  return typeof a === 'object' && a !== null ? a.port : 0
}

t.test('portmapPort: a second listener answers PORTMAP only', async (t) => {
  const pm = await freePort()
  const { port, server } = await startServer(t, undefined, { portmapPort: pm })
  t.equal(server.portmapPort, pm)
  const c = await RpcTcpClient.connect('127.0.0.1', pm)
  t.teardown(() => c.close())
  t.equal(await getport(c, NFS_PROG, 3, TCP), port, 'NFS is on the main port')
  t.equal(await getport(c, PMAP_PROG_NUMBER, 2, TCP), pm, 'the portmapper is registered on its own port')
  await t.rejects(c.call(NFS_PROG, 3, { proc: 0, args: PMAP.PMAPPROC_NULL.args, res: PMAP.PMAPPROC_NULL.res }, undefined), { code: 'RPC_PROG_UNAVAIL' })
})

t.test('portmapPort 0 reports the port the kernel picked', async (t) => {
  const { server } = await startServer(t, undefined, { portmapPort: 0 })
  t.not(server.portmapPort, 0, 'the actual port, not 0')
  const pm = server.portmapPort ?? 0
  if (pm === 0) return
  const c = await RpcTcpClient.connect('127.0.0.1', pm)
  t.teardown(() => c.close())
  t.equal(await getport(c, PMAP_PROG_NUMBER, 2, TCP), pm, 'and registers the portmapper there')
})
