/*
 * A one-line progress bar on stderr (bytes, percentage, rate, ETA), redrawn
 * at most ten times a second. Only used when stderr is a terminal: a pipe or
 * a log file gets nothing.
 */
import { Transform } from 'node:stream'
import type { TransformCallback } from 'node:stream'
import { byteUnits } from './format.ts'

const REDRAW_MS = 100
const BAR = 24

export interface ProgressSink {
  isTTY?: boolean
  columns?: number
  write(text: string): boolean
}

export class Progress {
  private readonly out: ProgressSink | null
  private readonly total: number
  private readonly started = Date.now()
  private done = 0
  private lastDraw = 0
  private drawn = false

  /** out null (or not a TTY): count only, draw nothing. */
  constructor(total: number, out: ProgressSink | null) {
    this.total = total
    this.out = out !== null && out.isTTY === true ? out : null
  }

  get bytes(): number {
    return this.done
  }

  add(n: number): void {
    this.done += n
    const now = Date.now()
    if (this.out !== null && now - this.lastDraw >= REDRAW_MS) {
      this.lastDraw = now
      this.draw(now)
    }
  }

  /** A pass-through stream that counts what flows through it. */
  counter(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) => {
        this.add(chunk.length)
        cb(null, chunk)
      },
    })
  }

  /** Final redraw and end the line. */
  finish(): void {
    if (this.out === null) return
    this.draw(Date.now())
    if (this.drawn) this.out.write('\n')
  }

  line(now: number): string {
    const secs = Math.max((now - this.started) / 1000, 0.001)
    const rate = this.done / secs
    const frac = this.total > 0 ? Math.min(this.done / this.total, 1) : 1
    const fill = Math.round(frac * BAR)
    const bar = `${'='.repeat(fill)}${fill < BAR ? '>' : ''}${' '.repeat(Math.max(BAR - fill - 1, 0))}`
    const eta = rate > 0 ? Math.max(this.total - this.done, 0) / rate : 0
    const pct = `${String(Math.floor(frac * 100)).padStart(3)}%`
    return `${pct} [${bar}] ${byteUnits(this.done)} / ${byteUnits(this.total)}  ${byteUnits(Math.round(rate))}/s  ETA ${clock(eta)}`
  }

  private draw(now: number): void {
    if (this.out === null) return
    const text = this.line(now)
    // A pty without a size (script(1), some CI runners) reports 0 columns.
    const cols = this.out.columns ?? 0
    const width = (cols >= 20 ? cols : 80) - 1
    this.out.write(`\r${text.slice(0, width).padEnd(width)}`)
    this.drawn = true
  }
}

function clock(seconds: number): string {
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${String(h)}:${String(m).padStart(2, '0')}:${ss}` : `${String(m)}:${ss}`
}
