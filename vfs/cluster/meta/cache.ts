/*
 * What this server caches of the metadata: nodes (attributes) by inode and
 * directory entries by (parent, name). Entries are trusted until a change
 * notification names the inode (vfs/cluster/change.ts: every changing
 * statement announces the inodes it touched, delivered at its commit), or
 * the change feed is interrupted, which drops everything.
 *
 * Versions. Every change of a node's attributes bumps the row's `ver` and
 * names it in its notification ("<inode>@<ver>"): the metadata statements
 * and the data half's attach and compaction alike (size, mtime, used). A
 * server's own change caches the nodes the statement returned at once
 * (GETATTR right after CREATE costs nothing), and a notification is applied
 * by version: a copy at that version or later is kept (the server's own
 * echo, or a change it already read), an older one is dropped. A
 * notification without a version (a row deleted, a list too long to name)
 * drops always.
 *
 * Races. A read or a change reply may arrive after a notification of a newer
 * change (another server committed after our read's snapshot, and its NOTIFY
 * came in on the LISTEN connection before our reply on the query
 * connection). So every drop is logged with its version, callers take a
 * token (the log position) before they ask the database, and an answer is
 * stored only if nothing logged since names the same inode at a newer
 * version (or without one). A copy never replaces a newer one, whatever the
 * order replies arrive in.
 *
 * A directory's entries (only names looked up: absence means nothing) carry
 * the version of the directory row they were read at. This server's own
 * change of a directory edits them in place when the change took the row
 * from exactly that version (so nothing else changed them in between);
 * otherwise they start again from the names the change made. A notification
 * exactly one version on holds the names back instead of dropping them: it
 * may be this server's own change whose reply has not arrived yet, and
 * settle() serves them again with its edits; if no such reply comes, a read
 * at a newer version replaces them.
 *
 * In cache mode 'per-request' (meta/cache-mode.ts: no notifications on the
 * engine) nothing would ever tell this cache of another server's change, so
 * it keeps nothing: every lookup misses and the caller reads the database.
 *
 * Memory (the server's metrics, server/memory.ts). Nodes and names are
 * objects: their bytes are estimates, a fixed cost per node (~490 bytes of
 * heap measured on Node 20) and per name (~72 bytes and the name), and each
 * is bounded in bytes (by default 200,000 nodes and 32 MiB of names, the
 * latter also bounding what 50,000 directories of up to 10,000 names could
 * otherwise reach; the export's metacache= sets both, cluster/caches.ts
 * says how it is split). When the server
 * is idle both are emptied (trimNodes, trimNames): what is dropped is read
 * from the database again, and a read stores its answer only if nothing
 * logged since it began names a newer version (#spoiled), with or without a
 * copy here, so an emptied cache cannot take in a stale row. Nothing is
 * logged by a trim: absence claims nothing. A cached node saves little once
 * idle anyway: GETATTR and LOOKUP of a cached node wait for a barrier on the
 * LISTEN connection (cache-follower.ts), one round trip, as a read of an
 * uncached one costs one.
 */
import type { VfsCacheCounts } from '../../types.ts'
import type { CacheMode } from './cache-mode.ts'
import type { Node } from './node.ts'

/** Past this many nodes the oldest entries go (Map keeps insertion order), unless metacache= sets the bound. */
const MAX_NODES = 200_000
const MAX_DIRS = 50_000
const MAX_NAMES = 10_000
/** What one cached node is counted as (its Attr, bigints and Map slot: ~490 bytes measured). */
export const NODE_BYTES = 512
/** A cached name: Map slot, latin1 key header and inode bigint (~72 bytes measured), plus the name's length. */
const NAME_BYTES = 72
/** A directory's Names and its Map. */
const DIR_BYTES = 200
/** The most the nodes' estimate reaches by default. */
export const NODES_LIMIT = MAX_NODES * NODE_BYTES
/** Default bound on the estimated bytes of cached names (the oldest directories go first). */
export const NAMES_LIMIT = 32 * 1024 * 1024

/** The byte bounds of the two caches (the export's metacache=, split by cluster/caches.ts). */
export interface MetaCacheLimits {
  nodes: number
  names: number
}
/** Drops remembered for reads in flight; a read older than the log is not stored (conservative). */
const MAX_LOG = 8192

/** One change of a directory's entries made by this server: `inode` null for a name that went. */
export interface EntryEdit {
  parent: bigint
  name: Buffer
  inode: bigint | null
}

interface Dropped {
  /** null: everything. */
  inode: bigint | null
  /** null: whatever version (unversioned notification, or a node deleted). */
  ver: bigint | null
}

interface Names {
  /** The directory's row version these names were read at. */
  ver: bigint
  /** Estimated bytes of this directory's names (DIR_BYTES and NAME_BYTES + length each). */
  bytes: number
  /** name (latin1, one char per byte) -> inode. */
  names: Map<string, bigint>
  /**
   * A notification named version ver + 1 before this server's own reply for it arrived (the
   * NOTIFY on the LISTEN connection often overtakes the reply on the query connection): the
   * names are not served until settle() applies that change's edits, which only this server's
   * own change can bring; otherwise a read at a newer version replaces them.
   */
  behind?: bigint
}

export class MetaCache {
  readonly #nodes = new Map<bigint, Node>()
  readonly #entries = new Map<bigint, Names>()
  #log: Dropped[] = []
  /** Position of #log[0] in the sequence of every drop ever logged. */
  #logBase = 0
  readonly #stats = { hits: 0, misses: 0, drops: 0 }
  /** Nodes dropped past the bound (not those an idle trim let go). */
  #nodeEvictions = 0
  readonly #names: VfsCacheCounts = { hits: 0, misses: 0, evictions: 0 }
  /** Sum of every directory's Names.bytes. */
  #nameBytes = 0
  /** False in 'per-request' mode: nothing is kept, so nothing is answered without the database. */
  readonly #keep: boolean
  readonly #maxNodes: number
  readonly #namesLimit: number

  constructor(mode: CacheMode = 'notify', limits: MetaCacheLimits = { nodes: NODES_LIMIT, names: NAMES_LIMIT }) {
    this.#keep = mode === 'notify'
    // At least one node and one directory's worth: a bound below that would keep nothing and still count.
    this.#maxNodes = Math.max(1, Math.floor(limits.nodes / NODE_BYTES))
    this.#namesLimit = Math.max(DIR_BYTES + NAME_BYTES, limits.names)
  }

  /** The most the nodes' estimate reaches. */
  get nodesLimit(): number {
    return this.#maxNodes * NODE_BYTES
  }

  /** The bound on the names' estimate. */
  get namesLimit(): number {
    return this.#namesLimit
  }

  /** A token for put(): the answer is kept only if no newer change was logged since. */
  begin(): number {
    return this.#logBase + this.#log.length
  }

  /** Whether the node is cached (not counted as a hit or a miss). */
  has(inode: bigint): boolean {
    return this.#nodes.has(inode)
  }

  node(inode: bigint): Node | undefined {
    const n = this.#nodes.get(inode)
    if (n === undefined) this.#stats.misses++
    else this.#stats.hits++
    return n
  }

  put(token: number, node: Node): void {
    if (!this.#keep) return
    const id = node.attr.fileid
    if (this.#spoiled(token, id, node.ver)) return
    const old = this.#nodes.get(id)
    if (old !== undefined && old.ver > node.ver) return
    this.#nodes.delete(id)
    this.#nodes.set(id, node)
    if (this.#nodes.size > this.#maxNodes) {
      const oldest = this.#nodes.keys().next().value
      if (oldest !== undefined) this.#nodes.delete(oldest)
      this.#nodeEvictions++
    }
  }

  entry(parent: bigint, name: Buffer): bigint | undefined {
    const dir = this.#entries.get(parent)
    const id = dir === undefined || dir.behind !== undefined ? undefined : dir.names.get(name.toString('latin1'))
    if (id === undefined) this.#names.misses++
    else this.#names.hits++
    return id
  }

  /** Entry `name` of `parent` as read with the parent's row at version `parentVer`. */
  putEntry(token: number, parent: bigint, parentVer: bigint, name: Buffer, inode: bigint): void {
    if (!this.#keep) return
    if (this.#spoiled(token, parent, parentVer)) return
    let dir = this.#entries.get(parent)
    if (dir !== undefined && dir.ver > parentVer) return
    if (dir === undefined || dir.ver < parentVer) {
      dir = { ver: parentVer, bytes: DIR_BYTES, names: new Map() }
      this.#removeDir(parent)
      this.#entries.set(parent, dir)
      this.#nameBytes += DIR_BYTES
      if (this.#entries.size > MAX_DIRS) this.#evictDir()
    }
    this.#setName(dir, name.toString('latin1'), inode)
    // The oldest directories go first; one that alone is past the bound goes too.
    while (this.#nameBytes > this.#namesLimit && this.#entries.size > 0) this.#evictDir()
  }

  /** The inodes changed in a way no version tells here (the data half flushed for a WRITE or COMMIT): forget them. */
  drop(inodes: Iterable<bigint>): void {
    for (const i of inodes) this.#drop(i, null)
  }

  /**
   * A notification: each inode changed, at the version given or at an unknown one.
   * Copies at that version or later stay.
   */
  notified(inodes: readonly bigint[], vers: ReadonlyMap<bigint, bigint>): void {
    for (const i of inodes) this.#drop(i, vers.get(i) ?? null)
  }

  dropAll(): void {
    this.#record({ inode: null, ver: null })
    this.#stats.drops += this.#nodes.size
    this.#nodes.clear()
    this.#entries.clear()
    this.#nameBytes = 0
  }

  /** Estimated bytes of the cached nodes. */
  nodeBytes(): number {
    return this.#nodes.size * NODE_BYTES
  }

  /** Estimated bytes of the cached names. */
  nameBytes(): number {
    return this.#nameBytes
  }

  nodeCounts(): VfsCacheCounts {
    return { hits: this.#stats.hits, misses: this.#stats.misses, evictions: this.#nodeEvictions }
  }

  nameCounts(): Readonly<VfsCacheCounts> {
    return this.#names
  }

  /** Idle: let every node go (see the top of the file for why that is safe); returns the bytes let go. */
  trimNodes(): number {
    const bytes = this.nodeBytes()
    this.#nodes.clear()
    return bytes
  }

  /** Idle: let every directory's names go, those held back for settle() too; returns the bytes let go. */
  trimNames(): number {
    const bytes = this.#nameBytes
    this.#entries.clear()
    this.#nameBytes = 0
    return bytes
  }

  /**
   * After a change this server committed (`token` from before it started):
   * the nodes it returned are cached unless a newer change was seen since;
   * `touched` inodes it did not return (deleted) are dropped; the directory
   * entries it made or removed (`edits`) are applied where the cached names
   * were exactly one version behind.
   */
  settle(token: number, touched: Iterable<bigint>, nodes: readonly Node[], edits: readonly EntryEdit[] = []): void {
    if (!this.#keep) return
    const returned = new Map(nodes.map((n) => [n.attr.fileid, n]))
    for (const i of touched) if (!returned.has(i)) this.#drop(i, null)
    for (const n of nodes) {
      const id = n.attr.fileid
      // Reads in flight that saw the row before this change must not store it.
      this.#record({ inode: id, ver: n.ver })
      const mine = edits.filter((e) => e.parent === id)
      const dir = this.#entries.get(id)
      if (dir !== undefined && dir.ver === n.ver - 1n) {
        // Nothing changed the names between what we hold and this change: apply it (and if its
        // own notification came first and held the names back, serve them again).
        dir.ver = n.ver
        if (dir.behind === n.ver) delete dir.behind
        for (const e of mine) {
          if (e.inode === null) this.#deleteName(dir, e.name.toString('latin1'))
          else this.#setName(dir, e.name.toString('latin1'), e.inode)
        }
      } else if (dir === undefined || dir.ver < n.ver) {
        // Names held are partial anyway (only those looked up): start again from this change's.
        this.#removeDir(id)
        for (const e of mine) if (e.inode !== null) this.putEntry(token, id, n.ver, e.name, e.inode)
      }
      this.put(token, n)
    }
  }

  stats(): { hits: number; misses: number; drops: number; nodes: number } {
    return { ...this.#stats, nodes: this.#nodes.size }
  }

  #drop(inode: bigint, ver: bigint | null): void {
    this.#record({ inode, ver })
    const n = this.#nodes.get(inode)
    if (n !== undefined && (ver === null || n.ver < ver)) {
      this.#stats.drops++
      this.#nodes.delete(inode)
    }
    const dir = this.#entries.get(inode)
    if (dir === undefined || (ver !== null && dir.ver >= ver)) return
    // One version behind: possibly our own change whose reply is still on its way, which settle()
    // applies to these names; held back until then rather than thrown away.
    if (ver !== null && dir.ver === ver - 1n) dir.behind = ver
    else this.#removeDir(inode)
  }

  /** A full directory takes no new name, but a name it holds still changes (a rename over it). */
  #setName(dir: Names, key: string, inode: bigint): void {
    const had = dir.names.size
    if (had >= MAX_NAMES) {
      if (dir.names.has(key)) dir.names.set(key, inode)
      return
    }
    dir.names.set(key, inode)
    if (dir.names.size === had) return
    dir.bytes += NAME_BYTES + key.length
    this.#nameBytes += NAME_BYTES + key.length
  }

  #deleteName(dir: Names, key: string): void {
    if (!dir.names.delete(key)) return
    dir.bytes -= NAME_BYTES + key.length
    this.#nameBytes -= NAME_BYTES + key.length
  }

  #removeDir(inode: bigint): void {
    const dir = this.#entries.get(inode)
    if (dir === undefined) return
    this.#entries.delete(inode)
    this.#nameBytes -= dir.bytes
  }

  #evictDir(): void {
    const oldest = this.#entries.keys().next()
    if (oldest.done === true) return
    this.#removeDir(oldest.value)
    this.#names.evictions++
  }

  #record(d: Dropped): void {
    this.#log.push(d)
    if (this.#log.length > MAX_LOG) {
      const cut = MAX_LOG / 2
      this.#log = this.#log.slice(cut)
      this.#logBase += cut
    }
  }

  /** Was a change of `inode` newer than `ver` (or of unknown version) logged since `token`? */
  #spoiled(token: number, inode: bigint, ver: bigint): boolean {
    if (token < this.#logBase) return true
    for (let i = token - this.#logBase; i < this.#log.length; i++) {
      const d = this.#log[i]
      if (d === undefined) continue
      if ((d.inode === null || d.inode === inode) && (d.ver === null || d.ver > ver)) return true
    }
    return false
  }
}
