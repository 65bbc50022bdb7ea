/*
 * Export policy through MOUNT and NFS on a whole server: client matching
 * (address, network, `*`, secure), read-only exports, squashing, handle
 * verification (forged, stale, another key, another backend instance) and
 * reload (unchanged exports keep handles and data, removed ones go stale).
 */
import t from 'tap'
import { join } from 'node:path'
import { mountstat3 } from '../../xdr/generated/mount.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { MOUNT3, NFS3, connect, mountRoot, startServer } from '../helpers/server.ts'
import { MOUNT_PROG, NFS_PROG, NO_ATTRS, Nfs, b, fh } from '../helpers/e2e.ts'

const LINES = `
/open    127.0.0.1(rw,insecure,no_root_squash,backend=memory)
/net     10.0.0.0/8(rw,insecure,backend=memory)
/ro      *(ro,insecure,backend=memory)
/secure  127.0.0.1(rw,secure,backend=memory)
/squash  *(rw,insecure,root_squash,backend=memory)
/all     *(rw,insecure,all_squash,anonuid=1234,anongid=5678,backend=memory)
`
const list = (text: string): ReturnType<typeof parseExports> => parseExports(text, 'exports')

t.test('MNT: matching, secure, unknown paths and files', async (t) => {
  const { port } = await startServer(t, LINES)
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const mnt = async (path: string): Promise<number> => (await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b(path))).fhs_status
  t.equal(await mnt('/open'), mountstat3.MNT3_OK, '127.0.0.1(rw) matches')
  t.equal(await mnt('/ro'), mountstat3.MNT3_OK, '*(ro) matches')
  t.equal(await mnt('/net'), mountstat3.MNT3ERR_ACCES, '10.0.0.0/8 does not match 127.0.0.1')
  t.equal(await mnt('/secure'), mountstat3.MNT3ERR_ACCES, 'secure refuses a source port >= 1024')
  t.equal(await mnt('/nowhere'), mountstat3.MNT3ERR_NOENT, 'unknown path')
  t.equal(await mnt('/open/missing'), mountstat3.MNT3ERR_NOENT, 'missing directory below an export')
  await nfs.create(await mountRoot(cl, '/open'), 'f')
  t.equal(await mnt('/open/f'), mountstat3.MNT3ERR_NOTDIR, 'a file below an export')
})

t.test('a handle of an export the client may no longer use is ACCES', async (t) => {
  const { port, server } = await startServer(t, LINES)
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/open')
  t.equal((await nfs.getattr(root)).status, nfsstat3.NFS3_OK)
  await server.reload(list(LINES.replace('/open    127.0.0.1(rw,', '/open    10.0.0.0/8(rw,')))
  t.equal((await nfs.getattr(root)).status, nfsstat3.NFS3ERR_ACCES)
})

t.test('ro export: changes are ROFS, reads work', async (t) => {
  const rw = LINES.replace('/ro      *(ro,', '/ro      *(rw,')
  const { port, server } = await startServer(t, rw)
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/ro')
  const file = await nfs.create(root, 'f')
  t.equal(await nfs.write(file, 0n, b('data')), nfsstat3.NFS3_OK)
  await server.reload(list(LINES))
  const dir = fh(root)
  const statusOf = async (r: Promise<{ status: number }>): Promise<number> => (await r).status
  const call = cl.call.bind(cl)
  const ROFS = nfsstat3.NFS3ERR_ROFS
  t.equal(await statusOf(call(NFS_PROG, 3, NFS3.NFSPROC3_CREATE, { where: { dir, name: b('n') }, how: { mode: 0, obj_attributes: NO_ATTRS } })), ROFS, 'CREATE')
  t.equal(await nfs.write(file, 0n, b('x')), ROFS, 'WRITE')
  t.equal(await statusOf(call(NFS_PROG, 3, NFS3.NFSPROC3_SETATTR, { object: fh(file), new_attributes: { ...NO_ATTRS, mode: 0o600 }, guard: null })), ROFS, 'SETATTR')
  t.equal(await statusOf(call(NFS_PROG, 3, NFS3.NFSPROC3_REMOVE, { object: { dir, name: b('f') } })), ROFS, 'REMOVE')
  t.equal(await statusOf(call(NFS_PROG, 3, NFS3.NFSPROC3_MKDIR, { where: { dir, name: b('d') }, attributes: NO_ATTRS })), ROFS, 'MKDIR')
  t.equal(await statusOf(call(NFS_PROG, 3, NFS3.NFSPROC3_RENAME, { from: { dir, name: b('f') }, to: { dir, name: b('g') } })), ROFS, 'RENAME')
  t.equal((await nfs.getattr(file)).status, nfsstat3.NFS3_OK, 'GETATTR')
  t.equal((await nfs.lookup(root, 'f')).status, nfsstat3.NFS3_OK, 'LOOKUP')
  t.equal((await nfs.read(file, 0n, 100)).data?.toString(), 'data', 'READ (data written before the reload survived it)')
})

t.test('squashing decides the owner of new files', async (t) => {
  const { port } = await startServer(t, LINES)
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const owner = async (exp: string, name: string): Promise<[number, number]> => {
    const a = (await nfs.getattr(await nfs.create(await mountRoot(cl, exp), name))).attr
    return [a?.uid ?? -1, a?.gid ?? -1]
  }
  t.same(await owner('/squash', 'r'), [65534, 65534], 'root_squash: uid 0 → 65534/65534')
  t.same(await owner('/open', 'n'), [0, 0], 'no_root_squash: owned by 0/0')
  t.same(await owner('/all', 'a'), [1234, 5678], 'all_squash with anonuid/anongid')
  const root = await mountRoot(cl, '/open')
  const r = await cl.call(NFS_PROG, 3, NFS3.NFSPROC3_CREATE, { where: { dir: fh(root), name: b('none') }, how: { mode: 0, obj_attributes: NO_ATTRS } }, { cred: 'none' })
  const a = r.status === nfsstat3.NFS3_OK ? r.resok.obj_attributes : null
  t.same([a?.uid, a?.gid], [65534, 65534], 'AUTH_NONE acts as the anonymous user even with no_root_squash')
})

t.test('handles: forged, removed, another key, another backend instance', async (t) => {
  const first = await startServer(t, LINES)
  const cl = await connect(t, first.port)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/open')
  const file = await nfs.create(root, 'f')
  for (const at of [0, 4, 12, 19, 31]) {
    const forged = Buffer.from(file)
    forged[at] = (forged[at] ?? 0) ^ 0x01
    t.equal((await nfs.getattr(forged)).status, nfsstat3.NFS3ERR_BADHANDLE, `byte ${at} flipped`)
  }
  t.equal((await nfs.getattr(file.subarray(0, 31))).status, nfsstat3.NFS3ERR_BADHANDLE, 'a short handle')
  const gone = await nfs.create(root, 'gone')
  t.equal((await cl.call(NFS_PROG, 3, NFS3.NFSPROC3_REMOVE, { object: { dir: fh(root), name: b('gone') } })).status, nfsstat3.NFS3_OK)
  t.equal((await nfs.getattr(gone)).status, nfsstat3.NFS3ERR_STALE, 'a removed file')

  const otherKey = await startServer(t, LINES, { stateDir: join(first.stateDir, 'other') })
  const nfs2 = new Nfs(await connect(t, otherKey.port))
  t.equal((await nfs2.getattr(file)).status, nfsstat3.NFS3ERR_BADHANDLE, 'a handle made with another key')
  t.equal((await nfs2.getattr(root)).status, nfsstat3.NFS3ERR_BADHANDLE, 'a root handle made with another key')

  const sameKey = await startServer(t, LINES, { stateDir: first.stateDir })
  const nfs3 = new Nfs(await connect(t, sameKey.port))
  t.equal((await nfs3.getattr(file)).status, nfsstat3.NFS3ERR_STALE, 'same key, new memory backend: stale')
  t.equal((await nfs3.getattr(root)).status, nfsstat3.NFS3ERR_STALE, 'even the root of the old backend')
})

t.test('reload keeps unchanged exports and makes removed ones stale', async (t) => {
  const { port, server } = await startServer(t, LINES)
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const open = await mountRoot(cl, '/open')
  const squash = await mountRoot(cl, '/squash')
  const file = await nfs.create(open, 'kept')
  t.equal(await nfs.write(file, 0n, b('still here')), nfsstat3.NFS3_OK)
  await server.reload(list(LINES.split('\n').filter((l) => !l.startsWith('/squash')).join('\n')))
  t.equal((await nfs.read(file, 0n, 100)).data?.toString(), 'still here', 'a file of an unchanged export is still readable')
  t.equal((await nfs.getattr(open)).status, nfsstat3.NFS3_OK, 'its root handle still works')
  t.equal((await nfs.getattr(squash)).status, nfsstat3.NFS3ERR_STALE, 'a removed export: STALE')
  const mnt = await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/squash'))
  t.equal(mnt.fhs_status, mountstat3.MNT3ERR_NOENT, 'and it cannot be mounted')
})
