/*
 * UNSTABLE writes held in this server's memory until they are flushed
 * (RFC 1813 §3.3.7: the server may lose them; the write verifier tells the
 * client to resend). Per inode, a sorted list of non-overlapping ranges; a
 * new write trims what it covers (by subarray, no copying) so sequential
 * small writes cost O(1) each and are joined once, at flush.
 */
import type { Timespec } from '../../types.ts'

export interface Range {
  /** File offset. */
  off: number
  data: Buffer
}

export class StagedFile {
  ranges: Range[] = []
  /** Bytes held (sum of range lengths). */
  bytes = 0
  /** Largest end offset written. */
  end = 0
  mtime: Timespec = { sec: 0, nsec: 0 }
  /** When the last write arrived (ms, monotonic enough: Date.now()). */
  touched = 0

  /** Lay `data` at `off` over what is staged. Returns the change in bytes held. */
  put(off: number, data: Buffer): number {
    const before = this.bytes
    if (data.length === 0) return 0
    const a = off
    const b = off + data.length
    const rs = this.ranges
    // First range ending after a (ends are sorted since ranges do not overlap).
    let lo = 0
    let hi = rs.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const r = rs[mid]
      if (r !== undefined && r.off + r.data.length <= a) lo = mid + 1
      else hi = mid
    }
    const replaced: Range[] = []
    let j = lo
    for (; j < rs.length; j++) {
      const r = rs[j]
      if (r === undefined || r.off >= b) break
      this.bytes -= r.data.length
      if (r.off < a) replaced.push({ off: r.off, data: r.data.subarray(0, a - r.off) })
      if (r.off + r.data.length > b) replaced.push({ off: b, data: r.data.subarray(b - r.off) })
    }
    const left = replaced.filter((r) => r.off < a)
    const right = replaced.filter((r) => r.off >= b)
    const mid: Range = { off: a, data }
    const insert = [...left, mid, ...right]
    for (const r of insert) this.bytes += r.data.length
    rs.splice(lo, j - lo, ...insert)
    if (b > this.end) this.end = b
    return this.bytes - before
  }

  /** Copy the staged bytes that fall in [off, off + out.length) into `out`. */
  overlay(out: Buffer, off: number): void {
    const end = off + out.length
    for (const r of this.ranges) {
      const rEnd = r.off + r.data.length
      if (rEnd <= off) continue
      if (r.off >= end) break
      const a = Math.max(r.off, off)
      const b = Math.min(rEnd, end)
      r.data.copy(out, a - off, a - r.off, b - r.off)
    }
  }

  /**
   * The staged bytes as contiguous runs cut at chunk boundaries: each run
   * becomes one slice (issue 17: a write crossing a chunk boundary is one
   * slice per chunk).
   */
  runs(chunkSize: number): { idx: number; pos: number; data: Buffer }[] {
    const out: { idx: number; pos: number; data: Buffer }[] = []
    let i = 0
    const rs = this.ranges
    while (i < rs.length) {
      const first = rs[i]
      if (first === undefined) break
      const parts: Buffer[] = [first.data]
      let end = first.off + first.data.length
      i++
      for (let r = rs[i]; r !== undefined && r.off === end; r = rs[++i]) {
        parts.push(r.data)
        end += r.data.length
      }
      const joined = parts.length === 1 ? first.data : Buffer.concat(parts)
      for (let a = first.off; a < end;) {
        const idx = Math.floor(a / chunkSize)
        const b = Math.min(end, (idx + 1) * chunkSize)
        out.push({ idx, pos: a - idx * chunkSize, data: joined.subarray(a - first.off, b - first.off) })
        a = b
      }
    }
    return out
  }
}

/** Every inode's staged writes on this server, with the total bytes they hold. */
export class Staging {
  readonly files = new Map<bigint, StagedFile>()
  total = 0

  put(inode: bigint, off: number, data: Buffer, mtime: Timespec, now: number): void {
    let f = this.files.get(inode)
    if (f === undefined) {
      f = new StagedFile()
      this.files.set(inode, f)
    }
    this.total += f.put(off, data)
    f.mtime = mtime
    f.touched = now
  }

  /** Remove and return the inode's staged writes (a flush takes them). */
  take(inode: bigint): StagedFile | undefined {
    const f = this.files.get(inode)
    if (f === undefined) return undefined
    this.files.delete(inode)
    this.total -= f.bytes
    return f
  }

  /**
   * A flush failed: put its writes back under anything staged since, so a
   * later COMMIT tries again (the client was promised nothing yet).
   */
  restore(inode: bigint, failed: StagedFile): void {
    const newer = this.take(inode)
    const f = new StagedFile()
    for (const r of failed.ranges) f.put(r.off, r.data)
    f.mtime = failed.mtime
    f.touched = failed.touched
    if (newer !== undefined) {
      for (const r of newer.ranges) f.put(r.off, r.data)
      f.mtime = newer.mtime
      f.touched = newer.touched
    }
    this.files.set(inode, f)
    this.total += f.bytes
  }

  /** Inodes whose last write is older than `before` (ms), oldest first. */
  idle(before: number): bigint[] {
    return [...this.files].filter(([, f]) => f.touched < before).sort((a, b) => a[1].touched - b[1].touched).map(([i]) => i)
  }

  /** The inode written least recently. */
  oldest(): bigint | undefined {
    let best: [bigint, StagedFile] | undefined
    for (const e of this.files) if (best === undefined || e[1].touched < best[1].touched) best = e
    return best?.[0]
  }
}
