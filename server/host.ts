/*
 * The server's side of the NFSv3 and MOUNT seams: handles (HandleCodec),
 * export policy (client matching, squashing, ro) and the write verifier.
 */
import type { nfsstat3 } from '../xdr/generated/nfs3.ts'
import { nfsstat3 as NFS } from '../xdr/generated/nfs3.ts'
import type { FileRef } from '../vfs/types.ts'
import type { BackendSet } from './backends.ts'
import { squash } from './exports/squash.ts'
import type { Export, ExportTable } from './exports/table.ts'
import type { ClientCheck } from './exports/match.ts'
import { FH_SIZE } from './nfs3/filehandle.ts'
import type { ExportKey, HandleCodec } from './nfs3/filehandle.ts'
import type { Nfs3Host, Nfs3Limits, Resolved, ResolveFailure } from './nfs3/host.ts'
import type { CallContext, Peer } from './rpc/program.ts'
import type { WriteVerifier } from './state.ts'

export const DEFAULT_NFS3_LIMITS: Readonly<Nfs3Limits> = Object.freeze({
  rtmax: 1024 * 1024,
  rtpref: 1024 * 1024,
  wtmax: 1024 * 1024,
  wtpref: 1024 * 1024,
  dtpref: 64 * 1024,
  maxReaddirCount: 1024 * 1024,
})

const fail = (status: Exclude<nfsstat3, 0>): ResolveFailure => ({ ok: false, status })

const ACCESS_CACHE_MS = 1000
const ACCESS_CACHE_ENTRIES = 4096

interface LastAccess {
  readonly version: number
  readonly exportId: number
  readonly check: Promise<ClientCheck>
  readonly at: number
  settled: ClientCheck | undefined
}

export class ServerHost implements Nfs3Host {
  readonly limits: Nfs3Limits
  private readonly accessCache = new Map<string, { check: Promise<ClientCheck>; at: number }>()
  /**
   * The last answer of access() per TCP connection (its Peer object lives as long as it does),
   * once settled: resolve() then takes it without building the cache key or awaiting, which
   * were a measurable part of every call (bench/README.md, session 38). It expires with the
   * accessCache entry it came from (same `at`), so the policy is asked again just as often.
   */
  private readonly lastAccess = new WeakMap<Peer, LastAccess>()
  private readonly table: ExportTable
  private readonly backends: BackendSet
  private readonly handles: HandleCodec
  private readonly verifier: WriteVerifier

  constructor(table: ExportTable, backends: BackendSet, handles: HandleCodec, verifier: WriteVerifier, limits: Nfs3Limits) {
    this.table = table
    this.backends = backends
    this.handles = handles
    this.verifier = verifier
    this.limits = limits
  }

  /**
   * Whether the caller may use the export at all (MNT and every NFS request check this).
   * The answer depends on the export list, the peer's address and whether its port is
   * privileged (`secure`), so it is cached per those for a second: a client's requests do
   * not each parse its address and match it again (wildcard names are cached longer by the
   * resolver already). A reload starts a new version.
   */
  access(exp: Export, call: CallContext): Promise<ClientCheck> {
    const key = `${this.table.version}/${exp.id}/${call.peer.address}/${call.peer.port < 1024 ? 'p' : 'u'}`
    const now = performance.now()
    const hit = this.accessCache.get(key)
    if (hit !== undefined && now - hit.at < ACCESS_CACHE_MS) {
      this.remember(call, exp, hit.check, hit.at)
      return hit.check
    }
    const check = this.table.clientOptions(exp, call.peer)
    if (this.accessCache.size >= ACCESS_CACHE_ENTRIES) this.accessCache.clear()
    this.accessCache.set(key, { check, at: now })
    this.remember(call, exp, check, now)
    return check
  }

  private remember(call: CallContext, exp: Export, check: Promise<ClientCheck>, at: number): void {
    // A UDP call's Peer is its own datagram's: nothing to reuse.
    if (call.transport !== 'tcp') return
    const last = this.lastAccess.get(call.peer)
    if (last !== undefined && last.check === check) return
    const entry: LastAccess = { version: this.table.version, exportId: exp.id, check, at, settled: undefined }
    this.lastAccess.set(call.peer, entry)
    check.then((c) => { entry.settled = c }, () => undefined)
  }

  /** access()'s answer for this call if a settled one of the same connection, export and table version is still fresh. */
  private settledAccess(exp: Export, call: CallContext): ClientCheck | undefined {
    const last = this.lastAccess.get(call.peer)
    if (last?.settled === undefined || last.exportId !== exp.id || last.version !== this.table.version) return undefined
    return performance.now() - last.at < ACCESS_CACHE_MS ? last.settled : undefined
  }

  async resolve(fh: Buffer, call: CallContext): Promise<Resolved | ResolveFailure> {
    const h = this.handles.decode(fh)
    // A cluster export whose database has not been reached yet cannot check the handle's MAC:
    // "try again later" (RFC 1813 §2.6 NFS3ERR_JUKEBOX), not BADHANDLE, which would end the mount.
    if (!h.ok) return fail(h.reason === 'pending' ? NFS.NFS3ERR_JUKEBOX : NFS.NFS3ERR_BADHANDLE)
    // RFC 1813 P12: a well-formed handle of an export that is gone (or was never ours) is stale.
    const exp = this.table.byId(h.exportId)
    const vfs = exp === undefined ? undefined : this.backends.get(exp.id)
    if (exp === undefined || vfs === undefined) return fail(NFS.NFS3ERR_STALE)
    const check = this.settledAccess(exp, call) ?? (await this.access(exp, call))
    if (!check.ok) {
      call.log.debug({ export: exp.path, peer: call.peer.address, reason: check.reason }, 'request refused by export policy')
      return fail(NFS.NFS3ERR_ACCES)
    }
    const o = check.options
    return { ok: true, exportId: exp.id, vfs, ref: h.ref, user: squash(call.cred, o), readOnly: !o.rw, sync: o.sync }
  }

  /** Export `exportId` mints and checks its handles with `key` (null: the server's own key); see HandleCodec.setExportKey. */
  setExportKey(exportId: number, key: ExportKey | null): void {
    this.handles.setExportKey(exportId, key)
  }

  handle(exportId: number, ref: FileRef): Buffer {
    return this.handles.encode(exportId, ref)
  }

  /** The same handle, possibly the cache's own buffer: only to be encoded into a reply, never modified or kept. */
  handleForReply(exportId: number, ref: FileRef): Buffer {
    return this.handles.encodeShared(exportId, ref)
  }

  writeHandle(exportId: number, ref: FileRef, out: Buffer, at: number): number {
    return this.handles.writeInto(exportId, ref, out, at)
  }

  handleSize(): number {
    return FH_SIZE
  }

  writeVerifier(): Buffer {
    return this.verifier.current()
  }

  bumpWriteVerifier(): void {
    this.verifier.bump()
  }
}
