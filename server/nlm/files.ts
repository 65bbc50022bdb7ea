/*
 * From an NLM file handle to the lock table's file key. The handle is the
 * NFSv3 handle (RFC 1813 §6.1.4), verified like any NFS request's (export
 * policy included), and the key names the file, not the handle: the backend
 * instance and the fileid, so every handle of one file locks the same bytes.
 */
import type { Vfs } from '../../vfs/types.ts'
import { isErrnoError } from '../../vfs/errors.ts'
import type { Nfs3Host } from '../nfs3/host.ts'
import type { CallContext } from '../rpc/program.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { NLM } from './types.ts'
import type { NlmStat } from './types.ts'

export type FileLookup = { ok: true; key: string; readOnly: boolean } | { ok: false; stat: NlmStat }

export class LockFiles {
  private readonly host: Nfs3Host
  private readonly ids = new WeakMap<Vfs, number>()
  private next = 1

  constructor(host: Nfs3Host) {
    this.host = host
  }

  async lookup(fh: Buffer, call: CallContext): Promise<FileLookup> {
    const r = await this.host.resolve(fh, call)
    if (!r.ok) {
      // A client the export refuses is told the lock manager failed, not that a lock conflicts.
      return { ok: false, stat: r.status === nfsstat3.NFS3ERR_ACCES ? NLM.FAILED : NLM.STALE_FH }
    }
    try {
      const attr = await r.vfs.getattr(r.ref)
      return { ok: true, key: `${this.idOf(r.vfs)}:${attr.fileid}`, readOnly: r.readOnly }
    } catch (err) {
      if (isErrnoError(err) && (err.code === 'ESTALE' || err.code === 'ENOENT')) return { ok: false, stat: NLM.STALE_FH }
      call.log.warn({ err }, 'nlm: could not stat the file to lock')
      return { ok: false, stat: NLM.FAILED }
    }
  }

  private idOf(vfs: Vfs): number {
    let id = this.ids.get(vfs)
    if (id === undefined) {
      id = this.next++
      this.ids.set(vfs, id)
    }
    return id
  }
}
