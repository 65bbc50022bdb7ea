/*
 * Where every frame of a tape file is, so positioning costs no reads: FSF/BSF/FSR/BSR and a
 * direct-access restore's seek to record N are arithmetic over this table, not a scan of the
 * tape. Built once when the tape is opened (frame headers only: one 16-byte read per frame),
 * then kept in step with each write.
 *
 * A position is an entry number p in [0, count]: before entry p (count = end of data).
 */
import { KIND_FILEMARK, KIND_RECORD } from './format.ts'

export class RecordIndex {
  /** Byte offset of each entry's frame header; offsets[count] is end of data. */
  private offsets: number[] = []
  private lengths: number[] = []
  /** Entry numbers of the filemarks, ascending. */
  private marks: number[] = []
  private end: number

  constructor(dataStart: number) {
    this.end = dataStart
    this.offsets.push(dataStart)
  }

  get count(): number {
    return this.lengths.length
  }

  get filemarks(): number {
    return this.marks.length
  }

  /** Byte offset of entry p's frame (p = count: end of data). */
  offsetOf(p: number): number {
    return this.offsets[p] ?? this.end
  }

  /** Data length of entry p; -1 for a filemark. */
  lengthOf(p: number): number {
    return this.lengths[p] ?? -1
  }

  isFilemark(p: number): boolean {
    return this.lengths[p] === -1
  }

  get endOffset(): number {
    return this.end
  }

  append(kind: number, frameBytes: number, dataLength: number): void {
    if (kind === KIND_FILEMARK) this.marks.push(this.count)
    this.lengths.push(kind === KIND_RECORD ? dataLength : -1)
    this.end += frameBytes
    this.offsets.push(this.end)
  }

  /** Forgets entries from p on (a write in the middle of the tape erases what follows). */
  truncate(p: number): void {
    if (p >= this.count) return
    this.lengths.length = p
    this.offsets.length = p + 1
    this.end = this.offsets[p] ?? this.end
    while (this.marks.length > 0 && (this.marks[this.marks.length - 1] ?? 0) >= p) this.marks.pop()
  }

  /** Filemarks before position p: the NDMP file number. */
  fileOf(p: number): number {
    let lo = 0
    let hi = this.marks.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.marks[mid] ?? 0) < p) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** First position of file f (0: BOT; f ≤ filemarks). */
  fileStart(f: number): number {
    return f === 0 ? 0 : (this.marks[f - 1] ?? 0) + 1
  }

  /** Records between the start of p's file and p: the NDMP block number. */
  blockOf(p: number): number {
    return p - this.fileStart(this.fileOf(p))
  }

  /** The filemark ending p's file, or count if the file runs to end of data. */
  fileEnd(p: number): number {
    return this.marks[this.fileOf(p)] ?? this.count
  }
}
