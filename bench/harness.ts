/** A small timing loop: runs fn in batches until `ms` has passed, then reports ops/s and per-batch p50/p99. */
export interface Result {
  name: string
  opsPerSec: number
  p50us: number
  p99us: number
}

export function measure(name: string, fn: () => void, ms = 1000, batch = 1000): Result {
  for (let i = 0; i < batch; i++) fn() // warm up
  const per: number[] = []
  const start = performance.now()
  let n = 0
  while (performance.now() - start < ms) {
    const t0 = performance.now()
    for (let i = 0; i < batch; i++) fn()
    per.push(((performance.now() - t0) * 1000) / batch)
    n += batch
  }
  const secs = (performance.now() - start) / 1000
  per.sort((a, b) => a - b)
  const q = (p: number): number => per[Math.min(per.length - 1, Math.floor(p * per.length))] ?? 0
  return { name, opsPerSec: n / secs, p50us: q(0.5), p99us: q(0.99) }
}

export function printTable(rows: Result[]): void {
  const w = Math.max(...rows.map((r) => r.name.length))
  console.log(`${'benchmark'.padEnd(w)}  ${'ops/s'.padStart(12)}  ${'p50 µs'.padStart(9)}  ${'p99 µs'.padStart(9)}`)
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(w)}  ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(12)}  ${r.p50us.toFixed(3).padStart(9)}  ${r.p99us.toFixed(3).padStart(9)}`,
    )
  }
  for (const r of rows) console.error(JSON.stringify(r))
}

/** measure() for async work: awaits each call (a microtask hop per op, as a real request has). */
export async function measureAsync(name: string, fn: () => Promise<unknown>, ms = 1000, batch = 1000): Promise<Result> {
  for (let i = 0; i < batch; i++) await fn()
  const per: number[] = []
  const start = performance.now()
  let n = 0
  while (performance.now() - start < ms) {
    const t0 = performance.now()
    for (let i = 0; i < batch; i++) await fn()
    per.push(((performance.now() - t0) * 1000) / batch)
    n += batch
  }
  const secs = (performance.now() - start) / 1000
  per.sort((a, b) => a - b)
  const q = (p: number): number => per[Math.min(per.length - 1, Math.floor(p * per.length))] ?? 0
  return { name, opsPerSec: n / secs, p50us: q(0.5), p99us: q(0.99) }
}
