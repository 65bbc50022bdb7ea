/*
 * MOUNT versions 3 and 1 on a whole server (RFC 1813 §5.2; RFC 1094 A):
 * every procedure, the mount list (DUMP after MNT/UMNT/UMNTALL, kept in the
 * state directory across restarts), EXPORT groups, subdirectory mounts.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import type { exportnode, mountbody } from '../../xdr/generated/mount.ts'
import { mountstat3 } from '../../xdr/generated/mount.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { MOUNT1, MOUNT3, connect, mountRoot, startServer } from '../helpers/server.ts'
import { MOUNT_PROG, Nfs, b } from '../helpers/e2e.ts'

const LINES = `
/export *(rw,insecure,root_squash,backend=memory)
/lab    127.0.0.1(rw,insecure,backend=memory) 10.0.0.0/8(ro,insecure)
`

const list = (ms: mountbody[]): string[][] => ms.map((m) => [m.ml_hostname.toString(), m.ml_directory.toString()])
const exportsOf = (es: exportnode[]): [string, string[]][] => es.map((e) => [e.ex_dir.toString(), e.ex_groups.map((g) => g.gr_name.toString())])

/** Void results, widened so they can be compared with undefined. */
const nothing = (p: Promise<undefined>): Promise<unknown> => p

async function dump(cl: RpcTcpClient, vers: 1 | 3 = 3): Promise<string[][]> {
  return list(await cl.call(MOUNT_PROG, vers, vers === 3 ? MOUNT3.MOUNTPROC3_DUMP : MOUNT1.MOUNTPROC_DUMP, undefined))
}

async function setup(t: Test, extra = {}): Promise<{ cl: RpcTcpClient; stateDir: string }> {
  const { port, stateDir } = await startServer(t, LINES, extra)
  return { cl: await connect(t, port), stateDir }
}

t.test('MOUNT v3: NULL, MNT, DUMP, UMNT, UMNTALL', async (t) => {
  const { cl } = await setup(t)
  t.equal(await nothing(cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_NULL, undefined)), undefined, 'NULL')
  t.same(await dump(cl), [], 'nothing mounted yet')
  const r = await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/export'))
  t.equal(r.fhs_status, mountstat3.MNT3_OK)
  if (r.fhs_status === mountstat3.MNT3_OK) {
    t.equal(r.mountinfo.fhandle.length, 32, 'a 32-byte handle')
    t.same(r.mountinfo.auth_flavors, [1], 'AUTH_SYS offered')
  }
  await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/export'))
  t.same(await dump(cl), [['127.0.0.1', '/export']], 'DUMP lists the mount once')
  await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/lab'))
  t.same(await dump(cl), [['127.0.0.1', '/export'], ['127.0.0.1', '/lab']])
  t.equal(await nothing(cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_UMNT, b('/export'))), undefined, 'UMNT')
  t.same(await dump(cl), [['127.0.0.1', '/lab']], 'UMNT removed it')
  await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_UMNT, b('/never-mounted'))
  t.same(await dump(cl), [['127.0.0.1', '/lab']], 'UMNT of something not mounted changes nothing')
  await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/export'))
  t.equal(await nothing(cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_UMNTALL, undefined)), undefined, 'UMNTALL')
  t.same(await dump(cl), [], 'UMNTALL removed every mount of this host')
  const refused = await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/nowhere'))
  t.equal(refused.fhs_status, mountstat3.MNT3ERR_NOENT)
  t.same(await dump(cl), [], 'a failed MNT is not listed')
})

t.test('EXPORT lists exports with their groups; * is the empty list', async (t) => {
  const { cl } = await setup(t)
  const want = [
    ['/export', []],
    ['/lab', ['127.0.0.1', '10.0.0.0/8']],
  ]
  t.same(exportsOf(await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_EXPORT, undefined)), want, 'v3')
  t.same(exportsOf(await cl.call(MOUNT_PROG, 1, MOUNT1.MOUNTPROC_EXPORT, undefined)), want, 'v1')
})

t.test('MOUNT v1: NULL, MNT (EACCES: no NFSv2 handles), DUMP, UMNT, UMNTALL', async (t) => {
  const { cl } = await setup(t)
  t.equal(await nothing(cl.call(MOUNT_PROG, 1, MOUNT1.MOUNTPROC_NULL, undefined)), undefined, 'NULL')
  t.same(await cl.call(MOUNT_PROG, 1, MOUNT1.MOUNTPROC_MNT, b('/export')), { fhs_status: 13 }, 'MNT v1 → 13')
  t.same(await dump(cl, 1), [], 'a v1 MNT is not recorded')
  await mountRoot(cl, '/export')
  await mountRoot(cl, '/lab')
  t.same(await dump(cl, 1), [['127.0.0.1', '/export'], ['127.0.0.1', '/lab']], 'v1 DUMP sees v3 mounts')
  t.equal(await nothing(cl.call(MOUNT_PROG, 1, MOUNT1.MOUNTPROC_UMNT, b('/lab'))), undefined, 'UMNT')
  t.same(await dump(cl, 1), [['127.0.0.1', '/export']])
  t.equal(await nothing(cl.call(MOUNT_PROG, 1, MOUNT1.MOUNTPROC_UMNTALL, undefined)), undefined, 'UMNTALL')
  t.same(await dump(cl, 1), [])
})

t.test('the mount list survives a restart with the same state directory', async (t) => {
  const first = await setup(t)
  await mountRoot(first.cl, '/export')
  await mountRoot(first.cl, '/lab')
  await first.cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_UMNT, b('/lab'))
  const second = await setup(t, { stateDir: first.stateDir })
  t.same(await dump(second.cl), [['127.0.0.1', '/export']], 'the second server reads rmtab')
})

t.test('a subdirectory mount gives the subdirectory handle', async (t) => {
  const { cl } = await setup(t)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/export')
  const sub = await nfs.mkdir(root, 'sub')
  await nfs.mkdir(sub, 'deeper')
  const viaMount = await mountRoot(cl, '/export/sub')
  const viaLookup = await nfs.lookup(root, 'sub')
  t.equal(viaLookup.status, nfsstat3.NFS3_OK)
  t.equal((await nfs.getattr(viaMount)).attr?.fileid, (await nfs.getattr(viaLookup.fh ?? Buffer.alloc(0))).attr?.fileid, 'same fileid')
  t.equal(viaMount.toString('hex'), sub.toString('hex'), 'the very handle MKDIR returned')
  t.equal((await nfs.lookup(viaMount, 'deeper')).status, nfsstat3.NFS3_OK, 'usable as a directory')
  const deep = await mountRoot(cl, '//export//sub/deeper/')
  t.equal((await nfs.getattr(deep)).attr?.type, 2, 'repeated and trailing slashes are ignored')
  t.same((await dump(cl)).slice(0, 2), [['127.0.0.1', '/export'], ['127.0.0.1', '/export/sub']], 'DUMP lists the subdirectory mount')
  const dots = await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/export/sub/../sub'))
  t.equal(dots.fhs_status, mountstat3.MNT3ERR_NOENT, '.. components are refused')
})

t.test('the mount list keeps the canonical path, so UMNT of another spelling removes it', async (t) => {
  const { port } = await startServer(t)
  const c = await connect(t, port)
  await mountRoot(c, '//export//')
  const listed = await c.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_DUMP, undefined)
  t.strictSame(listed.map((m) => m.ml_directory.toString()), ['/export'])
  await c.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_UMNT, Buffer.from('/export/'))
  t.strictSame(await c.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_DUMP, undefined), [])
})
