/**
 * The change log's group commit (server/replication/change-log.ts):
 * `npx tsx bench/replication-log.ts [--dir DIR] [--seconds S]`.
 *
 * N appenders each loop append -> await durable(seq), for S seconds (default 3) per N, on a log
 * in a fresh directory under DIR (default the OS temp dir; put it on the disk the state
 * directory will use: fdatasync on tmpfs costs nothing). Prints appends/s, fdatasyncs (and
 * directory fsyncs) per 1,000 appends, and the latency of durable() (p50/p99).
 * The change is a logged WRITE (no data, one times entry: 72 bytes of XDR, 88 framed),
 * the common case of a busy export.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ChangeLog } from '../server/replication/change-log.ts'
import type { Change } from '../vfs/replica/change.ts'

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at > 0 ? process.argv[at + 1] : undefined
}

function change(i: number): Change {
  return {
    op: 'write',
    ref: { id: BigInt(1000 + (i % 64)), gen: 1 },
    offset: BigInt(i) * 4096n,
    length: 4096,
    data: null,
    times: [{ ref: { id: BigInt(1000 + (i % 64)), gen: 1 }, atime: { sec: 1_700_000_000, nsec: i }, mtime: { sec: 1_700_000_000, nsec: i } }],
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0
}

async function run(base: string, appenders: number, seconds: number): Promise<void> {
  const dir = await mkdtemp(join(base, 'tsnfs-bench-log-'))
  try {
    const log = await ChangeLog.open({ dir, exportId: 1 })
    const latencies: number[] = []
    const deadline = performance.now() + seconds * 1000
    const start = performance.now()
    await Promise.all(
      Array.from({ length: appenders }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now()
          const seq = log.append(change(latencies.length))
          await log.durable(seq)
          latencies.push(performance.now() - t0)
        }
      }),
    )
    const secs = (performance.now() - start) / 1000
    const s = log.stats()
    await log.close()
    latencies.sort((a, b) => a - b)
    const n = latencies.length
    console.log(
      [
        String(appenders).padStart(9),
        String(n).padStart(8),
        (n / secs).toFixed(0).padStart(10),
        ((s.syncs * 1000) / n).toFixed(1).padStart(16),
        ((s.groups * 1000) / n).toFixed(1).padStart(15),
        (percentile(latencies, 0.5) * 1000).toFixed(0).padStart(9),
        (percentile(latencies, 0.99) * 1000).toFixed(0).padStart(9),
      ].join('  '),
    )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function main(): Promise<void> {
  const base = arg('--dir') ?? tmpdir()
  const seconds = Number(arg('--seconds') ?? 3)
  console.log(`change log group commit, ${String(seconds)} s per row, in ${base}`)
  const head = ['appenders', 'appends', 'appends/s', 'fsyncs/1000', 'groups/1000', 'p50 µs', 'p99 µs']
  console.log(head.map((h, i) => h.padStart([9, 8, 10, 16, 15, 9, 9][i] ?? 9)).join('  '))
  for (const n of [1, 32]) await run(base, n, seconds)
}

if (import.meta.filename === process.argv[1]) await main()
