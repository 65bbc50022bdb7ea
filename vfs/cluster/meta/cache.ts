/*
 * What this server caches of the metadata: nodes (attributes) by inode and
 * directory entries by (parent, name). Entries are trusted until a change
 * notification names the inode (vfs/cluster/change.ts: every changing
 * transaction announces the inodes it touched, delivered at its commit), or
 * the change feed is interrupted, which drops everything.
 *
 * A read that raced a notification must not put back what the notification
 * dropped: callers take a token (the epoch) before they ask the database and
 * store the answer only if no drop happened meanwhile. That is conservative
 * (any drop spoils every read in flight) and cheap.
 */
import type { Node } from './node.ts'

/** Past this many nodes the oldest entries go (Map keeps insertion order). */
const MAX_NODES = 200_000
const MAX_DIRS = 50_000

export class MetaCache {
  readonly #nodes = new Map<bigint, Node>()
  /** parent -> name (latin1, one char per byte) -> inode. */
  readonly #entries = new Map<bigint, Map<string, bigint>>()
  #epoch = 0
  readonly #stats = { hits: 0, misses: 0, drops: 0 }

  /** A token for put(): the answer is kept only if nothing was dropped since. */
  begin(): number {
    return this.#epoch
  }

  node(inode: bigint): Node | undefined {
    const n = this.#nodes.get(inode)
    if (n === undefined) this.#stats.misses++
    else this.#stats.hits++
    return n
  }

  put(token: number, node: Node): void {
    if (token !== this.#epoch) return
    const id = node.attr.fileid
    this.#nodes.delete(id)
    this.#nodes.set(id, node)
    if (this.#nodes.size > MAX_NODES) {
      const oldest = this.#nodes.keys().next().value
      if (oldest !== undefined) this.#nodes.delete(oldest)
    }
  }

  entry(parent: bigint, name: Buffer): bigint | undefined {
    return this.#entries.get(parent)?.get(name.toString('latin1'))
  }

  putEntry(token: number, parent: bigint, name: Buffer, inode: bigint): void {
    if (token !== this.#epoch) return
    let dir = this.#entries.get(parent)
    if (dir === undefined) {
      dir = new Map()
      this.#entries.set(parent, dir)
      if (this.#entries.size > MAX_DIRS) {
        const oldest = this.#entries.keys().next().value
        if (oldest !== undefined) this.#entries.delete(oldest)
      }
    }
    if (dir.size < 10_000) dir.set(name.toString('latin1'), inode)
  }

  /** The inodes changed (here or on another server): forget their nodes and, for directories, their entries. */
  drop(inodes: Iterable<bigint>): void {
    this.#epoch++
    for (const i of inodes) {
      this.#stats.drops++
      this.#nodes.delete(i)
      this.#entries.delete(i)
    }
  }

  dropAll(): void {
    this.#epoch++
    this.#stats.drops += this.#nodes.size
    this.#nodes.clear()
    this.#entries.clear()
  }

  /**
   * After a change this server committed: drop the touched inodes, then keep the
   * nodes the change returned if nothing else was dropped while it ran
   * (`token` from before it started).
   */
  settle(token: number, touched: Iterable<bigint>, nodes: readonly Node[]): void {
    const clean = token === this.#epoch
    this.drop(touched)
    if (!clean) return
    const t = this.#epoch
    for (const n of nodes) this.put(t, n)
  }

  stats(): { hits: number; misses: number; drops: number; nodes: number } {
    return { ...this.#stats, nodes: this.#nodes.size }
  }
}
