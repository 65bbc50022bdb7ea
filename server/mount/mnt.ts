/*
 * MNT (RFC 1813 §5.2.1): from an export path, or a directory below one
 * (symlinks inside the export resolved, see resolve.ts), to the root file
 * handle the client starts from. The mount list keeps the path as asked,
 * so UMNT of the same path finds it without walking the tree again.
 */
import type { mountstat3 } from '../../xdr/generated/mount.ts'
import { mountstat3 as MNT } from '../../xdr/generated/mount.ts'
import { isErrnoError } from '../../vfs/errors.ts'
import type { FileRef } from '../../vfs/types.ts'
import type { BackendSet } from '../backends.ts'
import type { ExportTable } from '../exports/table.ts'
import type { ServerHost } from '../host.ts'
import { resolveMountPath } from './resolve.ts'
import type { CallContext } from '../rpc/program.ts'

export type MountResult = { ok: true; fh: Buffer; path: string } | { ok: false; status: Exclude<mountstat3, 0> }

export interface MountResolver {
  mount(path: Buffer, call: CallContext): Promise<MountResult>
  /** The path as the mount list keeps it (`//export//sub/` → `/export/sub`), so UMNT finds what MNT recorded. */
  canonical(path: Buffer): string
}

export class ExportMountResolver implements MountResolver {
  private readonly table: ExportTable
  private readonly backends: BackendSet
  private readonly host: ServerHost

  constructor(table: ExportTable, backends: BackendSet, host: ServerHost) {
    this.table = table
    this.backends = backends
    this.host = host
  }

  async mount(path: Buffer, call: CallContext): Promise<MountResult> {
    const found = this.table.byPath(path)
    if (found === null) return { ok: false, status: MNT.MNT3ERR_NOENT }
    const exp = found.export
    const check = await this.host.access(exp, call)
    if (!check.ok) {
      call.log.info({ export: exp.path, peer: call.peer.address, reason: check.reason }, 'mount refused')
      return { ok: false, status: MNT.MNT3ERR_ACCES }
    }
    const vfs = this.backends.get(exp.id)
    if (vfs === undefined) return { ok: false, status: MNT.MNT3ERR_SERVERFAULT }
    // A directory below the export, symlinks resolved inside it (resolve.ts says how, and why as mountd does).
    let ref: FileRef
    try {
      const r = await resolveMountPath(vfs, exp.path, found.subpath)
      if (!r.ok) {
        call.log.info({ export: exp.path, path: path.toString('utf8'), peer: call.peer.address, reason: r.reason }, 'mount refused')
        return { ok: false, status: r.status }
      }
      ref = r.ref
      await vfs.getattr(ref)
    } catch (err) {
      if (isErrnoError(err) && err.code === 'ENOENT') return { ok: false, status: MNT.MNT3ERR_NOENT }
      if (isErrnoError(err) && err.code === 'ENOTDIR') return { ok: false, status: MNT.MNT3ERR_NOTDIR }
      if (isErrnoError(err) && err.code === 'EACCES') return { ok: false, status: MNT.MNT3ERR_ACCES }
      if (isErrnoError(err) && err.code === 'ENAMETOOLONG') return { ok: false, status: MNT.MNT3ERR_NAMETOOLONG }
      // The export's storage is not reachable yet (a cluster export whose database is down,
      // server/cluster-pending.ts). MOUNT v3 has no "try again later" (RFC 1813 §5.1.5's
      // mountstat3 has no JUKEBOX): SERVERFAULT, "a failure on the server", keeps it apart from
      // IO, which answers every other failure below; Linux reports it as EREMOTEIO. NFS requests
      // on handles the client already holds get NFS3ERR_JUKEBOX meanwhile and are retried.
      if (isErrnoError(err) && err.code === 'EAGAIN') {
        call.log.warn({ export: exp.path, peer: call.peer.address, reason: err.message }, 'mount refused: the export is not available yet')
        return { ok: false, status: MNT.MNT3ERR_SERVERFAULT }
      }
      call.log.error({ err }, 'MNT failed')
      return { ok: false, status: MNT.MNT3ERR_IO }
    }
    return { ok: true, fh: this.host.handle(exp.id, ref), path: this.canonical(path) }
  }

  canonical(path: Buffer): string {
    const found = this.table.byPath(path)
    if (found === null) return path.toString('utf8')
    const base = found.export.path === '/' ? '' : found.export.path
    return found.subpath === '' ? found.export.path : `${base}/${found.subpath}`
  }
}
