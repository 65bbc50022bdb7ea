/*
 * What the fuzz runs share (bench/fuzz*.ts and the quick tests): the heap
 * after a full collection, MiB for the reports, and a long run's arguments
 * (a count, a seed printed so the run can be repeated, --record).
 */
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

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
