/*
 * What the fuzz runs share (bench/fuzz*.ts and the quick tests): the heap
 * after a full collection, MiB for the reports, a long run's arguments
 * (a count, a seed printed so the run can be repeated, --record) and loop,
 * an operation bounded by a deadline, and the watch on what escapes.
 */
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import fc from 'fast-check'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Heap in use after two full collections (what is still reachable). */
export function heapAfterGc(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

export const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`

export interface FuzzRunArgs {
  count: number
  seed: number
  record: boolean
}

/** `--NAME N --seed S --record` of a long run; the seed (given or drawn) is printed on stderr. */
export function fuzzRunArgs(name: string, fallback: number): FuzzRunArgs {
  const { values } = parseArgs({
    options: { [name]: { type: 'string', default: String(fallback) }, seed: { type: 'string' }, record: { type: 'boolean', default: false } },
  })
  const raw = values[name]
  const count = Number(raw)
  if (!Number.isInteger(count) || count < 1) throw new Error(`--${name}: not a count: ${String(raw)}`)
  const seed = values.seed === undefined ? Date.now() & 0x7fff_ffff : Number(values.seed)
  process.stderr.write(`seed ${String(seed)}\n`)
  return { count, seed, record: values.record }
}

/** How an operation ended within a deadline: 'ok', its error, or 'late'. */
export type Settled = 'ok' | 'late' | { err: unknown }

/** Runs `fn` to its end or `ms`, whichever comes first (the timer does not outlive it). */
export async function settleWithin(fn: () => Promise<unknown>, ms: number): Promise<Settled> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => { resolve('late') }, ms) })
  const r = await Promise.race([fn().then(() => 'ok' as const, (err: unknown) => ({ err })), late])
  clearTimeout(timer)
  return r
}

/** A message for what was thrown: its stack when there is one. */
export function described(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err)
}

/**
 * Counts what escapes while a fuzz runs (uncaught exceptions, unhandled rejections: each one a
 * failure, handed to `onEscape`) until close().
 */
export class EscapeWatch {
  count = 0
  readonly #on: (err: unknown) => void

  constructor(onEscape: (what: string) => void) {
    this.#on = (err) => {
      this.count++
      onEscape(`escaped: ${described(err)}`)
    }
    process.on('uncaughtException', this.#on)
    process.on('unhandledRejection', this.#on)
  }

  close(): void {
    process.off('uncaughtException', this.#on)
    process.off('unhandledRejection', this.#on)
  }
}

/**
 * A long run's loop (bench/fuzz-*.ts): `count` sessions drawn from `arb` with `seed`, each run to
 * its end whatever came before (the fuzzer's tally keeps the failures), a progress line on stderr
 * every `every` sessions. Returns whether fast-check saw a failure, and the seconds it took.
 */
export async function runSessions<S>(arb: fc.Arbitrary<S>, a: FuzzRunArgs, run: (s: S) => Promise<unknown>, every: number, progress: (n: number) => string): Promise<{ failed: boolean; seconds: number }> {
  const start = process.hrtime.bigint()
  let n = 0
  const result = await fc.check(
    fc.asyncProperty(arb, async (s) => {
      await run(s)
      if (++n % every === 0) process.stderr.write(`  ${progress(n)}, heap ${mib(process.memoryUsage().heapUsed)}\n`)
      return true
    }),
    { numRuns: a.count, seed: a.seed },
  )
  return { failed: result.failed, seconds: Number(process.hrtime.bigint() - start) / 1e9 }
}
