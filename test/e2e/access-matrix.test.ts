/*
 * The access-control matrix (issue 7 point 5): one table per concern, each
 * row a peer (source address on 127/8, source port), a credential, an
 * operation and the exact status knfsd/mountd give. Peers connect from
 * 127.0.0.x with a chosen local address (and, as root, a port < 1024), so
 * one server holds every case; the host resolver is a fake for names.
 * test/e2e/exports.test.ts covers reload, stale handles and handle keys.
 */
import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import type { Socket } from 'node:net'
import { credentialOf } from '../../client/rpc/auth.ts'
import type { CallCredential } from '../../client/rpc/auth.ts'
import { decodeReply, encodeCall } from '../../client/rpc/call.ts'
import type { ProcedureRef } from '../../client/rpc/call.ts'
import type { HostResolver } from '../../server/exports/resolver.ts'
import { RecordReader, frameRecord, totalLength } from '../../xdr/record.ts'
import { mountstat3 } from '../../xdr/generated/mount.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { MOUNT3, NFS3, startServer } from '../helpers/server.ts'
import { MOUNT_PROG, NFS_PROG, NO_ATTRS, b, fh } from '../helpers/e2e.ts'

const { MNT3_OK, MNT3ERR_ACCES } = mountstat3
const { NFS3_OK, NFS3ERR_ACCES, NFS3ERR_ROFS, NFS3ERR_BADHANDLE } = nfsstat3
const ROOT: CallCredential = { uid: 0, gid: 0, gids: [] }
const USER: CallCredential = { uid: 1000, gid: 1000, gids: [] }
const NONE: CallCredential = 'none'
const IS_ROOT = process.getuid?.() === 0

const EXPORTS = `
/exact    127.0.0.2(rw,insecure)
/cidr     127.0.0.0/30(rw,insecure)
/netmask  127.0.0.0/255.255.255.252(rw,insecure)
/wild     *.lab.test(rw,insecure)
/named    h1.lab.test(rw,insecure)
/any      *(rw,insecure)
/prec     *(ro,insecure) 127.0.0.2(rw,insecure) 127.0.0.0/24(rw,insecure,all_squash)
/secure   127.0.0.0/8(rw,secure,no_root_squash)
/insecure 127.0.0.0/8(rw,insecure)
/sq       127.0.0.2(rw,insecure,root_squash) 127.0.0.3(rw,insecure,no_root_squash) 127.0.0.4(rw,insecure,all_squash,anonuid=1234,anongid=5678) 127.0.0.5(rw,insecure,root_squash,anonuid=77,anongid=88) 127.0.0.6(rw,insecure,all_squash,anongid=0)
/ro       *(ro,insecure) 127.0.0.3(rw,insecure,no_root_squash)
/a        127.0.0.2(rw,insecure,no_root_squash)
/b        127.0.0.3(rw,insecure,no_root_squash)
`.replace(/\(/g, '(backend=memory,')

/** Reverse names and forward addresses as a DNS would give them; h3's name does not point back. */
const resolver: HostResolver = {
  reverse: async (address) => ({ '127.0.0.2': ['h1.lab.test'], '127.0.0.3': ['h3.lab.test'], '127.0.0.4': ['h4.other.test'] })[address] ?? [],
  lookup: async (name) => ({ 'h1.lab.test': ['127.0.0.2'], 'h3.lab.test': ['10.9.9.9'], 'h4.other.test': ['127.0.0.4'] })[name] ?? [],
}

/** An RPC connection from a chosen source address and port (RpcTcpClient cannot bind one). */
class Peer {
  private readonly socket: Socket
  private readonly reader = new RecordReader(4 * 1024 * 1024)
  private readonly waiting = new Map<number, (r: Buffer) => void>()
  private xid = 1

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      for (const r of this.reader.push(chunk)) this.waiting.get(r.readUInt32BE(0))?.(r)
    })
  }

  static async open(t: Test, port: number, localAddress: string, localPort?: number): Promise<Peer> {
    const socket = netConnect({ host: '127.0.0.1', port, localAddress, ...(localPort === undefined ? {} : { localPort }) })
    await once(socket, 'connect')
    t.teardown(() => socket.destroy())
    return new Peer(socket)
  }

  get localPort(): number {
    return this.socket.localPort ?? 0
  }

  async call<A, R>(prog: number, p: ProcedureRef<A, R>, args: A, cred: CallCredential = ROOT): Promise<R> {
    const xid = this.xid++
    const chunks = encodeCall(xid, prog, 3, p, args, credentialOf(cred))
    const reply = new Promise<Buffer>((resolve) => this.waiting.set(xid, resolve))
    this.socket.write(Buffer.concat([frameRecord(chunks, totalLength(chunks)), ...chunks]))
    return decodeReply(await reply, p.res)
  }

  async mnt(path: string, cred: CallCredential = ROOT): Promise<number> {
    return (await this.call(MOUNT_PROG, MOUNT3.MOUNTPROC3_MNT, b(path), cred)).fhs_status
  }

  async root(path: string): Promise<Buffer> {
    const r = await this.call(MOUNT_PROG, MOUNT3.MOUNTPROC3_MNT, b(path))
    if (r.fhs_status !== MNT3_OK) throw new Error(`MNT ${path}: ${String(r.fhs_status)}`)
    return Buffer.from(r.mountinfo.fhandle)
  }

  async getattr(h: Buffer, cred: CallCredential = ROOT): Promise<number> {
    return (await this.call(NFS_PROG, NFS3.NFSPROC3_GETATTR, { object: fh(h) }, cred)).status
  }

  /** CREATE UNCHECKED with `mode`; the status and the new file's owner. */
  async create(dir: Buffer, name: string, cred: CallCredential, mode: number | null = null): Promise<{ status: number; owner?: [number, number]; fh?: Buffer }> {
    const r = await this.call(NFS_PROG, NFS3.NFSPROC3_CREATE, { where: { dir: fh(dir), name: b(name) }, how: { mode: 0, obj_attributes: { ...NO_ATTRS, mode } } }, cred)
    if (r.status !== NFS3_OK) return { status: r.status }
    const a = r.resok.obj_attributes
    return { status: NFS3_OK, ...(a === null ? {} : { owner: [a.uid, a.gid] as [number, number] }), ...(r.resok.obj === null ? {} : { fh: Buffer.from(r.resok.obj.data) }) }
  }

  async read(h: Buffer, cred: CallCredential): Promise<number> {
    return (await this.call(NFS_PROG, NFS3.NFSPROC3_READ, { file: fh(h), offset: 0n, count: 16 }, cred)).status
  }

  async write(h: Buffer, cred: CallCredential = ROOT): Promise<number> {
    return (await this.call(NFS_PROG, NFS3.NFSPROC3_WRITE, { file: fh(h), offset: 0n, count: 1, stable: 2, data: b('x') }, cred)).status
  }
}

async function setup(t: Test): Promise<(addr: string, localPort?: number) => Promise<Peer>> {
  const { port } = await startServer(t, EXPORTS, { resolver })
  const peers = new Map<string, Peer>()
  return async (addr, localPort) => {
    const key = `${addr}:${String(localPort ?? 'any')}`
    let p = peers.get(key)
    if (p === undefined) {
      p = await Peer.open(t, port, addr, localPort)
      peers.set(key, p)
    }
    return p
  }
}

t.test('host matching: MNT status by source address', async (t) => {
  const peer = await setup(t)
  const rows: [string, string, number][] = [
    ['/exact', '127.0.0.2', MNT3_OK],
    ['/exact', '127.0.0.3', MNT3ERR_ACCES],
    ['/cidr', '127.0.0.3', MNT3_OK],
    ['/cidr', '127.0.0.4', MNT3ERR_ACCES],
    ['/netmask', '127.0.0.1', MNT3_OK],
    ['/netmask', '127.0.0.5', MNT3ERR_ACCES],
    ['/wild', '127.0.0.2', MNT3_OK], // h1.lab.test, and it resolves back to 127.0.0.2
    ['/wild', '127.0.0.3', MNT3ERR_ACCES], // h3.lab.test, but that name resolves elsewhere: not trusted
    ['/wild', '127.0.0.4', MNT3ERR_ACCES], // h4.other.test: confirmed, but not *.lab.test
    ['/wild', '127.0.0.5', MNT3ERR_ACCES], // no reverse name at all
    ['/named', '127.0.0.2', MNT3_OK], // a plain host name: forward lookup
    ['/named', '127.0.0.3', MNT3ERR_ACCES],
    ['/any', '127.0.0.9', MNT3_OK],
  ]
  for (const [path, from, want] of rows) t.equal(await (await peer(from)).mnt(path), want, `${path} from ${from}`)
  t.equal(await (await peer('127.0.0.2')).mnt('/any', NONE), MNT3_OK, 'MNT with AUTH_NONE')
})

t.test('precedence: a single host, then networks, then *, whatever the order on the line', async (t) => {
  const peer = await setup(t)
  const two = await peer('127.0.0.2')
  const three = await peer('127.0.0.3')
  const nine = await peer('127.0.1.9')
  const rows: [string, Peer, CallCredential, number, [number, number] | undefined][] = [
    ['127.0.0.2 (its own rw line)', two, USER, NFS3_OK, [1000, 1000]],
    ['127.0.0.3 (the /24 line: all_squash)', three, USER, NFS3_OK, [65534, 65534]],
    ['127.0.1.9 (only *: ro)', nine, USER, NFS3ERR_ROFS, undefined],
  ]
  for (const [label, p, cred, status, owner] of rows) {
    const r = await p.create(await p.root('/prec'), `f-${String(p.localPort)}`, cred)
    t.equal(r.status, status, label)
    t.same(r.owner, owner, `${label}: owner`)
  }
})

t.test('secure: MNT and NFS refuse source ports >= 1024; insecure allows them', async (t) => {
  const peer = await setup(t)
  const high = await peer('127.0.0.1')
  t.ok(high.localPort >= 1024, `our client's port ${String(high.localPort)} is unprivileged`)
  t.equal(await high.mnt('/secure'), MNT3ERR_ACCES, 'secure, MNT from a high port')
  t.equal(await high.mnt('/insecure'), MNT3_OK, 'insecure, MNT from a high port')
  if (!IS_ROOT) {
    t.comment('not root: cannot bind a port < 1024, privileged-port rows skipped')
    return
  }
  let low: Peer | null = null
  for (let p = 600 + (process.pid % 300); low === null && p < 1024; p += 7) low = await peer('127.0.0.1', p).catch(() => null)
  if (low === null) throw new Error('no free port below 1024')
  t.ok(low.localPort < 1024, `bound source port ${String(low.localPort)}`)
  const secureRoot = await low.root('/secure')
  t.equal(await low.getattr(secureRoot), NFS3_OK, 'secure, NFS from a privileged port')
  t.equal(await high.getattr(secureRoot), NFS3ERR_ACCES, 'secure, NFS from a high port with a valid handle')
  t.equal((await low.create(secureRoot, 'x', ROOT)).status, NFS3_OK, 'secure, CREATE from a privileged port')
})

t.test('squashing decides the owner of new files (knfsd nfsd_setuser)', async (t) => {
  const peer = await setup(t)
  // [peer address, its options, credential, owner of the file it creates]
  const rows: [string, string, CallCredential, [number, number]][] = [
    ['127.0.0.2', 'root_squash', ROOT, [65534, 65534]],
    ['127.0.0.2', 'root_squash', USER, [1000, 1000]],
    ['127.0.0.2', 'root_squash', { uid: 1000, gid: 0 }, [1000, 65534]],
    ['127.0.0.2', 'root_squash', { uid: 0, gid: 1000 }, [65534, 1000]],
    ['127.0.0.2', 'root_squash', NONE, [65534, 65534]],
    ['127.0.0.3', 'no_root_squash', ROOT, [0, 0]],
    ['127.0.0.3', 'no_root_squash', NONE, [65534, 65534]],
    ['127.0.0.3', 'no_root_squash', { uid: 0xffff_ffff, gid: 0xffff_ffff }, [65534, 65534]],
    ['127.0.0.4', 'all_squash,anonuid=1234,anongid=5678', ROOT, [1234, 5678]],
    ['127.0.0.4', 'all_squash,anonuid=1234,anongid=5678', USER, [1234, 5678]],
    ['127.0.0.4', 'all_squash,anonuid=1234,anongid=5678', NONE, [1234, 5678]],
    ['127.0.0.5', 'root_squash,anonuid=77,anongid=88', ROOT, [77, 88]],
    ['127.0.0.5', 'root_squash,anonuid=77,anongid=88', NONE, [77, 88]],
    ['127.0.0.5', 'root_squash,anonuid=77,anongid=88', USER, [1000, 1000]],
  ]
  let n = 0
  for (const [from, opts, cred, owner] of rows) {
    const p = await peer(from)
    const r = await p.create(await p.root('/sq'), `o${String(n++)}`, cred)
    t.same([r.status, r.owner], [NFS3_OK, owner], `${opts}, ${cred === 'none' ? 'AUTH_NONE' : `uid ${String(cred.uid)} gid ${String(cred.gid)}`}`)
  }
})

t.test('group squashing: a mode 0070 file of group 0', async (t) => {
  const peer = await setup(t)
  const owner = await peer('127.0.0.3')
  const made = await owner.create(await owner.root('/sq'), 'g0', ROOT, 0o070)
  t.same(made.owner, [0, 0], 'owned by root:root')
  const file = made.fh ?? Buffer.alloc(0)
  const rows: [string, string, CallCredential, number][] = [
    ['127.0.0.3', 'no_root_squash, primary gid 0', { uid: 1000, gid: 0 }, NFS3_OK],
    ['127.0.0.3', 'no_root_squash, supplementary gid 0', { uid: 1000, gid: 100, gids: [0] }, NFS3_OK],
    ['127.0.0.3', 'no_root_squash, not in group 0', USER, NFS3ERR_ACCES],
    ['127.0.0.3', 'no_root_squash, root', ROOT, NFS3_OK],
    ['127.0.0.2', 'root_squash, primary gid 0 -> anongid', { uid: 1000, gid: 0 }, NFS3ERR_ACCES],
    ['127.0.0.2', 'root_squash, supplementary gid 0 -> anongid', { uid: 1000, gid: 100, gids: [0] }, NFS3ERR_ACCES],
    ['127.0.0.2', 'root_squash, root -> nobody', ROOT, NFS3ERR_ACCES],
    ['127.0.0.4', 'all_squash, groups dropped', { uid: 1000, gid: 0, gids: [0] }, NFS3ERR_ACCES],
    ['127.0.0.6', 'all_squash,anongid=0: anonymous but in group 0', USER, NFS3_OK],
    ['127.0.0.6', 'all_squash,anongid=0, AUTH_NONE', NONE, NFS3_OK],
    ['127.0.0.2', 'root_squash, AUTH_NONE', NONE, NFS3ERR_ACCES],
  ]
  for (const [from, label, cred, want] of rows) t.equal(await (await peer(from)).read(file, cred), want, `READ: ${label}`)
})

t.test('ro exports: ROFS for changes, reads work', async (t) => {
  const peer = await setup(t)
  const rw = await peer('127.0.0.3')
  const made = await rw.create(await rw.root('/ro'), 'f', ROOT)
  const file = made.fh ?? Buffer.alloc(0)
  t.equal(await rw.write(file), NFS3_OK, 'the rw client writes')
  const ro = await peer('127.0.0.2')
  const root = await ro.root('/ro')
  t.equal((await ro.create(root, 'n', ROOT)).status, NFS3ERR_ROFS, 'CREATE on ro')
  t.equal(await ro.write(file), NFS3ERR_ROFS, 'WRITE on ro')
  t.equal(await ro.read(file, ROOT), NFS3_OK, 'READ on ro')
})

t.test('handles: cross-export, altered, truncated', async (t) => {
  const peer = await setup(t)
  const a = await peer('127.0.0.2')
  const bPeer = await peer('127.0.0.3')
  const rootA = await a.root('/a')
  const fileA = (await a.create(rootA, 'f', ROOT)).fh ?? Buffer.alloc(0)
  const rootB = await bPeer.root('/b')
  const flipped = (h: Buffer, at: number): Buffer => {
    const x = Buffer.from(h)
    x[at] = (x[at] ?? 0) ^ 0x40
    return x
  }
  const rows: [string, Peer, Buffer, number][] = [
    ['A\'s root from A\'s client', a, rootA, NFS3_OK],
    ['A\'s file from A\'s client', a, fileA, NFS3_OK],
    ['A\'s root from B\'s client', bPeer, rootA, NFS3ERR_ACCES],
    ['A\'s file from B\'s client', bPeer, fileA, NFS3ERR_ACCES],
    ['B\'s root from B\'s client', bPeer, rootB, NFS3_OK],
    ['B\'s root from A\'s client', a, rootB, NFS3ERR_ACCES],
    ['A\'s file, export id altered', a, flipped(fileA, 5), NFS3ERR_BADHANDLE],
    ['A\'s file, file id altered', a, flipped(fileA, 12), NFS3ERR_BADHANDLE],
    ['A\'s file, MAC altered', a, flipped(fileA, 31), NFS3ERR_BADHANDLE],
    ['A\'s file, truncated', a, fileA.subarray(0, 24), NFS3ERR_BADHANDLE],
    ['A\'s file, extended', a, Buffer.concat([fileA, Buffer.alloc(4)]), NFS3ERR_BADHANDLE],
  ]
  for (const [label, p, h, want] of rows) t.equal(await p.getattr(h), want, label)
  t.equal(await bPeer.mnt('/a'), MNT3ERR_ACCES, 'and B cannot mount A')
})
