/*
 * ClusterVfs: the metadata half of the cluster backend (issue 17). Nodes,
 * entries and counters live in a PostgreSQL-protocol database shared by
 * every server that exports the tree; file contents go through FileData
 * (vfs/cluster/data/). Every operation is one transaction or one statement,
 * retried by the SqlDb on serialization failures and deadlocks, and its
 * reply is built from what it committed.
 *
 * Caching across servers: each server caches nodes and entries
 * (meta/cache.ts). Every changing statement announces the inodes it touched
 * with pg_notify, which PostgreSQL delivers to every listening server at
 * commit; a server drops what it cached of them when the notification
 * arrives. A notification can arrive after a request that should see it
 * (close on A, open on B within the notification's latency), so GETATTR,
 * LOOKUP, READ and READDIR first wait for a barrier on the LISTEN
 * connection (#current): a round trip there, begun after the request
 * arrived, which PostgreSQL answers only after the notifications committed
 * before it. If the change feed drops, everything cached is dropped, and
 * nothing is served from the cache until it is back.
 *
 * On an engine without LISTEN/NOTIFY (CockroachDB; YugabyteDB unless told
 * otherwise) the cache mode is 'per-request' (meta/cache-mode.ts): nothing
 * is announced or cached, and every request reads the rows it answers from.
 *
 * This server's own changes are cached from their replies at once, tagged
 * with the row versions they reached, so its own notifications do not drop
 * them and another server's later change does (meta/cache.ts).
 *
 * Round trips (SqlDb.stats, test/vfs/cluster/round-trips.test.ts): GETATTR
 * of a cached node 0 (also right after this server changed it), LOOKUP 0
 * cached or 1, CREATE/MKDIR/SYMLINK/MKNOD/REMOVE/SETATTR 1 (one statement
 * with CTEs), LINK/RENAME/RMDIR 3 (one statement in a transaction); freed
 * files are released after the reply, in batches (meta/release-queue.ts).
 * In 'per-request' mode (no notifications): GETATTR 1, LOOKUP 1, READDIR 1,
 * and the changes take the step-by-step statements
 * (test/vfs/cluster/per-request.test.ts).
 */
import { VfsError } from '../errors.ts'
import type {
  Attr, CreateMode, Created, DirChange, DirPage, FileRef, FsStat, Owner, PathConf, ReadResult, SetAttr,
  Stability, Vfs, VfsCache, VfsCapabilities,
} from '../types.ts'
import { metaCaches } from './caches.ts'
import { CacheFollower } from './cache-follower.ts'
import type { FileData } from './data/types.ts'
import { IdBatch } from './ids.ts'
import { MetaCache, type MetaCacheLimits } from './meta/cache.ts'
import { cacheModeOf, type CacheMode } from './meta/cache-mode.ts'
import { CounterDelta } from './meta/counter-delta.ts'
import type { Changed } from './meta/change-result.ts'
import { insertNode, insertNodeSteps } from './meta/create.ts'
import type { NewNode } from './meta/create.ts'
import { fsStat } from './meta/fsstat.ts'
import { linkEntry } from './meta/link.ts'
import { fetchEntry } from './meta/lookup.ts'
import { checkName, checkNewName, checkOldName, isDot, isDotDot, LINK_MAX, NAME_MAX, PATH_MAX } from './meta/names.ts'
import { checkDir, checkRef, checkSetAttr, MAX_FILE_SIZE, NODE_COLUMNS, nodeOf, now, refOf } from './meta/node.ts'
import type { Node } from './meta/node.ts'
import { readdirPage } from './meta/readdir.ts'
import { ReleaseQueue } from './meta/release-queue.ts'
import { removeEntry, removeFast } from './meta/remove.ts'
import { renameEntry } from './meta/rename.ts'
import type { Session } from './meta/session.ts'
import { setAttributes, setAttributesFast } from './meta/setattr.ts'
import { COUNTER, ROOT_INODE, TYPE_CODE } from './schema.ts'
import { multiModify, type SqlDb, type SqlDialect } from './sql.ts'

/** Larger reads are short (legal, RFC 1813 §3.3.6), so one request cannot make us allocate gigabytes. */
const MAX_READ = 16 * 1024 * 1024
/** Attempts at the one-statement create before a lost race is reported as EIO. */
const CREATE_ATTEMPTS = 8

export interface ClusterVfsOptions {
  db: SqlDb
  data: FileData
  /** This server's session id (tags its notifications); the session itself if this VFS owns it. */
  sid: bigint
  session?: Session
  log?: (msg: string) => void
  /**
   * The database engine (sql.ts SqlDialect; openClusterVfs asks `SELECT version()`): on all but
   * PostgreSQL, CREATE, REMOVE, RMDIR, LINK and RENAME run as single-table statements in one
   * transaction instead of one statement with data-modifying CTEs. Default 'postgresql'.
   */
  dialect?: SqlDialect
  /**
   * How cached metadata is kept current (meta/cache-mode.ts): 'notify' (LISTEN/NOTIFY) or
   * 'per-request' (no notifications: read the rows per request). Default: by the dialect.
   * The FileData must agree (its `notify` option) and listen() is only for 'notify'.
   */
  cacheMode?: CacheMode
  /** Called with the inodes another server changed, after they were dropped here (tests measure latency). */
  onRemoteChange?: (inodes: bigint[] | 'all') => void
  /** The nodes' and names' byte bounds (the export's metacache=, caches.ts; default 200,000 nodes and 32 MiB). */
  metaLimits?: MetaCacheLimits
}

export class ClusterVfs implements Vfs {
  readonly sid: bigint
  readonly #db: SqlDb
  readonly #data: FileData
  readonly #opts: ClusterVfsOptions
  readonly #cache: MetaCache
  readonly #mode: CacheMode
  /** This server's session id in its change notifications; null when it sends none ('per-request'). */
  readonly #announcer: bigint | null
  readonly #inodes: IdBatch
  readonly #releases: ReleaseQueue
  /** Changes running (#change): the release queue gathers a batch while more of a burst may free files. */
  #changing = 0
  /** Nodes made and directories removed here, applied to COUNTER.usedInodes about once a second. */
  readonly #inodeCount: CounterDelta
  /** One statement with data-modifying CTEs per operation (PostgreSQL), or single-table steps. */
  readonly #oneStatement: boolean
  readonly #follower: CacheFollower
  #closed = false

  constructor(opts: ClusterVfsOptions) {
    this.#opts = opts
    this.#db = opts.db
    this.#data = opts.data
    this.sid = opts.sid
    this.#mode = opts.cacheMode ?? cacheModeOf(opts.dialect ?? 'postgresql')
    this.#cache = new MetaCache(this.#mode, opts.metaLimits)
    this.#announcer = this.#mode === 'notify' ? opts.sid : null
    this.#inodes = new IdBatch(opts.db, COUNTER.nextInode, 1000)
    this.#releases = new ReleaseQueue(opts.db, opts.data, opts.log, () => this.#changing > 0)
    this.#inodeCount = new CounterDelta(opts.db, COUNTER.usedInodes, opts.log)
    this.#follower = new CacheFollower({ cache: this.#cache, data: opts.data, sid: opts.sid, log: opts.log, onRemoteChange: opts.onRemoteChange })
    // The one-statement forms carry their notification in SQL: without a feed the steps are used.
    this.#oneStatement = multiModify(opts.dialect ?? 'postgresql') && this.#mode === 'notify'
  }

  /** The engine this server speaks to, as given or detected (status, tests). */
  get dialect(): SqlDialect {
    return this.#opts.dialect ?? 'postgresql'
  }

  /** How this server keeps cached metadata current (status, tests). */
  get cacheMode(): CacheMode {
    return this.#mode
  }

  /**
   * Apply this server's pending counter deltas now (used inodes, used bytes) instead of at the
   * next tick (meta/counter-delta.ts): after it resolves, FSSTAT on any server counts every
   * change this server replied to and every release it finished.
   */
  async flushCounters(): Promise<void> {
    await this.#releases.idle()
    await Promise.all([this.#inodeCount.flush(), this.#data.flushUsage?.()])
  }

  /** Resolves when the files freed so far have been released (tests; close waits for it too). */
  releasesDone(): Promise<void> {
    return this.#releases.idle()
  }

  /** Start following other servers' changes; until then nothing is cached. */
  async listen(channel: string): Promise<void> {
    if (this.#mode !== 'notify') throw new Error(`cluster: no change feed in cache mode ${this.#mode}`)
    await this.#follower.listen(this.#db, channel)
  }

  /**
   * This server changed the inodes outside a metadata operation (the data half attached or
   * compacted). An inode with the version its row reached: copies older than that are dropped,
   * and reads in flight since before the change are not stored (meta/cache.ts); one without: dropped.
   */
  changedHere(inodes: readonly bigint[], vers: ReadonlyMap<bigint, bigint> = new Map()): void {
    this.#cache.notified(inodes, vers)
  }

  /** The metadata and data caches, for the server's metrics and idle trim (caches.ts). */
  caches(): readonly VfsCache[] {
    return [...metaCaches(this.#cache), ...(this.#data.caches?.() ?? [])]
  }

  /** Cache counters, for tests and status. */
  cacheStats(): ReturnType<MetaCache['stats']> {
    return this.#cache.stats()
  }

  root(): FileRef {
    return { id: ROOT_INODE, gen: 1 }
  }

  capabilities(): VfsCapabilities {
    return {
      maxFileSize: MAX_FILE_SIZE,
      timeDelta: { sec: 0, nsec: 1 },
      hardLinks: true,
      symlinks: true,
      deviceNodes: true,
      canSetTime: true,
    }
  }

  async getattr(f: FileRef): Promise<Attr> {
    await this.#current(f.id)
    return this.#view((await this.#node(f)).attr)
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    checkName(name)
    await this.#current(dir.id)
    const cachedDir = this.#cache.node(dir.id)
    if (cachedDir !== undefined) {
      const d = checkDir(checkRef(cachedDir, dir))
      if (isDot(name)) return this.#found(d)
      if (isDotDot(name)) return this.#found(await this.#node({ id: d.parent, gen: 1 }, true))
      const id = this.#cache.entry(dir.id, name)
      const child = id === undefined ? undefined : this.#cache.node(id)
      if (child !== undefined) return this.#found(child)
    }
    const token = this.#cache.begin()
    const e = await fetchEntry(this.#db, dir, name)
    this.#cache.put(token, e.dir)
    if (isDot(name)) return this.#found(e.dir)
    if (isDotDot(name)) return this.#found(await this.#node({ id: e.dir.parent, gen: 1 }, true))
    if (e.child === undefined) throw new VfsError('ENOENT')
    this.#cache.put(token, e.child)
    this.#cache.putEntry(token, dir.id, e.dir.ver, name, e.child.attr.fileid)
    return this.#found(e.child)
  }

  async setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    if (set.size === undefined) {
      // Without a size no check depends on the type, and the statement itself finds a stale
      // handle (no row: ESTALE): no read of the node first (a round trip in 'per-request' mode).
      checkSetAttr('file', set)
      const r = await this.#change(setAttributesFast(this.#db, this.#announcer, f, set))
      return { before: this.#view(r.before), after: this.#view(r.after) }
    }
    const node = await this.#node(f)
    checkSetAttr(node.attr.type, set)
    // Staged bytes first: the truncation must cut what this server has accepted, and the
    // size the transaction starts from must include them.
    await this.#data.flush(f.id)
    const r = await this.#change(setAttributes(this.#db, this.#announcer, this.#data, f, set))
    return { before: r.before, after: this.#view(r.after) }
  }

  async readlink(f: FileRef): Promise<Buffer> {
    // One query, cache or not: the target is not kept in the node cache.
    const r = await this.#db.query('SELECT type, nlink, target FROM tsnfs_node WHERE inode = $1 AND gen = $2', [f.id, f.gen])
    const row = r.rows[0]
    if (row === undefined || Number(row['nlink']) <= 0) throw new VfsError('ESTALE')
    const target = row['target']
    if (Number(row['type']) !== TYPE_CODE.symlink || !Buffer.isBuffer(target)) throw new VfsError('EINVAL', 'not a symlink')
    return target
  }

  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    await this.#current()
    const node = await this.#node(f)
    if (node.attr.type !== 'file') throw new VfsError('EINVAL', 'read of a non-regular file')
    if (offset < 0n || count < 0) throw new VfsError('EINVAL')
    const attr = this.#view(node.attr)
    if (count === 0) return { data: Buffer.alloc(0), eof: false, attr }
    const data = offset >= attr.size ? Buffer.alloc(0) : await this.#data.read(f.id, offset, Math.min(count, MAX_READ), attr.size)
    // RFC 1813 §3.3.6: eof when the data returned reaches the end of the file.
    return { data, eof: offset + BigInt(data.length) >= attr.size, attr }
  }

  async write(
    f: FileRef, offset: bigint, data: Buffer, stable: Stability,
  ): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    const node = await this.#node(f)
    if (node.attr.type !== 'file') throw new VfsError('EINVAL', 'write to a non-regular file')
    if (offset < 0n) throw new VfsError('EINVAL')
    const before = this.#view(node.attr)
    // A write of 0 bytes changes nothing, not even mtime (RFC 1813 §3.3.7).
    if (data.length === 0) return { count: 0, committed: stable, before, after: before }
    if (offset + BigInt(data.length) > MAX_FILE_SIZE) throw new VfsError('EFBIG')
    await this.#data.write(f.id, offset, data, stable, now())
    if (stable === 'unstable') return { count: data.length, committed: stable, before, after: this.#view(node.attr) }
    // The data half committed size and times and announced them; our copy is old.
    this.#cache.drop([f.id])
    return { count: data.length, committed: stable, before, after: this.#view((await this.#node(f)).attr) }
  }

  /** Everything staged is flushed, whatever the range: the data half flushes per inode. */
  async commit(f: FileRef, offset = 0n, count = 0): Promise<{ before: Attr; after: Attr }> {
    if (offset < 0n || count < 0) throw new VfsError('EINVAL')
    const node = await this.#node(f)
    if (node.attr.type !== 'file') throw new VfsError('EINVAL', 'commit of a non-regular file')
    const before = this.#view(node.attr)
    if (this.#data.staged(f.id) === undefined) return { before, after: before }
    await this.#data.flush(f.id)
    this.#cache.drop([f.id])
    return { before, after: this.#view((await this.#node(f)).attr) }
  }

  async create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    checkNewName(name)
    const set = mode.how === 'exclusive' ? {} : mode.attr
    checkSetAttr('file', set)
    const verifier = mode.how === 'exclusive' ? Buffer.from(mode.verifier) : null
    return this.#make(dir, name, 'file', set, owner, { verifier }, async (existing) => {
      // RFC 1813 §3.3.8: UNCHECKED on a regular file applies the attributes (size 0 truncates).
      if (mode.how === 'unchecked' && existing.child.attr.type === 'file') {
        const s = await this.setattr(refOf(existing.child.attr), mode.attr)
        return { ref: refOf(s.after), attr: s.after, dir: { before: existing.dir.attr, after: existing.dir.attr } }
      }
      // A retransmitted EXCLUSIVE create finds its own verifier: success with the same file.
      if (mode.how === 'exclusive' && existing.child.attr.type === 'file' && existing.verifier?.equals(mode.verifier) === true) {
        const attr = this.#view(existing.child.attr)
        return { ref: refOf(attr), attr, dir: { before: existing.dir.attr, after: existing.dir.attr } }
      }
      return null
    })
  }

  async mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    checkNewName(name)
    checkSetAttr('dir', attr)
    return this.#make(dir, name, 'dir', attr, owner, {})
  }

  async symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    checkNewName(name)
    if (target.length > PATH_MAX) throw new VfsError('ENAMETOOLONG')
    checkSetAttr('symlink', attr)
    return this.#make(dir, name, 'symlink', attr, owner, { target: Buffer.from(target) })
  }

  async mknod(
    dir: FileRef, name: Buffer, type: 'block' | 'char' | 'socket' | 'fifo',
    rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner,
  ): Promise<Created> {
    checkNewName(name)
    checkSetAttr(type, attr)
    const dev = type === 'block' || type === 'char' ? rdev : { major: 0, minor: 0 }
    return this.#make(dir, name, type, attr, owner, { rdev: dev })
  }

  async remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    checkOldName(name)
    const token = this.#cache.begin()
    const fast = this.#oneStatement ? await removeFast(this.#db, this.sid, dir, name) : null
    if (fast !== null) return this.#settled(token, fast)
    return this.#change(removeEntry(this.#db, this.#announcer, dir, name, false, this.#oneStatement))
  }

  async rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    checkOldName(name)
    return this.#change(removeEntry(this.#db, this.#announcer, dir, name, true, this.#oneStatement))
  }

  async rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer): Promise<{ from: DirChange; to: DirChange }> {
    checkOldName(fromName)
    checkNewName(toName)
    return this.#change(renameEntry(this.#db, this.#announcer, fromDir, fromName, toDir, toName, this.#oneStatement))
  }

  async link(f: FileRef, dir: FileRef, name: Buffer): Promise<{ attr: Attr; dir: DirChange }> {
    checkNewName(name)
    const r = await this.#change(linkEntry(this.#db, this.#announcer, f, dir, name, this.#oneStatement))
    return { attr: this.#view(r.attr), dir: r.dir }
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    await this.#current(dir.id)
    // A cached directory: the page alone; otherwise its row comes with the page (one round trip).
    const cached = this.#cache.node(dir.id)
    const token = this.#cache.begin()
    const { dir: d, page } = await readdirPage(this.#db, cached === undefined ? dir : checkDir(checkRef(cached, dir)), cookie, max, (n, name, d) => {
      this.#cache.put(token, n)
      this.#cache.putEntry(token, dir.id, d.ver, name, n.attr.fileid)
    })
    if (cached === undefined) this.#cache.put(token, d)
    for (const e of page.entries) if (e.attr !== undefined) e.attr = this.#view(e.attr)
    return page
  }

  async fsstat(f: FileRef): Promise<FsStat> {
    await this.#node(f)
    return fsStat(this.#db)
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    await this.#node(f)
    return { linkMax: LINK_MAX, nameMax: NAME_MAX, noTrunc: true, chownRestricted: true, caseInsensitive: false, casePreserving: true }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    try {
      await this.#data.flushAll()
    } finally {
      await this.#releases.idle()
      await this.#inodeCount.close().catch((err: unknown) => this.#opts.log?.(`cluster: inode count not updated at close (${(err as Error).message})`))
      await this.#follower.stop()
      await this.#opts.session?.close()
      await this.#data.close()
    }
  }

  /**
   * Before an answer from the cache (cache-follower.ts). GETATTR (so ACCESS), LOOKUP, READ and
   * READDIR wait: the answers a client opens and reads with. WRITE, COMMIT, SETATTR, FSSTAT and
   * PATHCONF do not: they change or read the database for their result and take only the type
   * and the wcc "before" attributes from the cache, which a client that opened the file
   * (GETATTR) has already brought up to date. READ always waits (no inode): the data half's
   * slice lists are cached apart from the node.
   */
  #current(inode?: bigint): Promise<void> {
    return this.#follower.current(inode)
  }

  /** The node `f` names, from the cache unless `fresh`; ESTALE if it is gone or of another generation. */
  async #node(f: FileRef, fresh = false): Promise<Node> {
    if (!fresh) {
      const hit = this.#cache.node(f.id)
      if (hit !== undefined) return checkRef(hit, f)
    }
    const token = this.#cache.begin()
    const r = await this.#db.query(`SELECT ${NODE_COLUMNS} FROM tsnfs_node WHERE inode = $1`, [f.id])
    const row = r.rows[0]
    const node = row === undefined ? undefined : nodeOf(row)
    if (node !== undefined) this.#cache.put(token, node)
    return checkRef(node, f)
  }

  /** Attributes as this server sees them: size and mtime include what it has staged. */
  #view(a: Attr): Attr {
    const s = this.#data.staged(a.fileid)
    if (s === undefined) return a
    const ctime = s.mtime.sec > a.ctime.sec || (s.mtime.sec === a.ctime.sec && s.mtime.nsec > a.ctime.nsec) ? s.mtime : a.ctime
    // Staged writes only grow a file (a truncation flushes them first): the larger size is the file's.
    const size = s.size > a.size ? s.size : a.size
    return { ...a, size, mtime: s.mtime, ctime }
  }

  #found(n: Node): { ref: FileRef; attr: Attr } {
    return { ref: refOf(n.attr), attr: this.#view(n.attr) }
  }

  /** Run a changing transaction; afterwards fix the cache and release a freed file's chunks. */
  async #change<T>(p: Promise<Changed<T>>): Promise<T> {
    const token = this.#cache.begin()
    this.#changing++
    try {
      return this.#settled(token, await p)
    } finally {
      this.#changing--
    }
  }

  #settled<T>(token: number, r: Changed<T>): T {
    this.#cache.settle(token, r.touched, r.nodes, r.edits)
    if (r.dropped !== undefined && r.dropped !== 0) this.#inodeCount.add(-r.dropped)
    if (r.freed !== null) this.#release(r.freed)
    return r.value
  }

  /** After the reply's commit, not before it: the delfile row committed with the change keeps it safe. */
  #release(inode: bigint): void {
    this.#data.discard(inode)
    this.#releases.add(inode)
  }

  async #make(
    dir: FileRef, name: Buffer, type: NewNode['type'], set: SetAttr, owner: Owner,
    extra: { verifier?: Buffer | null; target?: Buffer; rdev?: { major: number; minor: number } },
    onExisting?: (e: { dir: Node; child: Node; verifier: Buffer | null }) => Promise<Created | null>,
  ): Promise<Created> {
    const defaults = { file: 0o644, dir: 0o755, symlink: 0o777 } as Record<string, number>
    for (let attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
      const t = now()
      const n: NewNode = {
        inode: await this.#inodes.take(),
        type,
        mode: (set.mode ?? defaults[type] ?? 0o644) & 0o7777,
        uid: set.uid ?? owner.uid,
        gid: set.gid ?? owner.gid,
        size: set.size ?? (extra.target !== undefined ? BigInt(extra.target.length) : 0n),
        rdev: extra.rdev ?? { major: 0, minor: 0 },
        atime: set.atime === undefined || set.atime === 'now' ? t : set.atime,
        mtime: set.mtime === undefined || set.mtime === 'now' ? t : set.mtime,
        now: t,
        target: extra.target ?? null,
        verifier: extra.verifier ?? null,
      }
      const token = this.#cache.begin()
      const done = this.#oneStatement
        ? await insertNode(this.#db, this.sid, dir, name, n)
        : await insertNodeSteps(this.#db, this.#announcer, dir, name, n)
      if (done !== null) {
        this.#inodeCount.add(1)
        this.#cache.settle(token, [dir.id, n.inode], [done.after, done.node], [{ parent: dir.id, name, inode: n.inode }])
        return { ref: refOf(done.node.attr), attr: done.node.attr, dir: { before: done.before.attr, after: done.after.attr } }
      }
      // The fast path did not apply: find out why, from the database itself.
      const e = await fetchEntry(this.#db, dir, name)
      if (e.child === undefined) continue // the name was freed again meanwhile: try once more
      const existing = await onExisting?.({ dir: e.dir, child: e.child, verifier: e.verifier })
      if (existing !== null && existing !== undefined) return existing
      throw new VfsError('EEXIST')
    }
    throw new VfsError('EIO', `create of ${name.toString()} lost ${CREATE_ATTEMPTS} races in a row`)
  }
}
