/*
 * Delayed write (DESIGN.md §3.10, issue 4 point 7), after the Linux client:
 * write() copies into dirty blocks and returns; a block that fills, a short
 * timer, the mount's dirty limit, fsync and close send dirty data as UNSTABLE
 * WRITEs of at most wsize, several in flight. COMMIT follows on fsync and
 * close, and goes out behind the writes once the mount holds more than an
 * eighth of its dirty limit (8 MiB by default), so a long write keeps the
 * pipe full instead of stopping to flush at the limit (a writer waits only
 * while the mount is over it). A caller that hands its buffer over
 * (transfer) has whole blocks sent from it without a copy, and gets it back
 * once committed (leases). Every range stays held until a COMMIT returns
 * the verifier its WRITE got; a different verifier (server restart, failed
 * flush) re-sends the range and commits again (P10, P11). FILE_SYNC replies
 * need no COMMIT; a sync whose data is one WRITE asks FILE_SYNC (as Linux). Background errors are kept on the file and thrown by its
 * next write, fsync or close.
 *
 * Data goes out as whoever wrote it (Linux sends a page's WRITE with the
 * credential of the open file that dirtied it): each dirty block carries
 * its writer's credential, a write by another identity into a dirty block
 * sends that block first (nfs_flush_incompatible), and a COMMIT goes as
 * the writer of the first segment it covers, as nfs_commit does.
 */
import { nfsstat3, stable_how } from '../xdr/generated/nfs3.ts'
import type { BlockCache } from './cache/block-cache.ts'
import { stampOf } from './cache/block-cache.ts'
import { keepClean, patchClean } from './file-clean.ts'
import type { AttrCache } from './cache/attr-cache.ts'
import { NfsError } from './errors.ts'
import { addRange, cutRange, gapsOf } from './file-ranges.ts'
import type { ResolvedFileDataOptions } from './file-options.ts'
import { Slots } from './file-slots.ts'
import type { DirtyBlock, FileState, Lease, Segment } from './file-state.ts'
import { cutSegments, dropLease, segEnd, supersedeInflight } from './file-state.ts'
import { identityKey, withCred } from './identity.ts'
import type { Nfs3 } from './nfs3.ts'
import type { CallCredential } from './rpc/auth.ts'
import type { BufferPool } from './rpc/buffer-pool.ts'
import type { ClientStats } from './stats.ts'

/** After this many COMMIT rounds that found a new verifier, re-send FILE_SYNC so the loop ends. */
const UNSTABLE_ROUNDS = 3
const MAX_ROUNDS = 10

export interface WritebackDeps {
  nfs: Nfs3
  attrs: AttrCache
  blocks: BlockCache
  counters: ClientStats
  opts: ResolvedFileDataOptions
  /** Every file state of the mount (the dirty limit flushes them all). */
  files: () => Iterable<FileState>
  /** The pool whose buffers written with transfer go back to it (see Lease). */
  pool?: BufferPool
}

export class Writeback {
  /** Bytes held by the whole mount (dirty, in flight, awaiting COMMIT). */
  held = 0
  private readonly d: WritebackDeps
  private readonly bs: number
  private readonly slots: Slots
  /** Writers waiting for the mount to go under its dirty limit, woken as held data is released. */
  private waiters: (() => void)[] = []
  /** Writers waiting for their file's WRITE queue to shorten (write), woken as each WRITE ends. */
  private paced: (() => void)[] = []

  constructor(deps: WritebackDeps) {
    this.d = deps
    this.bs = deps.opts.blockSize
    this.slots = new Slots(deps.opts.writeSlots)
  }

  /**
   * Copy data into dirty blocks at offset, as cred's; waits only when the
   * mount is over its dirty limit. transfer: the caller will never change
   * `data` again, so whole blocks of it are held and sent as they are, not
   * copied.
   */
  async write(f: FileState, offset: number, data: Buffer, cred?: CallCredential, transfer = false, release: (() => void) | null = null): Promise<void> {
    // A buffer handed over goes back (release, or to the pool it came from) once nothing of it is held; one byte is held for this call.
    const pool = this.d.pool
    const give = release ?? (transfer && pool?.owns(data) === true ? () => { pool.give(data) } : null)
    const lease: Lease | null = transfer && give !== null ? { bytes: 1, give } : null
    let done = 0
    try {
      while (done < data.length) {
        const at = offset + done
        const n = Math.min(data.length - done, this.bs - (at % this.bs))
        while (this.held > 0 && this.held + n > this.d.opts.dirtyLimitBytes) await this.relieve()
        this.copyIn(f, at, data.subarray(done, done + n), cred, transfer, lease)
        done += n
      }
      // No further ahead of the wire than the WRITEs in flight and as many again waiting for a slot:
      // a writer faster than the server (a local file read into fresh blocks) otherwise queued up to
      // the dirty limit, and each block it held was memory faulted in (a 256 MiB upload: 20-65 slabs).
      while (f.inflight.size > 2 * this.d.opts.writeSlots) await new Promise<void>(resolve => this.paced.push(resolve))
    } finally {
      dropLease(lease, 1)
    }
  }

  /** Send every dirty block of the file now (no COMMIT). */
  flushDirty(f: FileState, stable: stable_how = stable_how.UNSTABLE): void {
    if (f.timer !== null) {
      clearTimeout(f.timer)
      f.timer = null
    }
    for (const index of [...f.dirty.keys()].sort((a, b) => a - b)) this.flushBlock(f, index, stable)
  }

  /**
   * The writer is finishing the file (it sets times or mode, as cp -a, tar
   * and install do just before close): when all the file holds is one WRITE,
   * send it now as FILE_SYNC, so the close finds it done or on its way
   * instead of starting it. Like any early write-out it only moves when data
   * is sent; a later write() makes new dirty data as usual.
   */
  writeAhead(f: FileState): void {
    if (this.oneWrite(f)) this.flushDirty(f, stable_how.FILE_SYNC)
  }

  /**
   * Everything the file holds is one dirty range (one WRITE) and nothing
   * awaits a COMMIT: as Linux's FLUSH_COND_STABLE, that WRITE goes FILE_SYNC
   * and needs no COMMIT (a small file's close costs one call, not two).
   */
  private oneWrite(f: FileState): boolean {
    if (f.dirty.size !== 1 || f.unstable.length > 0 || f.inflight.size > 0) return false
    const [b] = f.dirty.values()
    return b !== undefined && b.ranges.length === 1
  }

  /**
   * Write out and COMMIT everything the file holds, re-sending what a
   * COMMIT's verifier does not cover, until nothing is held. Never throws:
   * failures are left in f.error for the caller to report.
   */
  async sync(f: FileState): Promise<void> {
    let committed = false
    const seq0 = f.seq
    const gen0 = f.gen
    for (let round = 0; ; round++) {
      this.flushDirty(f, round === 0 && this.oneWrite(f) ? stable_how.FILE_SYNC : stable_how.UNSTABLE)
      while (f.tasks.size > 0) await Promise.all([...f.tasks])
      if (f.unstable.length > 0) {
        if (round >= MAX_ROUNDS) {
          // Only a server that answers FILE_SYNC requests UNSTABLE gets here: report, do not loop.
          const n = f.unstable.reduce((k, s) => k + s.data.length, 0)
          for (const s of f.unstable) dropLease(s.lease, s.data.length)
          f.unstable = []
          this.failed(f, NfsError.fromStatus(nfsstat3.NFS3ERR_IO, 'COMMIT'), n)
          break
        }
        await this.commit(f, round)
        committed = true
        continue
      }
      if (f.dirty.size === 0 && f.inflight.size === 0 && f.tasks.size === 0) break
    }
    if (f.attrsSuspect) {
      // Replies of concurrent WRITEs may have left older attributes last; ask once (FILE_SYNC servers only: a COMMIT's are current).
      f.attrsSuspect = false
      await this.d.nfs.call('GETATTR', { object: { data: f.fh } }).catch(() => undefined)
    }
    if (f.held === 0) f.writtenEnd = 0
    const a = this.d.attrs.peek(f.fh)
    if (a !== undefined && (committed || f.seq !== seq0 || f.gen !== gen0)) this.d.blocks.restamp(f.key, stampOf(a))
  }

  /**
   * Before SETATTR size (truncate): drop held data at or beyond size, wait
   * for WRITEs in flight (those beyond size are trimmed when acknowledged),
   * so no later WRITE or re-send can extend the file again.
   */
  async truncateHeld(f: FileState, size: number): Promise<void> {
    for (const [index, b] of [...f.dirty]) {
      const cut = cutRange(b.ranges, Math.max(0, size - index * this.bs), this.bs)
      this.account(f, -cut)
      dropLease(b.lease, cut)
      if (b.ranges.length === 0) f.dirty.delete(index)
    }
    supersedeInflight(f, size, Number.MAX_SAFE_INTEGER)
    while (f.tasks.size > 0) await Promise.all([...f.tasks])
    this.account(f, -cutSegments(f.unstable, size, Number.MAX_SAFE_INTEGER))
    f.writtenEnd = Math.min(f.writtenEnd, size)
    f.gen++
  }

  private copyIn(f: FileState, at: number, chunk: Buffer, cred: CallCredential | undefined, transfer: boolean, lease: Lease | null): void {
    const index = Math.floor(at / this.bs)
    const inBlock = at - index * this.bs
    const end = inBlock + chunk.length
    // Another identity's data in this block goes out first, as its own (before the trims below mark it as replaced).
    const held = f.dirty.get(index)
    if (held !== undefined && identityKey(held.cred) !== identityKey(cred)) this.flushBlock(f, index)
    // Newer data replaces older: trim what awaits COMMIT, mark what is in flight.
    this.account(f, -cutSegments(f.unstable, at, at + chunk.length))
    supersedeInflight(f, at, at + chunk.length)
    let b = f.dirty.get(index)
    if (b === undefined && transfer && end === this.bs && inBlock === 0) {
      // A whole block handed over: it is the dirty block, then the WRITE's data (no copy).
      b = { index, buf: chunk, ranges: [], lease, cred }
      if (lease !== null) lease.bytes += chunk.length
      f.dirty.set(index, b)
    } else {
      if (b === undefined) {
        b = { index, buf: Buffer.allocUnsafe(Math.min(this.bs, roundUp(end))), ranges: [], lease: null, cred }
        f.dirty.set(index, b)
      }
      if (end > b.buf.length) {
        const grown = Buffer.allocUnsafe(Math.min(this.bs, Math.max(roundUp(end), b.buf.length * 2)))
        for (const r of b.ranges) b.buf.copy(grown, r.start, r.start, r.end)
        b.buf = grown
      }
      chunk.copy(b.buf, inBlock)
    }
    this.account(f, addRange(b.ranges, inBlock, end))
    patchClean(this.d.blocks, f, index, inBlock, chunk)
    f.writtenEnd = Math.max(f.writtenEnd, at + chunk.length)
    const full = b.ranges.length === 1 && b.ranges[0]?.start === 0 && b.ranges[0].end === this.bs
    if (full) this.flushBlock(f, index)
    else this.arm(f)
  }

  private arm(f: FileState): void {
    if (f.timer !== null) return
    f.timer = setTimeout(() => {
      f.timer = null
      this.flushDirty(f)
    }, this.d.opts.writebackDelayMs)
    f.timer.unref()
  }

  private flushBlock(f: FileState, index: number, stable: stable_how = stable_how.UNSTABLE): void {
    const b: DirtyBlock | undefined = f.dirty.get(index)
    if (b === undefined) return
    f.dirty.delete(index)
    // A leased buffer goes back to its pool: the cache must not keep it.
    if (b.lease === null) keepClean(this.d.blocks, this.d.attrs, f, b)
    // The detached buffer is never written again (new writes make a new dirty block): it is the snapshot.
    for (const r of b.ranges) {
      const seg: Segment = { offset: index * this.bs + r.start, data: b.buf.subarray(r.start, r.end), seq: ++f.seq, verf: null, superseded: [], done: null, lease: b.lease, cred: b.cred }
      this.start(f, seg, stable)
    }
  }

  private start(f: FileState, seg: Segment, stable: stable_how): void {
    f.inflight.add(seg)
    // Replies of WRITEs in flight together may be applied out of order (older attributes last).
    if (f.inflight.size > 1) f.attrsSuspect = true
    const older = [...f.inflight].filter(o => o !== seg && o.seq <= seg.seq && o.done !== null && o.offset < segEnd(seg) && seg.offset < segEnd(o))
    const p = this.send(f, seg, stable, older.map(o => o.done as Promise<void>))
    seg.done = p
    f.tasks.add(p)
    void p.finally(() => f.tasks.delete(p))
  }

  /** WRITE one segment, continuing short counts (RFC 1813 §3.3.7); never rejects. */
  private async send(f: FileState, seg: Segment, stable: stable_how, after: Promise<void>[]): Promise<void> {
    // Overlapping writes reach the server in the order the application made them.
    await Promise.all(after)
    let off = seg.offset
    let data = seg.data
    try {
      await this.slots.run(async () => {
        while (data.length > 0) {
          this.d.counters.add('writeback', 'writes')
          const r = await this.d.nfs.call('WRITE', { file: { data: f.fh }, offset: BigInt(off), count: data.length, stable, data }, withCred(seg.cred))
          // A server that accepts nothing and reports no error would loop forever.
          if (r.count === 0) throw NfsError.fromStatus(nfsstat3.NFS3ERR_IO, 'WRITE')
          const n = Math.min(r.count, data.length)
          // The rest is cut first: acked() may give a handed-over buffer back (FILE_SYNC), after which it is not ours to touch.
          const rest = data.subarray(n)
          this.acked(f, seg, off, data.subarray(0, n), r.committed, Buffer.from(r.verf))
          off += n
          data = rest
        }
      })
    } catch (err) {
      this.failed(f, err, data.length)
      dropLease(seg.lease, data.length)
    } finally {
      f.inflight.delete(seg)
      this.wakePaced()
    }
  }

  private acked(f: FileState, seg: Segment, off: number, bytes: Buffer, committed: stable_how, verf: Buffer): void {
    const keep = gapsOf(seg.superseded, off, off + bytes.length)
    let kept = 0
    if (committed !== stable_how.FILE_SYNC) {
      for (const g of keep) {
        f.unstable.push({ offset: g.start, data: bytes.subarray(g.start - off, g.end - off), seq: seg.seq, verf, superseded: [], done: null, lease: seg.lease, cred: seg.cred })
        kept += g.end - g.start
      }
    } else {
      f.gen++
    }
    this.account(f, kept - bytes.length)
    dropLease(seg.lease, bytes.length - kept)
    // Past an eighth of the limit (8 MiB by default): the rest keeps the writes going while the COMMIT
    // runs, and a long copy cycles through few buffers (fresh memory costs more than the copy it holds,
    // see BufferPool). 256 MiB uploads measured 0.30-0.35 s with 8 MiB, 0.34-0.41 s with 16 MiB.
    if (kept > 0 && this.held * 8 > this.d.opts.dirtyLimitBytes) this.commitBehind(f)
  }

  /**
   * COMMIT what the server has acknowledged so far while the writes go on
   * (Linux commits in the background too once enough is unstable). A
   * COMMIT covers every WRITE answered before it was sent, on the same
   * connection, so what commit() snapshots is exactly what it may release.
   */
  private commitBehind(f: FileState): void {
    if (f.committing !== null || f.unstable.length === 0) return
    // Verifiers that keep changing end in FILE_SYNC re-sends here too, as in sync().
    const p = this.commit(f, f.behindRounds, true).then(resent => {
      f.behindRounds = resent > 0 ? f.behindRounds + 1 : 0
    }).finally(() => {
      f.committing = null
      f.tasks.delete(p)
      this.wake()
    })
    f.committing = p
    f.tasks.add(p)
  }

  private failed(f: FileState, err: unknown, unsent: number): void {
    this.d.counters.add('writeback', 'errors')
    f.error ??= err instanceof Error ? err : new Error(String(err))
    f.gen++
    this.account(f, -unsent)
    // The cache may show data the server never got; the attributes may be off.
    this.d.blocks.dropFile(f.key)
    this.d.attrs.invalidate(f.fh)
  }

  /** COMMIT the whole file; release what the verifier covers, re-send the rest. */
  /** Returns how many segments a new verifier sent again. behind: writes may be going on (commitBehind). */
  private async commit(f: FileState, round: number, behind = false): Promise<number> {
    const snapshot = [...f.unstable]
    this.d.counters.add('writeback', 'commits')
    let verf: Buffer
    try {
      // RFC 1813 §3.3.21: offset 0, count 0 flushes the whole file.
      verf = Buffer.from((await this.d.nfs.call('COMMIT', { file: { data: f.fh }, offset: 0n, count: 0 }, withCred(snapshot[0]?.cred))).verf)
    } catch (err) {
      const gone = snapshot.filter(s => f.unstable.includes(s))
      f.unstable = f.unstable.filter(s => !gone.includes(s))
      this.failed(f, err, gone.reduce((n, s) => n + s.data.length, 0))
      for (const s of gone) dropLease(s.lease, s.data.length)
      return 0
    }
    // Replies of WRITEs answered while it was out may carry newer attributes than the COMMIT's.
    if (!behind) f.attrsSuspect = false
    const resend: Segment[] = []
    let released = 0
    for (const s of snapshot) {
      const i = f.unstable.indexOf(s)
      if (i < 0) continue
      f.unstable.splice(i, 1)
      if (s.verf?.equals(verf) === true) {
        released += s.data.length
        dropLease(s.lease, s.data.length)
      } else resend.push(s)
    }
    if (released > 0) {
      f.gen++
      this.account(f, -released)
    }
    // P11: the server lost what it had not committed; send it again (its bytes stay held).
    for (const s of resend) {
      this.d.counters.add('writeback', 'resends')
      this.start(f, { ...s, verf: null, superseded: [], done: null }, round + 1 >= UNSTABLE_ROUNDS ? stable_how.FILE_SYNC : stable_how.UNSTABLE)
    }
    return resend.length
  }

  /**
   * Over the dirty limit: send every dirty block and COMMIT what the server
   * holds unstable, then wait until some held data is released (the caller
   * checks the limit again). Writes in flight go on meanwhile.
   */
  private relieve(): Promise<void> {
    this.d.counters.add('writeback', 'limitWaits')
    const released = new Promise<void>(resolve => this.waiters.push(resolve))
    let working = false
    for (const f of this.d.files()) {
      if (f.held === 0) continue
      if (f.dirty.size > 0) this.flushDirty(f)
      this.commitBehind(f)
      if (f.tasks.size > 0) working = true
    }
    // Nothing in flight can release anything (a failed file holds nothing): do not wait.
    if (!working) this.wake()
    return released
  }

  private wakePaced(): void {
    const w = this.paced
    if (w.length === 0) return
    this.paced = []
    for (const resolve of w) resolve()
  }

  private wake(): void {
    const w = this.waiters
    if (w.length === 0) return
    this.waiters = []
    for (const resolve of w) resolve()
  }

  private account(f: FileState, n: number): void {
    if (n === 0) return
    f.held += n
    this.held += n
    this.d.counters.add('writeback', 'dirtyBytes', n)
    if (n < 0) this.wake()
  }
}

function roundUp(n: number): number {
  return Math.ceil(n / 4096) * 4096
}
