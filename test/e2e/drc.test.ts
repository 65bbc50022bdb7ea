/*
 * Retransmissions through the whole server (RFC 1813 §4.5; DESIGN.md §3.5):
 * a non-idempotent call repeated with the same xid and bytes gets the
 * original reply again, byte for byte, and is not executed twice; the same
 * over UDP and after a TCP reconnect. Idempotent calls are not cached.
 */
import t from 'tap'
import type { Test } from 'tap'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { nfstime3 } from '../../xdr/generated/nfs3.ts'
import { NFS3, ROOT_CRED, connect, mountRoot, startServer } from '../helpers/server.ts'
import { NFS_PROG, NO_ATTRS, Nfs, b, fh, procRecord, results, udpExchange, udpSocket } from '../helpers/e2e.ts'

const hex = (x: Buffer): string => x.toString('hex')
let nextXid = 0x4000_0000

async function setup(t: Test): Promise<{ port: number; cl: RpcTcpClient; nfs: Nfs; root: Buffer }> {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  return { port, cl, nfs: new Nfs(cl), root: await mountRoot(cl, '/export') }
}

/** Send `record` twice with the same xid; both replies must be identical. */
async function twice(t: Test, cl: RpcTcpClient, record: Buffer, label: string): Promise<Buffer> {
  const first = await cl.callRaw(record)
  const second = await cl.callRaw(record)
  t.equal(hex(second), hex(first), `${label}: the retransmission gets the original reply bytes`)
  return first
}

t.test('REMOVE: replayed, not re-executed; a new xid sees NOENT', async (t) => {
  const { cl, nfs, root } = await setup(t)
  await nfs.create(root, 'a')
  const p = NFS3.NFSPROC3_REMOVE
  const args = { object: { dir: fh(root), name: b('a') } }
  const reply = await twice(t, cl, procRecord(nextXid++, NFS_PROG, 3, p, args), 'REMOVE')
  t.equal(results(reply, p).status, nfsstat3.NFS3_OK)
  t.equal((await nfs.lookup(root, 'a')).status, nfsstat3.NFS3ERR_NOENT, 'the file is gone')
  t.equal(results(await cl.callRaw(procRecord(nextXid++, NFS_PROG, 3, p, args)), p).status, nfsstat3.NFS3ERR_NOENT, 'new xid: NOENT')
})

t.test('CREATE GUARDED: the copy gets the original OK, not EXIST', async (t) => {
  const { cl, root } = await setup(t)
  const p = NFS3.NFSPROC3_CREATE
  const args = { where: { dir: fh(root), name: b('g') }, how: { mode: 1 as const, obj_attributes: NO_ATTRS } }
  const reply = await twice(t, cl, procRecord(nextXid++, NFS_PROG, 3, p, args), 'CREATE')
  t.equal(results(reply, p).status, nfsstat3.NFS3_OK)
  t.equal(results(await cl.callRaw(procRecord(nextXid++, NFS_PROG, 3, p, args)), p).status, nfsstat3.NFS3ERR_EXIST, 'new xid: EXIST')
})

t.test('MKDIR', async (t) => {
  const { cl, root } = await setup(t)
  const p = NFS3.NFSPROC3_MKDIR
  const args = { where: { dir: fh(root), name: b('d') }, attributes: NO_ATTRS }
  t.equal(results(await twice(t, cl, procRecord(nextXid++, NFS_PROG, 3, p, args), 'MKDIR'), p).status, nfsstat3.NFS3_OK)
  t.equal(results(await cl.callRaw(procRecord(nextXid++, NFS_PROG, 3, p, args)), p).status, nfsstat3.NFS3ERR_EXIST, 'new xid: EXIST')
})

t.test('RENAME', async (t) => {
  const { cl, nfs, root } = await setup(t)
  await nfs.create(root, 'r1')
  const p = NFS3.NFSPROC3_RENAME
  const args = { from: { dir: fh(root), name: b('r1') }, to: { dir: fh(root), name: b('r2') } }
  t.equal(results(await twice(t, cl, procRecord(nextXid++, NFS_PROG, 3, p, args), 'RENAME'), p).status, nfsstat3.NFS3_OK)
  t.equal((await nfs.lookup(root, 'r2')).status, nfsstat3.NFS3_OK, 'r2 exists')
  t.equal(results(await cl.callRaw(procRecord(nextXid++, NFS_PROG, 3, p, args)), p).status, nfsstat3.NFS3ERR_NOENT, 'new xid: NOENT')
})

t.test('LINK', async (t) => {
  const { cl, nfs, root } = await setup(t)
  const file = await nfs.create(root, 'l1')
  const p = NFS3.NFSPROC3_LINK
  const args = { file: fh(file), link: { dir: fh(root), name: b('l2') } }
  t.equal(results(await twice(t, cl, procRecord(nextXid++, NFS_PROG, 3, p, args), 'LINK'), p).status, nfsstat3.NFS3_OK)
  t.equal((await nfs.getattr(file)).attr?.nlink, 2, 'linked once')
  t.equal(results(await cl.callRaw(procRecord(nextXid++, NFS_PROG, 3, p, args)), p).status, nfsstat3.NFS3ERR_EXIST, 'new xid: EXIST')
})

t.test('SETATTR with a ctime guard: the copy is OK, a new xid is NOT_SYNC', async (t) => {
  const { cl, nfs, root } = await setup(t)
  const file = await nfs.create(root, 's')
  const attr = (await nfs.getattr(file)).attr
  if (attr === undefined) throw new Error('no attributes')
  const guard: nfstime3 = attr.ctime
  const p = NFS3.NFSPROC3_SETATTR
  const args = { object: fh(file), new_attributes: { ...NO_ATTRS, mode: 0o600 }, guard }
  t.equal(results(await twice(t, cl, procRecord(nextXid++, NFS_PROG, 3, p, args), 'SETATTR'), p).status, nfsstat3.NFS3_OK)
  t.equal((await nfs.getattr(file)).attr?.mode, 0o600)
  t.equal(results(await cl.callRaw(procRecord(nextXid++, NFS_PROG, 3, p, args)), p).status, nfsstat3.NFS3ERR_NOT_SYNC, 'new xid: NOT_SYNC')
})

t.test('WRITE: a late copy is answered from the cache and does not overwrite newer data', async (t) => {
  const { cl, nfs, root } = await setup(t)
  const file = await nfs.create(root, 'w')
  const p = NFS3.NFSPROC3_WRITE
  const record = procRecord(nextXid++, NFS_PROG, 3, p, { file: fh(file), offset: 0n, count: 3, stable: 2, data: b('abc') })
  const first = await cl.callRaw(record)
  t.equal(results(first, p).status, nfsstat3.NFS3_OK)
  t.equal(await nfs.write(file, 0n, b('XYZ')), nfsstat3.NFS3_OK, 'a newer write')
  t.equal(hex(await cl.callRaw(record)), hex(first), 'the copy gets the original reply')
  t.equal((await nfs.read(file, 0n, 10)).data?.toString(), 'XYZ', 'the copy was not executed')
})

t.test('over UDP', async (t) => {
  const { port, nfs, root } = await setup(t)
  await nfs.create(root, 'u')
  const s = await udpSocket(t)
  const p = NFS3.NFSPROC3_REMOVE
  const args = { object: { dir: fh(root), name: b('u') } }
  const record = procRecord(nextXid++, NFS_PROG, 3, p, args)
  const first = await udpExchange(s, port, record)
  const second = await udpExchange(s, port, record)
  if (first === null || second === null) throw new Error('no UDP reply')
  t.equal(results(first, p).status, nfsstat3.NFS3_OK)
  t.equal(hex(second), hex(first), 'the retransmitted datagram gets the original reply')
  const third = await udpExchange(s, port, procRecord(nextXid++, NFS_PROG, 3, p, args))
  t.equal(third === null ? -1 : results(third, p).status, nfsstat3.NFS3ERR_NOENT, 'new xid: NOENT')
})

t.test('after a TCP reconnect the same xid is replayed', async (t) => {
  const { port, cl, nfs, root } = await setup(t)
  await nfs.create(root, 'c')
  const p = NFS3.NFSPROC3_REMOVE
  const record = procRecord(nextXid++, NFS_PROG, 3, p, { object: { dir: fh(root), name: b('c') } })
  const first = await cl.callRaw(record)
  t.equal(results(first, p).status, nfsstat3.NFS3_OK)
  await cl.close()
  const again = await RpcTcpClient.connect('127.0.0.1', port, { cred: ROOT_CRED })
  t.teardown(() => again.close())
  t.equal(hex(await again.callRaw(record)), hex(first), 'replayed on the new connection')
})

t.test('GETATTR is not cached: the same xid sees the new state', async (t) => {
  const { cl, nfs, root } = await setup(t)
  const file = await nfs.create(root, 'ga')
  const p = NFS3.NFSPROC3_GETATTR
  const record = procRecord(nextXid++, NFS_PROG, 3, p, { object: fh(file) })
  const before = await cl.callRaw(record)
  t.equal(await nfs.write(file, 0n, b('12345')), nfsstat3.NFS3_OK)
  const after = await cl.callRaw(record)
  t.not(hex(after), hex(before), 'a different reply')
  const r = results(after, p)
  t.equal(r.status === nfsstat3.NFS3_OK ? r.resok.obj_attributes.size : -1n, 5n, 'with the new size')
})
