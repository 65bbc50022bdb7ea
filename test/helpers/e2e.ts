/*
 * Helpers for end-to-end tests of a whole createServer over real sockets:
 * raw CALL records for NFS/MOUNT/PORTMAP procedures, exact reply words, a
 * raw UDP exchange, and a few typed NFS operations on top of RpcTcpClient.
 */
import { createSocket } from 'node:dgram'
import type { Socket as DgramSocket } from 'node:dgram'
import type { Test } from 'tap'
import { decodeReply } from '../../client/rpc/call.ts'
import type { ProcedureRef } from '../../client/rpc/call.ts'
import type { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import type { fattr3, nfsstat3, sattr3 } from '../../xdr/generated/nfs3.ts'
import { MOUNT_PROGRAM } from '../../xdr/generated/mount.ts'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { authSysCred, callRecord, words } from './rpc.ts'
import { NFS3 } from './server.ts'

export const NFS_PROG = NFS_PROGRAM.prog
export const MOUNT_PROG = MOUNT_PROGRAM.prog
export const PMAP_PROG_NUMBER = PMAP_PROG.prog

/** The AUTH_SYS root credential as raw opaque_auth, for hand-built records. */
export const ROOT_AUTH: OpaqueAuth = authSysCred({ uid: 0, gid: 0, gids: [], machinename: 'test' })

/** sattr3 with nothing set. */
export const NO_ATTRS: sattr3 = { mode: null, uid: null, gid: null, size: null, atime: { set_it: 0 }, mtime: { set_it: 0 } }

export const fh = (data: Buffer): { data: Buffer } => ({ data })
export const b = (s: string): Buffer => Buffer.from(s)

/** A CALL record of `proc` with its encoded arguments (AUTH_SYS root unless told). */
export function procRecord<A>(
  xid: number,
  prog: number,
  vers: number,
  p: { proc: number; args: Codec<A> },
  args: A,
  cred: OpaqueAuth = ROOT_AUTH,
): Buffer {
  return callRecord({ xid, prog, vers, proc: p.proc, cred, args: encodeToBuffer(p.args, args) })
}

/** A CALL record with arbitrary argument bytes. */
export function rawRecord(xid: number, prog: number, vers: number, proc: number, args: Buffer, cred: OpaqueAuth = ROOT_AUTH): Buffer {
  return callRecord({ xid, prog, vers, proc, cred, args })
}

/** The exact reply records the dispatcher sends for the non-SUCCESS cases (RFC 5531 §9). */
export const replyWords = {
  garbageArgs: (xid: number): Buffer => words(xid, 1, 0, 0, 0, 4),
  progUnavail: (xid: number): Buffer => words(xid, 1, 0, 0, 0, 1),
  progMismatch: (xid: number, low: number, high: number): Buffer => words(xid, 1, 0, 0, 0, 2, low, high),
  procUnavail: (xid: number): Buffer => words(xid, 1, 0, 0, 0, 3),
  rpcMismatch: (xid: number): Buffer => words(xid, 1, 1, 0, 2, 2),
  authError: (xid: number, stat: number): Buffer => words(xid, 1, 1, 1, stat),
}

/** Decode a SUCCESS reply's results (throws RpcError otherwise). */
export function results<R>(reply: Buffer, p: ProcedureRef<unknown, R>): R {
  return decodeReply(reply, p.res)
}

/** A raw UDP socket bound to loopback, closed at teardown. */
export async function udpSocket(t: Test): Promise<DgramSocket> {
  const s = createSocket('udp4')
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => s.close(() => { resolve() })))
  return s
}

/** Send one datagram and wait for the next datagram back (null after `ms`). */
export function udpExchange(s: DgramSocket, port: number, datagram: Buffer, ms = 2000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const onMsg = (msg: Buffer): void => {
      clearTimeout(timer)
      resolve(msg)
    }
    const timer = setTimeout(() => {
      s.off('message', onMsg)
      resolve(null)
    }, ms)
    s.once('message', onMsg)
    s.send(datagram, port, '127.0.0.1')
  })
}

/** A few typed NFS operations (root AUTH_SYS from the client's default credential). */
export class Nfs {
  readonly c: RpcTcpClient
  constructor(c: RpcTcpClient) {
    this.c = c
  }

  async getattr(obj: Buffer): Promise<{ status: nfsstat3; attr?: fattr3 }> {
    const r = await this.c.call(NFS_PROG, 3, NFS3.NFSPROC3_GETATTR, { object: fh(obj) })
    return r.status === 0 ? { status: 0, attr: r.resok.obj_attributes } : { status: r.status }
  }

  async lookup(dir: Buffer, name: string): Promise<{ status: nfsstat3; fh?: Buffer }> {
    const r = await this.c.call(NFS_PROG, 3, NFS3.NFSPROC3_LOOKUP, { what: { dir: fh(dir), name: b(name) } })
    return r.status === 0 ? { status: 0, fh: Buffer.from(r.resok.object.data) } : { status: r.status }
  }

  /** CREATE UNCHECKED; returns the new handle or throws with the status. */
  async create(dir: Buffer, name: string): Promise<Buffer> {
    const r = await this.c.call(NFS_PROG, 3, NFS3.NFSPROC3_CREATE, {
      where: { dir: fh(dir), name: b(name) },
      how: { mode: 0, obj_attributes: NO_ATTRS },
    })
    if (r.status !== 0 || r.resok.obj === null) throw new Error(`CREATE ${name}: status ${r.status}`)
    return Buffer.from(r.resok.obj.data)
  }

  async mkdir(dir: Buffer, name: string): Promise<Buffer> {
    const r = await this.c.call(NFS_PROG, 3, NFS3.NFSPROC3_MKDIR, { where: { dir: fh(dir), name: b(name) }, attributes: NO_ATTRS })
    if (r.status !== 0 || r.resok.obj === null) throw new Error(`MKDIR ${name}: status ${r.status}`)
    return Buffer.from(r.resok.obj.data)
  }

  async write(file: Buffer, offset: bigint, data: Buffer): Promise<nfsstat3> {
    const r = await this.c.call(NFS_PROG, 3, NFS3.NFSPROC3_WRITE, { file: fh(file), offset, count: data.length, stable: 2, data })
    return r.status
  }

  async read(file: Buffer, offset: bigint, count: number): Promise<{ status: nfsstat3; data?: Buffer; eof?: boolean }> {
    const r = await this.c.call(NFS_PROG, 3, NFS3.NFSPROC3_READ, { file: fh(file), offset, count })
    return r.status === 0 ? { status: 0, data: Buffer.from(r.resok.data), eof: r.resok.eof } : { status: r.status }
  }
}
