/*
 * The typed NFSv3 call layer: one generic call per procedure of the generated
 * table, over any RpcTransport. Every call is counted, every attribute in the
 * reply goes to the attribute cache, and a non-OK status becomes an NfsError
 * (unless the raw result is asked for).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { NFS_PROGRAM, nfsstat3 } from '../xdr/generated/nfs3.ts'
import type { ProcedureRef } from './rpc/call.ts'
import type { CallCredential } from './rpc/auth.ts'
import type { RpcTransport, TransportCallOptions } from './rpc/transport.ts'
import type { AttrCache } from './cache/attr-cache.ts'
import { NfsError } from './errors.ts'
import { FEED, SUBJECT } from './nfs3-feed.ts'
import type { Nfs3Args, Nfs3Ok, Nfs3ProcName, Nfs3Res } from './nfs3-types.ts'
import { bump } from './stats.ts'

export type { Nfs3Args, Nfs3Ok, Nfs3ProcName, Nfs3Res } from './nfs3-types.ts'

export interface Nfs3CallOptions extends TransportCallOptions {
  /** Named in the NfsError if the call fails. */
  path?: string
}

export interface Nfs3Options {
  /** RFC 1813 §2.6 NFS3ERR_JUKEBOX: wait, then retry with a new xid (Linux: 5 s). */
  jukeboxDelayMs: number
  jukeboxRetries: number
}

const PROCS = NFS_PROGRAM.versions.NFS_V3.procs
const VERS = NFS_PROGRAM.versions.NFS_V3.vers

export class Nfs3 {
  readonly transport: RpcTransport
  readonly attrs: AttrCache
  /** The credential of calls that name none (undefined: the transport's default). */
  readonly cred: CallCredential | undefined
  private readonly counts: Record<string, number>
  private readonly opts: Nfs3Options

  constructor(transport: RpcTransport, attrs: AttrCache, counts: Record<string, number>, opts: Nfs3Options, cred?: CallCredential) {
    this.transport = transport
    this.attrs = attrs
    this.counts = counts
    this.opts = opts
    this.cred = cred
  }

  /** The same connection, cache and counters, calling as cred unless a call names another. */
  as(cred: CallCredential): Nfs3 {
    return new Nfs3(this.transport, this.attrs, this.counts, this.opts, cred)
  }

  /** The whole result union, status included; attributes are still fed to the cache. */
  async raw<P extends Nfs3ProcName>(proc: P, args: Nfs3Args<P>, opts: TransportCallOptions = {}): Promise<Nfs3Res<P>> {
    const def = PROCS[`NFSPROC3_${proc}`] as unknown as ProcedureRef<Nfs3Args<P>, Nfs3Res<P>>
    const o = opts.cred === undefined && this.cred !== undefined ? { ...opts, cred: this.cred } : opts
    for (let attempt = 0; ; attempt++) {
      bump(this.counts, proc)
      const gen = this.attrs.callStarted()
      const res = await this.transport.call(NFS_PROGRAM.prog, VERS, def, args, o)
      ;(FEED[proc] as (a: Nfs3Args<P>, r: Nfs3Res<P>, c: AttrCache, g: number) => void)(args, res, this.attrs, gen)
      const status = statusOf(res)
      if (status === nfsstat3.NFS3_OK) {
        if (proc === 'READ') checkRead(args as Nfs3Args<'READ'>, res as Nfs3Res<'READ'>)
        else if (proc === 'READLINK') checkReadlink(res as Nfs3Res<'READLINK'>)
      }
      if (status === nfsstat3.NFS3ERR_STALE) {
        const fh = (SUBJECT[proc] as (a: Nfs3Args<P>) => Buffer | undefined)(args)
        if (fh !== undefined) this.attrs.forget(fh)
      }
      if (status !== nfsstat3.NFS3ERR_JUKEBOX || attempt >= this.opts.jukeboxRetries) return res
      await sleep(this.opts.jukeboxDelayMs)
    }
  }

  /** The resok arm, or an NfsError carrying the status. */
  async call<P extends Nfs3ProcName>(proc: P, args: Nfs3Args<P>, opts: Nfs3CallOptions = {}): Promise<Nfs3Ok<P>> {
    const { path, ...rpc } = opts
    const res = await this.raw(proc, args, rpc)
    const status = statusOf(res)
    if (status === undefined) return res as Nfs3Ok<P>
    if (status !== nfsstat3.NFS3_OK) throw NfsError.fromStatus(status, proc, path)
    return (res as unknown as { resok: Nfs3Ok<P> }).resok
  }
}

/**
 * A READ reply must carry as many bytes as its count says, and no more than were asked (RFC 1813
 * §3.3.6). Linux fails a count that is not the data's length with EIO; more data than asked would
 * land past the block it was asked for (a cached block of the wrong size, a download's next block
 * written over), so it fails the same way.
 */
function checkRead(args: Nfs3Args<'READ'>, res: Nfs3Res<'READ'>): void {
  if (res.status !== nfsstat3.NFS3_OK) return
  const { count, data } = res.resok
  if (count !== data.length || data.length > args.count) throw NfsError.fromStatus(nfsstat3.NFS3ERR_IO, 'READ')
}

/**
 * A symlink's target is a path, and no path holds a NUL: Node's file calls throw on one (cp -r
 * making the link locally), and the kernel would cut a FUSE readlink's answer short at it.
 */
function checkReadlink(res: Nfs3Res<'READLINK'>): void {
  if (res.status === nfsstat3.NFS3_OK && res.resok.data.includes(0)) throw NfsError.fromStatus(nfsstat3.NFS3ERR_IO, 'READLINK')
}

function statusOf(res: unknown): number | undefined {
  return typeof res === 'object' && res !== null && 'status' in res ? (res as { status: number }).status : undefined
}
