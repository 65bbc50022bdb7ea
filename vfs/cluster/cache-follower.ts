/*
 * How one server keeps its cached metadata current in 'notify' mode: it
 * LISTENs to the changes every server announces (pg_notify at commit) and
 * drops what it cached of the inodes another server changed; before an
 * answer from the cache it waits for a barrier on the LISTEN connection
 * (current()), so every change another server acknowledged before the
 * request arrived has been heard (close-to-open across servers). When the
 * feed drops or a barrier fails, everything cached is dropped.
 */
import { parseChange } from './change.ts'
import type { FileData } from './data/types.ts'
import type { MetaCache } from './meta/cache.ts'
import type { Feed, SqlDb } from './sql.ts'

export interface CacheFollowerOptions {
  cache: MetaCache
  data: FileData
  /** This server's session id: its own notifications come back as echoes. */
  sid: bigint
  log?: ((msg: string) => void) | undefined
  /** Called with the inodes another server changed, after they were dropped here. */
  onRemoteChange?: ((inodes: bigint[] | 'all') => void) | undefined
}

export class CacheFollower {
  readonly #o: CacheFollowerOptions
  #feed: Feed | undefined

  constructor(o: CacheFollowerOptions) {
    this.#o = o
  }

  /** Start following other servers' changes on channel; until then nothing cached is waited for. */
  async listen(db: SqlDb, channel: string): Promise<void> {
    this.#feed = await db.listen(channel, (p) => { this.#onChange(p) }, (err) => {
      this.#o.log?.(`cluster: change feed interrupted (${err.message}); dropping every cached node`)
      this.#dropAll()
    })
  }

  /**
   * Before an answer from the cache: every change another server acknowledged before this
   * request arrived has been heard. A barrier on the LISTEN connection (Feed.barrier: one round
   * trip there, shared by the requests that arrive together); if it fails the feed is down and
   * nothing cached is trusted. `inode`: the request starts from this node, and if it is not
   * cached the request reads the database, current by itself, and waits for nothing.
   */
  async current(inode?: bigint): Promise<void> {
    if (this.#feed === undefined || (inode !== undefined && !this.#o.cache.has(inode))) return
    if (await this.#feed.barrier()) return
    this.#dropAll()
  }

  async stop(): Promise<void> {
    await this.#feed?.stop()
  }

  #dropAll(): void {
    this.#o.cache.dropAll()
    this.#o.data.invalidateAll()
  }

  #onChange(payload: string): void {
    const c = parseChange(payload)
    if (c === null) return
    if (c.sid === this.#o.sid) {
      // Our own echo: the reply already updated the cache. Versioned inodes are still applied by
      // version, which keeps what the reply cached and drops it only if the reply never arrived
      // (a connection lost after the commit) and our copy is older.
      if (c.inodes !== 'all') this.#o.cache.notified(c.inodes.filter((i) => c.vers.has(i)), c.vers)
      return
    }
    if (c.inodes === 'all') {
      this.#dropAll()
    } else {
      this.#o.cache.notified(c.inodes, c.vers)
      // The data half's slice lists are not versioned: any change of the inode may have moved them.
      for (const i of c.inodes) this.#o.data.invalidate(i)
    }
    this.#o.onRemoteChange?.(c.inodes)
  }
}
