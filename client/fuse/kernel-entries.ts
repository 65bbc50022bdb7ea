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
 * Negative entries (names given as absent, and not made since through this
 * mount) are kept per directory too: when a directory turns out changed by
 * someone else at its open (close-to-open, nfs-files.ts opendir), the
 * kernel is told to drop them, as Linux's client revalidates every dentry
 * of a directory whose change attribute moved; else rm -rf would take
 * another client's new file for absent (its negative entry) and fail on the
 * directory with ENOTEMPTY.
 *
 * The kernel expires a positive entry on its own before its timeout in one
 * case: a directory whose mode changed through it (fuse_setattr: "Directory
 * mode changed, may need to revalidate access" invalidates that dentry), so
 * its next path walk sends a plain LOOKUP. rsync -a fchmods each directory it
 * makes: taken for forced, each such LOOKUP went to the server and left the
 * parent's names no longer known complete, so every later LOOKUP in it did
 * too (session 35: LOOKUP 0.11 -> 0.53 per entry). expired() forgets them.
 *
 * Bounded: a name forgotten here (evicted) is answered from the name cache
 * as before, or stays absent in the kernel until its entry times out; a
 * name the kernel evicted on its own costs one LOOKUP more.
 */
import { LRUCache } from 'lru-cache'

const MAX_ENTRIES = 65_536
/** Directories with negative entries tracked, and names tracked per directory (oldest dropped first). */
const MAX_ABSENT_DIRS = 4096
const MAX_ABSENT_PER_DIR = 1024

export class KernelEntries {
  /** parent/name -> until (ms) and the node given. */
  private readonly held = new LRUCache<string, { until: number; node: bigint }>({ max: MAX_ENTRIES })
  /** node -> the parent/name it was last given as (directories have one). */
  private readonly names = new LRUCache<bigint, string>({ max: MAX_ENTRIES })
  private readonly absent = new LRUCache<bigint, Map<string, number>>({ max: MAX_ABSENT_DIRS })
  private readonly now: () => number

  constructor(now: () => number = Date.now) {
    this.now = now
  }

  /** The kernel got a positive entry for name in parent (node, 0 if not told), valid for ms. */
  given(parent: bigint, name: string, ms: number, node = 0n): void {
    const key = `${String(parent)}/${name}`
    if (ms > 0) {
      this.held.set(key, { until: this.now() + ms, node })
      if (node !== 0n) this.names.set(node, key)
    } else this.held.delete(key)
    this.absent.peek(parent)?.delete(name)
  }

  /** The kernel invalidated its entry for node (a directory's mode changed through it): its next LOOKUP is its own. */
  expired(node: bigint): void {
    const key = this.names.get(node)
    if (key === undefined) return
    this.names.delete(node)
    if (this.held.peek(key)?.node === node) this.held.delete(key)
  }

  /** The kernel got a negative entry (node 0) for name in parent, valid for ms. */
  givenAbsent(parent: bigint, name: string, ms: number): void {
    this.held.delete(`${String(parent)}/${name}`)
    let names = this.absent.get(parent)
    if (names === undefined) {
      names = new Map()
      this.absent.set(parent, names)
    }
    names.delete(name)
    names.set(name, this.now() + ms)
    if (names.size > MAX_ABSENT_PER_DIR) {
      const oldest = names.keys().next()
      if (oldest.done !== true) names.delete(oldest.value)
    }
  }

  /** Whether the kernel may hold names in parent as absent (whose open then revalidates it). */
  hasAbsent(parent: bigint): boolean {
    const names = this.absent.peek(parent)
    if (names === undefined) return false
    const now = this.now()
    for (const until of names.values()) if (now < until) return true
    this.absent.delete(parent)
    return false
  }

  /** The names the kernel may still hold as absent in parent, forgotten here (the caller has the kernel drop them). */
  takeAbsent(parent: bigint): string[] {
    const names = this.absent.get(parent)
    if (names === undefined) return []
    this.absent.delete(parent)
    const now = this.now()
    return [...names].filter(([, until]) => now < until).map(([name]) => name)
  }

  /**
   * The name changed through this mount (removed, renamed, or given as
   * absent): the kernel knows. Neither held nor absent any more: after a
   * rename the kernel moved the source's dentry onto it (positive, see
   * above), after an unlink its dentry is expired; a negative entry left
   * listed would cost the directory's next open a GETATTR (rm -rf after
   * rsync -a, whose generator looks up each name before the rename onto it).
   */
  drop(parent: bigint, name: string): void {
    this.held.delete(`${String(parent)}/${name}`)
    this.absent.peek(parent)?.delete(name)
  }

  /** Whether a LOOKUP of name in parent comes while the kernel holds a valid entry for it (a forced revalidation). */
  forced(parent: bigint, name: string): boolean {
    const e = this.held.get(`${String(parent)}/${name}`)
    return e !== undefined && this.now() < e.until
  }
}
