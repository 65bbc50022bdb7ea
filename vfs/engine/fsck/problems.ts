/*
 * What a check finds. Each problem names the e2fsck pass that would find it
 * (1 inodes and blocks, 2 directories, 3 connectivity, 4 link counts, 5
 * bitmaps and counts) and a stable code, so tests and callers compare codes,
 * not text. A 'note' is reported but leaves the image clean, as e2fsck treats
 * the superblock's free counts (the kernel updates them lazily).
 */

export type FsckPass = 1 | 2 | 3 | 4 | 5

export interface Problem {
  pass: FsckPass
  code: string
  message: string
  ino?: number
  block?: number
  /** The value the check counted where a field disagrees with it (i_blocks, i_size): what a repair writes. */
  expected?: number
  severity: 'error' | 'note'
}

export interface FsckResult {
  clean: boolean
  problems: Problem[]
  /** Problems found beyond maxProblems: counted, not kept (a wrecked image must not fill memory). */
  dropped: number
}

/** Problems kept by default; the rest are only counted. */
export const MAX_PROBLEMS = 1000

export class Reporter {
  readonly problems: Problem[] = []
  dropped = 0
  errors = 0
  private readonly max: number

  constructor(max = MAX_PROBLEMS) {
    this.max = max
  }

  add(pass: FsckPass, code: string, message: string, where: { ino?: number; block?: number; expected?: number } = {}, severity: 'error' | 'note' = 'error'): void {
    if (severity === 'error') this.errors++
    if (this.problems.length >= this.max) {
      this.dropped++
      return
    }
    const p: Problem = { pass, code, message, severity }
    if (where.ino !== undefined) p.ino = where.ino
    if (where.block !== undefined) p.block = where.block
    if (where.expected !== undefined) p.expected = where.expected
    this.problems.push(p)
  }

  note(pass: FsckPass, code: string, message: string, where: { ino?: number; block?: number } = {}): void {
    this.add(pass, code, message, where, 'note')
  }

  result(): FsckResult {
    return { clean: this.errors === 0, problems: this.problems, dropped: this.dropped }
  }
}

/** The message of whatever a reader call threw. */
export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
