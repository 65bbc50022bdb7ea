/*
 * Many calls in flight on one TCP connection, large transfers, and the
 * transfer sizes the server advertises and enforces (RFC 1813 §3.3.19 FSINFO,
 * §3.3.6 READ: a count above rtmax is cut, not refused).
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { RpcUdpClient } from '../../client/rpc/udp-client.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { NFS3, ROOT_CRED, connect, mountRoot, startServer } from '../helpers/server.ts'
import { NFS_PROG, Nfs, fh } from '../helpers/e2e.ts'

const MiB = 1024 * 1024
const BLOCK = 4096
const FILES = 16
const BLOCKS = 12

/** The bytes of block `k` of file `f`: distinct per (f, k), so a misrouted reply shows. */
function block(f: number, k: number): Buffer {
  const buf = Buffer.alloc(BLOCK, (f * BLOCKS + k) & 0xff)
  buf.writeUInt32BE(f, 0)
  buf.writeUInt32BE(k, 4)
  return buf
}

t.test('256 concurrent GETATTR/READ/WRITE calls on one connection', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/export')
  const files = await Promise.all(Array.from({ length: FILES }, (_, f) => nfs.create(root, `p${f}`)))
  const getattrs = (): ReturnType<Nfs['getattr']>[] => files.flatMap((h) => Array.from({ length: 4 }, () => nfs.getattr(h)))

  const writes: Promise<number>[] = []
  files.forEach((h, f) => {
    for (let k = 0; k < BLOCKS; k++) writes.push(nfs.write(h, BigInt(k * BLOCK), block(f, k)))
  })
  const attrs1 = getattrs()
  t.equal(cl.inFlight, 256, '256 calls in flight at once')
  t.same(await Promise.all(writes), Array<number>(FILES * BLOCKS).fill(nfsstat3.NFS3_OK), 'every WRITE OK')
  t.ok((await Promise.all(attrs1)).every((a) => a.status === nfsstat3.NFS3_OK), 'every GETATTR OK')

  const reads: Promise<{ f: number; k: number; data: Buffer | undefined }>[] = []
  files.forEach((h, f) => {
    for (let k = 0; k < BLOCKS; k++) reads.push(nfs.read(h, BigInt(k * BLOCK), BLOCK).then((r) => ({ f, k, data: r.data })))
  })
  const attrs2 = getattrs()
  t.equal(cl.inFlight, 256, '256 calls in flight at once')
  const bad = (await Promise.all(reads)).filter((r) => r.data === undefined || !r.data.equals(block(r.f, r.k)))
  t.same(bad.map((r) => `${r.f}/${r.k}`), [], 'every READ returned its own block')
  const sizes = (await Promise.all(attrs2)).map((a) => a.attr?.size)
  t.same(sizes, Array<bigint>(FILES * 4).fill(BigInt(BLOCKS * BLOCK)), 'every GETATTR sees the full size')
  const ids = (await Promise.all(files.map((h) => nfs.getattr(h)))).map((a) => a.attr?.fileid)
  t.equal(new Set(ids).size, FILES, 'distinct files')
})

t.test('a 1 MiB WRITE and READ round trip byte for byte; READ is cut at rtmax', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  const nfs = new Nfs(cl)
  const root = await mountRoot(cl, '/export')
  const file = await nfs.create(root, 'big')
  const data = randomBytes(MiB)
  const w = await cl.call(NFS_PROG, 3, NFS3.NFSPROC3_WRITE, { file: fh(file), offset: 0n, count: MiB, stable: 2, data })
  t.equal(w.status, nfsstat3.NFS3_OK)
  if (w.status === nfsstat3.NFS3_OK) t.equal(w.resok.count, MiB, 'all of it written')
  const r = await nfs.read(file, 0n, MiB)
  t.equal(r.eof, true, 'eof at the end of the file')
  t.ok(r.data?.equals(data), 'the same MiB back')

  const tail = randomBytes(MiB / 2)
  t.equal(await nfs.write(file, BigInt(MiB), tail), nfsstat3.NFS3_OK)
  const big = await cl.call(NFS_PROG, 3, NFS3.NFSPROC3_READ, { file: fh(file), offset: 0n, count: 2 * MiB })
  t.equal(big.status, nfsstat3.NFS3_OK)
  if (big.status === nfsstat3.NFS3_OK) {
    t.equal(big.resok.count, MiB, 'count cut to rtmax')
    t.equal(big.resok.data.length, MiB)
    t.equal(big.resok.eof, false, 'not at the end: 512 KiB remain')
    t.ok(Buffer.from(big.resok.data).equals(data), 'the first MiB')
  }
  const rest = await nfs.read(file, BigInt(MiB), 2 * MiB)
  t.ok(rest.data?.equals(tail), 'the rest')
  t.equal(rest.eof, true)
})

t.test('FSINFO: 1 MiB transfers over TCP, 32 KiB over UDP', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  const root = await mountRoot(cl, '/export')
  const tcp = await cl.call(NFS_PROG, 3, NFS3.NFSPROC3_FSINFO, { fsroot: fh(root) })
  t.equal(tcp.status, nfsstat3.NFS3_OK)
  if (tcp.status === nfsstat3.NFS3_OK) t.same([tcp.resok.rtmax, tcp.resok.wtmax], [MiB, MiB], 'TCP')

  const u = await RpcUdpClient.connect('127.0.0.1', port, { cred: ROOT_CRED, timeoutMs: 500 })
  t.teardown(() => u.close())
  const udp = await u.call(NFS_PROG, 3, NFS3.NFSPROC3_FSINFO, { fsroot: fh(root) })
  t.equal(udp.status, nfsstat3.NFS3_OK)
  if (udp.status === nfsstat3.NFS3_OK) {
    t.same([udp.resok.rtmax, udp.resok.wtmax], [32 * 1024, 32 * 1024], 'UDP')
    t.ok(udp.resok.rtpref <= udp.resok.rtmax && udp.resok.wtpref <= udp.resok.wtmax, 'preferred sizes within the maxima')
  }
  const nfs = new Nfs(cl)
  const file = await nfs.create(root, 'u')
  t.equal(await nfs.write(file, 0n, randomBytes(100 * 1024)), nfsstat3.NFS3_OK)
  const r = await u.call(NFS_PROG, 3, NFS3.NFSPROC3_READ, { file: fh(file), offset: 0n, count: 64 * 1024 })
  t.equal(r.status === nfsstat3.NFS3_OK ? r.resok.data.length : -1, 32 * 1024, 'a UDP READ is cut to 32 KiB')
})
