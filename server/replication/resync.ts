/*
 * The primary's side of a full resync (server/replication/README.md "Full
 * resync"), for one export over one standby connection; the sender runs it
 * when the log cannot bring the standby in step (a new standby, one the log
 * was trimmed past, one that diverged).
 *
 * P0 is the log's last change when it starts; the sender keeps the log from
 * P0 (no trim past it). The tree is walked breadth first through the
 * replicating layer (every object named by its vid; objects the layer never
 * saw get one), two directories in flight: each directory's listing goes
 * as RESYNC_DIR parts, in cookie order, and a subdirectory is sent only once
 * its parent's part has made it on the standby. Files the standby answers
 * REPL_RS_DATA for are sent whole; REPL_RS_SUMS ones are compared per 1 MiB
 * range (SHA-256) and only the ranges that differ are sent. Files are asked
 * to be verified when `verify` is set, and always when their mtime is within
 * the last second (a write in the same second may leave size and mtime as
 * they were).
 *
 * The primary keeps serving: changes after P0 are shipped by APPEND after
 * RESYNC_END(P0) and converge on a tree that already has some of them
 * (vfs/replica/applier.ts). One thing a walk alone misses is an object moved
 * from a directory not yet walked into one already walked: so after the
 * walk, the changes logged since P0 are read and the target directory of
 * every RENAME and LINK is listed again (a moved directory walked whole),
 * for a few rounds, until a round finds none.
 */
import { REPL_MAXDATA, REPL_MAXENTRIES, REPL_MAXSUMS, REPL_SUMRANGE, TSNFS_REPL_PROG, repl_rs_begin_args, repl_rs_data_args, repl_rs_dir_args, repl_rs_dir_res, repl_rs_end_args, repl_rs_res, repl_rs_sums_args, repl_rs_sums_res, repl_stat as STAT, repl_statNames } from '../../xdr/generated/replication.ts'
import type { repl_rs_entry, repl_stat } from '../../xdr/generated/replication.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { isErrnoError } from '../../vfs/errors.ts'
import type { Attr, DirPage, FileRef, ReadResult } from '../../vfs/types.ts'
import type { StreamCaller } from '../callback/stream.ts'
import type { Logger } from '../logger.ts'
import { timeToRepl, failEncode } from './change-codec.ts'
import type { ChangeSource } from './log-types.ts'
import { rsAttrToWire, rsEntryToWire } from './resync-codec.ts'
import { rangeSums } from './resync-target.ts'
import { MAX_APPEND_BYTES } from './standby-program.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1
const proc = (p: { proc: number }): { prog: number; vers: number; proc: number } => ({ prog: TSNFS_REPL_PROG.prog, vers: V1.vers, proc: p.proc })
const PROC = {
  BEGIN: proc(V1.procs.REPL_RESYNC_BEGIN),
  DIR: proc(V1.procs.REPL_RESYNC_DIR),
  SUMS: proc(V1.procs.REPL_RESYNC_SUMS),
  DATA: proc(V1.procs.REPL_RESYNC_DATA),
  END: proc(V1.procs.REPL_RESYNC_END),
}

/** The replicating layer as the walk reads it (ReplicatingVfs). */
export interface ResyncTree {
  root(): FileRef
  getattr(f: FileRef): Promise<Attr>
  readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage>
  readlink(f: FileRef): Promise<Buffer>
  read(f: FileRef, offset: bigint, count: number): Promise<ReadResult>
  readRange(ref: FileRef, offset: bigint, length: number): Promise<Buffer | null>
}

export interface ResyncCounters {
  /** Directories listed to the standby (each once per pass). */
  dirs: number
  entries: number
  /** Files whose data (or some ranges of it) was sent. */
  files: number
  /** File bytes sent in RESYNC_DATA. */
  dataBytes: number
  /** Bytes of the RESYNC_DIR arguments (the listings). */
  listingBytes: number
  /** Files compared by checksums, and ranges found different. */
  verified: number
  rangesDiffering: number
  /** Rounds of re-listing after the walk (moves during it). */
  moveRounds: number
}

export function newCounters(): ResyncCounters {
  return { dirs: 0, entries: 0, files: 0, dataBytes: 0, listingBytes: 0, verified: 0, rangesDiffering: 0, moveRounds: 0 }
}

export interface ResyncOptions {
  conn: StreamCaller
  epoch: bigint
  exportId: number
  tree: ResyncTree
  source: ChangeSource
  /** Compare checksums of every file whose size and mtime agree (--resync-verify). */
  verify: boolean
  log: Logger
  signal: AbortSignal
  counters: ResyncCounters
  /**
   * Directories in flight (default 2). Each has one RESYNC_DIR or up to DATA_IN_FLIGHT
   * RESYNC_DATA calls out: 2 × 4 stays under the standby's queue (16 per export) and the RPC
   * server's calls per connection, leaving room for the heartbeats.
   */
  dirsInFlight?: number
  /** Called with P0 as the resync begins: the log must be kept from it. */
  onBegin?: (p0: bigint) => void
  /** Wall clock in ms (tests). */
  now?: () => number
}

/** The standby refused a resync call; `epoch` when it was REPL_STALE_EPOCH. */
export class ResyncRefused extends Error {
  readonly status: repl_stat
  readonly epoch: bigint | null
  constructor(status: repl_stat, epoch: bigint | null, what: string) {
    super(`${what}: ${repl_statNames[status] ?? String(status)}`)
    this.name = 'ResyncRefused'
    this.status = status
    this.epoch = epoch
  }
}

/** A directory part stays well under one record (standby-program.ts). */
const PART_BYTES = MAX_APPEND_BYTES / 2
const READDIR_MAX = 1024
const MAX_COOKIE = (1n << 64n) - 1n
const DATA_IN_FLIGHT = 4
const MOVE_ROUNDS = 4
const CHANGES_PER_READ = 4096
const DOT = Buffer.from('.')
const DOTDOT = Buffer.from('..')
/** A call may wait behind a large directory or file on the standby. */
const CALL_TIMEOUT_MS = 120_000

/** Runs one resync; resolves with P0 once RESYNC_END is answered. */
export async function runResync(o: ResyncOptions): Promise<bigint> {
  const p0 = o.source.lastSeq()
  // Pinned before the call: a trim during its round trip must not take the changes after P0.
  o.onBegin?.(p0)
  await call(o, PROC.BEGIN, repl_rs_begin_args, { epoch: o.epoch, export_id: o.exportId, p0 }, repl_rs_res, 'RESYNC_BEGIN')
  o.log.info({ exportId: o.exportId, p0: p0.toString() }, 'replication: full resync started')
  await walk(o, [o.tree.root()], new Set(), true)
  // Objects moved during the walk from a directory not yet walked into one already walked.
  let from = p0
  let walkedUntil = o.source.lastSeq()
  for (let round = 0; round < MOVE_ROUNDS && walkedUntil > from; round++) {
    const { dirs, moved } = await movesBetween(o.source, from, walkedUntil)
    if (dirs.length === 0 && moved.length === 0) break
    o.counters.moveRounds++
    await walk(o, dirs, new Set(), false)
    const movedDirs: FileRef[] = []
    for (const m of moved) {
      const a = await attrOrNull(o.tree, m)
      if (a?.type === 'dir') movedDirs.push(m)
    }
    await walk(o, movedDirs, new Set(), true)
    from = walkedUntil
    walkedUntil = o.source.lastSeq()
  }
  await call(o, PROC.END, repl_rs_end_args, { epoch: o.epoch, export_id: o.exportId, p0, walked_until: walkedUntil }, repl_rs_res, 'RESYNC_END')
  o.log.info({ exportId: o.exportId, p0: p0.toString(), ...o.counters }, 'replication: full resync done')
  return p0
}

/** Lists `start` (and, when `deep`, everything under it) to the standby, breadth first, a few directories at a time. */
async function walk(o: ResyncOptions, start: FileRef[], seen: Set<bigint>, deep: boolean): Promise<void> {
  const queue = [...start]
  const width = Math.max(1, o.dirsInFlight ?? 2)
  const running = new Set<Promise<void>>()
  // Set by the tasks: an object, so the loop sees it change.
  const fail: { err: Error | null } = { err: null }
  while ((queue.length > 0 || running.size > 0) && fail.err === null) {
    o.signal.throwIfAborted()
    const dir = queue.shift()
    if (dir === undefined || running.size >= width) {
      await Promise.race(running)
      if (dir !== undefined) queue.unshift(dir)
      continue
    }
    if (seen.has(dir.id)) continue
    seen.add(dir.id)
    const task: Promise<void> = syncDir(o, dir).then(
      (subdirs) => {
        if (deep) queue.push(...subdirs)
      },
      (err: unknown) => {
        fail.err ??= err instanceof Error ? err : new Error(String(err))
      },
    ).finally(() => running.delete(task))
    running.add(task)
  }
  await Promise.all(running)
  if (fail.err !== null) throw fail.err
}

interface Listed {
  entry: repl_rs_entry
  attr: Attr
  cookie: bigint
}

/** One directory: its listing in parts, then the data the standby asks for; returns its subdirectories. */
async function syncDir(o: ResyncOptions, dir: FileRef): Promise<FileRef[]> {
  const dirAttr = await attrOrNull(o.tree, dir)
  // Removed since its parent was listed: the log says so to the standby.
  if (dirAttr?.type !== 'dir') return []
  const subdirs: FileRef[] = []
  const nowSec = Math.floor((o.now?.() ?? Date.now()) / 1000)
  let part: Listed[] = []
  let partBytes = 0
  let from = 0n
  const send = async (to: bigint): Promise<void> => {
    const args = { epoch: o.epoch, export_id: o.exportId, dir, dir_attr: rsAttrToWire(dirAttr, null), cookie_from: from, cookie_to: to, entries: part.map((l) => l.entry) }
    o.counters.listingBytes += encodedSize(repl_rs_dir_args, args)
    o.counters.entries += part.length
    const res = await call(o, PROC.DIR, repl_rs_dir_args, args, repl_rs_dir_res, 'RESYNC_DIR')
    const sent = part
    part = []
    partBytes = 0
    from = to
    if (res.status !== STAT.REPL_OK) return
    const byId = new Map(sent.map((x) => [x.entry.ref.id, x]))
    for (const need of res.needs) {
      const l = byId.get(need.ref.id)
      if (l === undefined) continue
      if (need.want === 1) await sendFile(o, need.ref)
      else await verifyFile(o, need.ref, l.attr)
    }
  }
  let cookie = 0n
  for (;;) {
    let page: DirPage
    try {
      page = await o.tree.readdir(dir, cookie, READDIR_MAX)
    } catch (err) {
      if (isGone(err)) return subdirs
      throw err
    }
    for (const e of page.entries) {
      cookie = e.cookie
      if (e.name.equals(DOT) || e.name.equals(DOTDOT) || e.ref === undefined) continue
      const attr = await attrOrNull(o.tree, e.ref)
      if (attr === null) continue
      let target: Buffer | null = null
      if (attr.type === 'symlink') {
        try {
          target = await o.tree.readlink(e.ref)
        } catch (err) {
          if (isGone(err)) continue
          throw err
        }
      }
      const verify = attr.type === 'file' && (o.verify || attr.mtime.sec >= nowSec - 1)
      const entry = rsEntryToWire(Buffer.from(e.name), e.ref, attr, target, verify)
      const size = 160 + e.name.length + (target?.length ?? 0)
      // Parts are cut between cookies, never inside one (a hash collision keeps its names together).
      const last = part.at(-1)
      if (last !== undefined && (part.length >= REPL_MAXENTRIES || partBytes + size > PART_BYTES) && e.cookie !== last.cookie) await send(last.cookie)
      part.push({ entry, attr, cookie: e.cookie })
      partBytes += size
      if (attr.type === 'dir') subdirs.push(e.ref)
    }
    if (page.eof || page.entries.length === 0) break
  }
  await send(MAX_COOKIE)
  o.counters.dirs++
  return subdirs
}

/** The whole file, in REPL_MAXDATA parts, a few in flight; the last one carries the times the standby sets. */
async function sendFile(o: ResyncOptions, ref: FileRef): Promise<void> {
  const a = await attrOrNull(o.tree, ref)
  if (a === null) return
  const parts = Math.max(1, Math.ceil(Number(a.size) / REPL_MAXDATA))
  o.counters.files++
  await sendParts(o, ref, a, Array.from({ length: parts }, (_, i) => BigInt(i * REPL_MAXDATA)), REPL_MAXDATA)
}

/** Compares 1 MiB ranges by checksum and sends those that differ. */
async function verifyFile(o: ResyncOptions, ref: FileRef, listed: Attr): Promise<void> {
  o.counters.verified++
  const ranges = Math.ceil(Number(listed.size) / REPL_SUMRANGE)
  const differ: bigint[] = []
  for (let first = 0; first < ranges; first += REPL_MAXSUMS) {
    const count = Math.min(REPL_MAXSUMS, ranges - first)
    const res = await call(o, PROC.SUMS, repl_rs_sums_args, { epoch: o.epoch, export_id: o.exportId, ref, first_range: BigInt(first), count }, repl_rs_sums_res, 'RESYNC_SUMS')
    if (res.status !== STAT.REPL_OK) return
    const ours = await rangeSums(o.tree, ref, BigInt(first), count)
    ours.forEach((s, i) => {
      if (!s.equals(res.sums[i] ?? Buffer.alloc(0))) differ.push(BigInt((first + i) * REPL_SUMRANGE))
    })
  }
  if (differ.length === 0) return
  const a = await attrOrNull(o.tree, ref)
  if (a === null) return
  o.counters.files++
  o.counters.rangesDiffering += differ.length
  await sendParts(o, ref, a, differ, REPL_SUMRANGE)
}

/** RESYNC_DATA of `length` bytes at each offset, then (with the last) the times. */
async function sendParts(o: ResyncOptions, ref: FileRef, a: Attr, offsets: bigint[], length: number): Promise<void> {
  const times = { atime: timeToRepl(a.atime, failEncode), mtime: timeToRepl(a.mtime, failEncode) }
  const inflight: Promise<unknown>[] = []
  for (let i = 0; i < offsets.length; i++) {
    const offset = offsets[i] ?? 0n
    const want = Math.max(0, Math.min(length, Number(a.size - offset)))
    const data = want === 0 ? Buffer.alloc(0) : await o.tree.readRange(ref, offset, want)
    // Gone since it was listed: its removal is in the log.
    if (data === null) break
    o.counters.dataBytes += data.length
    inflight.push(call(o, PROC.DATA, repl_rs_data_args, { epoch: o.epoch, export_id: o.exportId, ref, offset, data, last: i === offsets.length - 1, ...times }, repl_rs_res, 'RESYNC_DATA'))
    if (inflight.length >= DATA_IN_FLIGHT) await inflight.shift()
  }
  await Promise.all(inflight)
}

/** The target directories of renames and links logged in (from, to], and the objects they moved. */
async function movesBetween(source: ChangeSource, from: bigint, to: bigint): Promise<{ dirs: FileRef[]; moved: FileRef[] }> {
  const dirs = new Map<bigint, FileRef>()
  const moved = new Map<bigint, FileRef>()
  let next = from + 1n
  while (next <= to) {
    const got = await source.read(next, CHANGES_PER_READ, 4 * 1024 * 1024)
    if (got.length === 0) break
    for (const l of got) {
      if (l.seq > to) break
      const c = l.change
      if (c.op === 'rename') {
        dirs.set(c.toDir.id, c.toDir)
        const obj = c.times.find((t) => t.ref.id !== c.fromDir.id && t.ref.id !== c.toDir.id)
        if (obj !== undefined) moved.set(obj.ref.id, obj.ref)
      } else if (c.op === 'link') {
        dirs.set(c.dir.id, c.dir)
      }
    }
    next = (got.at(-1)?.seq ?? to) + 1n
  }
  return { dirs: [...dirs.values()], moved: [...moved.values()] }
}

type Proc = { prog: number; vers: number; proc: number }

/** One call; a status other than OK (or, for DIR and SUMS, OK only) throws ResyncRefused. */
async function call<A, R extends { status: repl_stat }>(o: ResyncOptions, p: Proc, argsCodec: Codec<A>, args: A, resCodec: Codec<R>, what: string): Promise<R> {
  const res = await o.conn.call(p, argsCodec, args, resCodec, { timeoutMs: CALL_TIMEOUT_MS })
  if (res.status === STAT.REPL_OK) return res
  const epoch = res.status === STAT.REPL_STALE_EPOCH && 'epoch' in res && typeof res.epoch === 'bigint' ? res.epoch : null
  throw new ResyncRefused(res.status, epoch, what)
}

function encodedSize<A>(codec: Codec<A>, v: A): number {
  const w = new XdrWriter(1024)
  codec.encode(w, v)
  let n = 0
  for (const chunk of w.finish()) n += chunk.length
  return n
}

async function attrOrNull(tree: ResyncTree, ref: FileRef): Promise<Attr | null> {
  try {
    return await tree.getattr(ref)
  } catch (err) {
    if (isGone(err)) return null
    throw err
  }
}

function isGone(err: unknown): boolean {
  return isErrnoError(err) && (err.code === 'ESTALE' || err.code === 'ENOENT')
}
