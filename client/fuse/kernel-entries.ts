/*
 * Positive entries the kernel was given and still holds as valid (until
 * their entry timeout). FUSE's dentry revalidation asks LOOKUP again for
 * such a name before its timeout only when the VFS insists
 * (fuse_dentry_revalidate: LOOKUP_EXCL for mkdir or an exclusive create,
 * LOOKUP_RENAME_TARGET, and LOOKUP_REVAL: the retry of a path walk that met
 * ESTALE), which is when the Linux NFS client sends a LOOKUP over the wire
 * rather than trust its caches (nfs_lookup_revalidate). Such a LOOKUP must
 * therefore go to the server: another client may have removed or replaced
 * the name since, and an answer from the name cache would keep the kernel
 * on a handle the server no longer knows (EEXIST for a mkdir of a removed
 * name, ESTALE again on the retry).
 *
 * Bounded: a name forgotten here (evicted) is answered from the name cache
 * as before; a name the kernel evicted on its own costs one LOOKUP more.
 */
import { LRUCache } from 'lru-cache'

const MAX_ENTRIES = 65_536

export class KernelEntries {
  private readonly held = new LRUCache<string, number>({ max: MAX_ENTRIES })
  private readonly now: () => number

  constructor(now: () => number = Date.now) {
    this.now = now
  }

  /** The kernel got a positive entry for name in parent, valid for ms. */
  given(parent: bigint, name: string, ms: number): void {
    const key = `${String(parent)}/${name}`
    if (ms > 0) this.held.set(key, this.now() + ms)
    else this.held.delete(key)
  }

  /** The name changed through this mount (removed, renamed, or given as absent): the kernel knows. */
  drop(parent: bigint, name: string): void {
    this.held.delete(`${String(parent)}/${name}`)
  }

  /** Whether a LOOKUP of name in parent comes while the kernel holds a valid entry for it (a forced revalidation). */
  forced(parent: bigint, name: string): boolean {
    const until = this.held.get(`${String(parent)}/${name}`)
    return until !== undefined && this.now() < until
  }
}
