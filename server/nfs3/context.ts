/*
 * Nfs3Context: what a procedure handler works with for one call — the host,
 * the call, its logger, the transfer limits for this transport, and small
 * helpers to resolve handles and fetch attributes for replies.
 */
import type { fattr3, nfs_fh3, nfsstat3, post_op_attr, wcc_data } from '../../xdr/generated/nfs3.ts'
import type { Attr, FileRef } from '../../vfs/types.ts'
import type { Logger } from '../logger.ts'
import type { CallContext, Transport } from '../rpc/program.ts'
import { fattr3Of } from './attrs.ts'
import type { Nfs3Host, Nfs3Limits, ResolveFailure, Resolved } from './host.ts'
import { toNfsStat } from './status.ts'

export type ErrStat = Exclude<nfsstat3, 0>

/** A verified handle together with the object's attributes, read for this call. */
export interface Target extends Resolved {
  attr: Attr
}

/** RFC 5531 over UDP: one datagram per reply (65,507 bytes on IPv4); 32 KiB of data is customary (P7). */
export const UDP_MAX_TRANSFER = 32 * 1024

export function transportLimits(limits: Nfs3Limits, transport: Transport): Nfs3Limits {
  if (transport === 'tcp') return limits
  const cap = (n: number): number => Math.min(n, UDP_MAX_TRANSFER)
  return {
    rtmax: cap(limits.rtmax),
    rtpref: cap(limits.rtpref),
    wtmax: cap(limits.wtmax),
    wtpref: cap(limits.wtpref),
    dtpref: cap(limits.dtpref),
    maxReaddirCount: cap(limits.maxReaddirCount),
  }
}

export interface Nfs3Context {
  readonly host: Nfs3Host
  readonly call: CallContext
  readonly log: Logger
  /** The host's limits, capped for this call's transport. */
  readonly limits: Nfs3Limits
  /** Verify a handle (BADHANDLE, STALE, ACCES) and return the export's view of it. */
  resolve(fh: nfs_fh3): Promise<Resolved | ResolveFailure>
  /** resolve(), then the object's attributes (a failure of either is a status). */
  target(fh: nfs_fh3): Promise<Target | ResolveFailure>
  /** The status for a failed vfs call (status.ts). */
  status(err: unknown): ErrStat
}

/** One per call: a class, so a request allocates one object and no closures. */
class CallNfs3Context implements Nfs3Context {
  readonly host: Nfs3Host
  readonly call: CallContext
  readonly log: Logger
  readonly limits: Nfs3Limits

  constructor(host: Nfs3Host, call: CallContext) {
    this.host = host
    this.call = call
    this.log = call.log
    this.limits = transportLimits(host.limits, call.transport)
  }

  resolve(fh: nfs_fh3): Promise<Resolved | ResolveFailure> {
    return this.host.resolve(fh.data, this.call)
  }

  async target(fh: nfs_fh3): Promise<Target | ResolveFailure> {
    const obj = await this.host.resolve(fh.data, this.call)
    if (!obj.ok) return obj
    try {
      const attr = await obj.vfs.getattr(obj.ref)
      return { ok: true, exportId: obj.exportId, vfs: obj.vfs, ref: obj.ref, user: obj.user, readOnly: obj.readOnly, sync: obj.sync, attr }
    } catch (err) {
      return { ok: false, status: this.status(err) }
    }
  }

  status(err: unknown): ErrStat {
    return toNfsStat(err, this.call.log)
  }
}

export function createNfs3Context(host: Nfs3Host, call: CallContext): Nfs3Context {
  return new CallNfs3Context(host, call)
}

/** RFC 1813 §2.5 fsid: the export id, so fileids are unique per fsid. */
export function fsidOf(obj: Resolved): bigint {
  return BigInt(obj.exportId)
}

export function fattr(obj: Resolved, attr: Attr): fattr3 {
  return fattr3Of(attr, fsidOf(obj))
}

/** Attributes for a reply, if they can be had (RFC 1813 §3.1: as much as possible, even on failure). */
export async function tryAttr(obj: Resolved, ref: FileRef = obj.ref): Promise<Attr | null> {
  try {
    return await obj.vfs.getattr(ref)
  } catch {
    return null
  }
}

export async function postOpOf(obj: Resolved, ref: FileRef = obj.ref): Promise<post_op_attr> {
  const a = await tryAttr(obj, ref)
  return a === null ? null : fattr(obj, a)
}

/** wcc_data for a failure that changed nothing: no `before`, the current attributes `after` (P6). */
export function unchangedWcc(obj: Resolved, attr: Attr | null): wcc_data {
  return { before: null, after: attr === null ? null : fattr(obj, attr) }
}

export async function failWcc(obj: Resolved, ref: FileRef = obj.ref): Promise<wcc_data> {
  return unchangedWcc(obj, await tryAttr(obj, ref))
}

export function handleOf(ctx: Nfs3Context, obj: Resolved, ref: FileRef): nfs_fh3 {
  return { data: ctx.host.handleForReply(obj.exportId, ref) }
}

/** The same handle comes from two procedures' arguments: same export? (RENAME, LINK: else XDEV, P14). */
export function sameExport(a: Resolved, b: Resolved): boolean {
  return a.exportId === b.exportId
}
