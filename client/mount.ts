/*
 * MOUNT v3 (RFC 1813 Appendix I): MNT an export path for its root handle,
 * UMNT it again, EXPORT (showmount -e) and DUMP (showmount -a).
 */
import { MOUNT_PROGRAM } from '../xdr/generated/mount.ts'
import type { ProcedureRef } from './rpc/call.ts'
import type { RpcTransport } from './rpc/transport.ts'
import { MountError } from './errors.ts'
import { bump } from './stats.ts'

const V3 = MOUNT_PROGRAM.versions.MOUNT_V3

export interface ExportEntry {
  /** The export path. */
  dir: string
  /** Client groups allowed (host names, patterns, netgroups); empty = everyone. */
  groups: string[]
}

export interface MountEntry {
  hostname: string
  directory: string
}

export interface MntResult {
  /** The export's root handle (a copy). */
  fh: Buffer
  /** Security flavors the server accepts, preferred first (RFC 2623 §2.7). */
  authFlavors: number[]
}

export class MountClient {
  readonly transport: RpcTransport
  private readonly counts: Record<string, number>

  constructor(transport: RpcTransport, counts: Record<string, number> = {}) {
    this.transport = transport
    this.counts = counts
  }

  null(): Promise<void> {
    return this.call(V3.procs.MOUNTPROC3_NULL, undefined)
  }

  /** MNT: a mountstat3 other than MNT3_OK is a MountError with code MNT3ERR_*. */
  async mnt(path: string): Promise<MntResult> {
    const r = await this.call(V3.procs.MOUNTPROC3_MNT, Buffer.from(path))
    if (r.fhs_status !== 0) throw new MountError(r.fhs_status, path)
    return { fh: Buffer.from(r.mountinfo.fhandle), authFlavors: [...r.mountinfo.auth_flavors] }
  }

  umnt(path: string): Promise<void> {
    return this.call(V3.procs.MOUNTPROC3_UMNT, Buffer.from(path))
  }

  umntAll(): Promise<void> {
    return this.call(V3.procs.MOUNTPROC3_UMNTALL, undefined)
  }

  async exports(): Promise<ExportEntry[]> {
    const list = await this.call(V3.procs.MOUNTPROC3_EXPORT, undefined)
    return list.map(e => ({ dir: e.ex_dir.toString(), groups: e.ex_groups.map(g => g.gr_name.toString()) }))
  }

  async dump(): Promise<MountEntry[]> {
    const list = await this.call(V3.procs.MOUNTPROC3_DUMP, undefined)
    return list.map(m => ({ hostname: m.ml_hostname.toString(), directory: m.ml_directory.toString() }))
  }

  close(): Promise<void> {
    return this.transport.close()
  }

  private call<A, R>(p: ProcedureRef<A, R> & { name: string }, args: A): Promise<R> {
    bump(this.counts, p.name.replace('MOUNTPROC3_', ''))
    return this.transport.call(MOUNT_PROGRAM.prog, V3.vers, p, args)
  }
}

/**
 * Split a URL path into export and path inside it: the longest export that
 * is a whole-component prefix of the path (so /export/a/b mounts /export and
 * walks a/b). libnfs instead takes the whole path as the export unless told
 * otherwise; asking EXPORT lets one URL name any file under any export.
 */
export function splitExportPath(path: string, exports: readonly string[]): { exportPath: string; rest: string } | null {
  let best: string | null = null
  for (const raw of exports) {
    const e = raw.length > 1 ? raw.replace(/\/+$/, '') : raw
    const inside = e === '/' || path === e || path.startsWith(`${e}/`)
    if (inside && (best === null || e.length > best.length)) best = e
  }
  if (best === null) return null
  const rest = best === '/' ? path : path.slice(best.length)
  return { exportPath: best, rest: rest === '' ? '/' : rest }
}
