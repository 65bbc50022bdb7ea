/*
 * The harness's own NFSv3 client: raw RPCs over one TCP connection
 * (client/rpc RpcTcpClient) with the generated procedure tables, so every
 * bench op is exactly one RPC, as in nfsprobe. No caches, no retries.
 */
import { RpcTcpClient } from '../client/rpc/tcp-client.ts'
import { MOUNT_PROGRAM } from '../xdr/generated/mount.ts'
import { NFS_PROGRAM } from '../xdr/generated/nfs3.ts'
import type {
  COMMIT3res, CREATE3res, GETATTR3res, LOOKUP3res, READ3res, READDIRPLUS3res, REMOVE3res, WRITE3res, sattr3,
} from '../xdr/generated/nfs3.ts'

export interface NfsUrl {
  host: string
  exportPath: string
  nfsport: number
  mountport: number
  uid: number
  gid: number
}

/** libnfs-style `nfs://host/export?nfsport=P&mountport=M` (ports required: no portmapper here). */
export function parseBenchUrl(text: string): NfsUrl {
  const u = new URL(text)
  if (u.protocol !== 'nfs:') throw new Error(`not an nfs:// URL: ${text}`)
  const port = (name: string, fallback: string | null): number => {
    const v = u.searchParams.get(name) ?? fallback
    const n = Number(v)
    if (v === null || !Number.isInteger(n) || n <= 0 || n > 65535) throw new Error(`${text}: ${name}= missing or not a port`)
    return n
  }
  const nfsport = port('nfsport', u.port === '' ? null : u.port)
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    exportPath: decodeURIComponent(u.pathname) || '/',
    nfsport,
    mountport: port('mountport', String(nfsport)),
    uid: Number(u.searchParams.get('uid') ?? 0),
    gid: Number(u.searchParams.get('gid') ?? 0),
  }
}

const P = NFS_PROGRAM.versions.NFS_V3.procs
const PROG = NFS_PROGRAM.prog
const VERS = 3
const NO_ATTRS: sattr3 = { mode: 0o644, uid: null, gid: null, size: null, atime: { set_it: 0 }, mtime: { set_it: 0 } }

export class NfsError extends Error {
  readonly status: number
  constructor(op: string, status: number) {
    super(`${op}: NFS status ${status}`)
    this.status = status
  }
}

export class NfsDriver {
  readonly rpc: RpcTcpClient
  readonly root: Buffer

  private constructor(rpc: RpcTcpClient, root: Buffer) {
    this.rpc = rpc
    this.root = root
  }

  /** MOUNT the export (own short connection), then one connection for NFS. */
  static async connect(url: NfsUrl): Promise<NfsDriver> {
    const cred = { uid: url.uid, gid: url.gid, gids: [], machinename: 'tsnfs-bench', stamp: 0 }
    const m = await RpcTcpClient.connect(url.host, url.mountport, { cred })
    let root: Buffer
    try {
      const r = await m.call(MOUNT_PROGRAM.prog, 3, MOUNT_PROGRAM.versions.MOUNT_V3.procs.MOUNTPROC3_MNT, Buffer.from(url.exportPath))
      if (r.fhs_status !== 0) throw new Error(`MOUNT ${url.exportPath}: status ${r.fhs_status}`)
      root = Buffer.from(r.mountinfo.fhandle)
    } finally {
      await m.close()
    }
    const rpc = await RpcTcpClient.connect(url.host, url.nfsport, { cred, maxRecordSize: 8 * 1024 * 1024, timeoutMs: 60_000 })
    return new NfsDriver(rpc, root)
  }

  close(): Promise<void> {
    return this.rpc.close()
  }

  async getattr(fh: Buffer): Promise<GETATTR3res> {
    return check('GETATTR', await this.rpc.call(PROG, VERS, P.NFSPROC3_GETATTR, { object: { data: fh } }))
  }

  async lookup(dir: Buffer, name: string): Promise<Buffer> {
    const r: LOOKUP3res = check('LOOKUP', await this.rpc.call(PROG, VERS, P.NFSPROC3_LOOKUP, { what: { dir: { data: dir }, name: Buffer.from(name) } }))
    if (r.status !== 0) throw new NfsError('LOOKUP', r.status)
    return r.resok.object.data
  }

  async create(dir: Buffer, name: string): Promise<Buffer> {
    const r: CREATE3res = check('CREATE', await this.rpc.call(PROG, VERS, P.NFSPROC3_CREATE, {
      where: { dir: { data: dir }, name: Buffer.from(name) },
      how: { mode: 1, obj_attributes: NO_ATTRS },
    }))
    if (r.status !== 0) throw new NfsError('CREATE', r.status)
    if (r.resok.obj === null) return this.lookup(dir, name)
    return r.resok.obj.data
  }

  async mkdir(dir: Buffer, name: string): Promise<Buffer> {
    const r = check('MKDIR', await this.rpc.call(PROG, VERS, P.NFSPROC3_MKDIR, {
      where: { dir: { data: dir }, name: Buffer.from(name) },
      attributes: { ...NO_ATTRS, mode: 0o755 },
    }))
    if (r.status !== 0) throw new NfsError('MKDIR', r.status)
    if (r.resok.obj === null) return this.lookup(dir, name)
    return r.resok.obj.data
  }

  async remove(dir: Buffer, name: string): Promise<REMOVE3res> {
    return check('REMOVE', await this.rpc.call(PROG, VERS, P.NFSPROC3_REMOVE, { object: { dir: { data: dir }, name: Buffer.from(name) } }))
  }

  async rmdir(dir: Buffer, name: string): Promise<void> {
    check('RMDIR', await this.rpc.call(PROG, VERS, P.NFSPROC3_RMDIR, { object: { dir: { data: dir }, name: Buffer.from(name) } }))
  }

  /** One READDIRPLUS call; nfsprobe's sizes (dircount 8192, maxcount 32768). */
  async readdirplus(dir: Buffer, cookie: bigint, verf: Buffer): Promise<READDIRPLUS3res & { status: 0 }> {
    const r = await this.rpc.call(PROG, VERS, P.NFSPROC3_READDIRPLUS, { dir: { data: dir }, cookie, cookieverf: verf, dircount: 8192, maxcount: 32768 })
    if (r.status !== 0) throw new NfsError('READDIRPLUS', r.status)
    return r
  }

  async write(fh: Buffer, offset: bigint, data: Buffer, stable: 0 | 1 | 2): Promise<WRITE3res> {
    const r = await this.rpc.call(PROG, VERS, P.NFSPROC3_WRITE, { file: { data: fh }, offset, count: data.length, stable, data })
    return check('WRITE', r)
  }

  async read(fh: Buffer, offset: bigint, count: number): Promise<READ3res> {
    return check('READ', await this.rpc.call(PROG, VERS, P.NFSPROC3_READ, { file: { data: fh }, offset, count }))
  }

  async commit(fh: Buffer): Promise<COMMIT3res> {
    return check('COMMIT', await this.rpc.call(PROG, VERS, P.NFSPROC3_COMMIT, { file: { data: fh }, offset: 0n, count: 0 }))
  }

  /** rtmax/wtmax from FSINFO. */
  async fsinfo(): Promise<{ rtmax: number; wtmax: number }> {
    const r = await this.rpc.call(PROG, VERS, P.NFSPROC3_FSINFO, { fsroot: { data: this.root } })
    if (r.status !== 0) throw new NfsError('FSINFO', r.status)
    return { rtmax: r.resok.rtmax, wtmax: r.resok.wtmax }
  }
}

function check<R extends { status: number }>(op: string, r: R): R {
  if (r.status !== 0) throw new NfsError(op, r.status)
  return r
}
