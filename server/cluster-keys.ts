/*
 * Handle keys per export (issue 17 §3). NFSv3 lets a client send any handle to
 * any server of a cluster (after a failover, or through a load balancer), so
 * every server must mint and accept the same bytes for a cluster export: its
 * key is the one in the cluster's database. Local exports keep the server's
 * own key (state dir handle.key), so adding or removing a cluster export (at
 * start or by a reload) leaves their handles as they were. The handle's export
 * id says which key checks it (server/nfs3/filehandle.ts); two cluster exports
 * on databases with different keys are simply two keys.
 *
 * Kept apart from cluster-backend.ts so the server loads the database and S3
 * clients only when an export uses them.
 */
import type { ExportKey } from './nfs3/filehandle.ts'

/**
 * Where cluster backends say which key their export's handles use. A backend
 * claims its export id with the key (or 'pending' until its database answers)
 * and releases it when it closes; a release by a backend that has been
 * replaced (a reload reopened the export with other settings: the new one
 * opens before the old one closes) changes nothing.
 */
export class ClusterKeys {
  private readonly owners = new Map<number, object>()
  private readonly apply: (exportId: number, key: ExportKey | null) => void

  /** `apply` installs a key in the handle codec (null: the server's own key again). */
  constructor(apply: (exportId: number, key: ExportKey | null) => void) {
    this.apply = apply
  }

  set(exportId: number, owner: object, key: ExportKey): void {
    this.owners.set(exportId, owner)
    this.apply(exportId, key)
  }

  release(exportId: number, owner: object): void {
    if (this.owners.get(exportId) !== owner) return
    this.owners.delete(exportId)
    this.apply(exportId, null)
  }

  /** Export ids with a key of their own, or pending one (tests, status). */
  claimed(): number[] {
    return [...this.owners.keys()]
  }
}
