/*
 * SETATTR of times on a local export, one call at a time: the latency the
 * server adds to set atime and mtime with nanoseconds (the native helper)
 * or through touch(1) (TSNFS_NO_NATIVE=1 in the server's environment). The
 * two servers run as child processes and are measured alternately.
 *
 *   npm run build && npx tsx bench/setattr-times.ts [-N calls] [--runs R]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { time_how } from '../xdr/generated/nfs3.ts'
import { NfsClient } from '../client/index.ts'
import { openTarget } from './targets.ts'

interface Run {
  label: string
  meanUs: number
  p50Us: number
  p99Us: number
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}

async function measure(label: string, noNative: boolean, calls: number): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-setattr-'))
  const before = process.env.TSNFS_NO_NATIVE
  if (noNative) process.env.TSNFS_NO_NATIVE = '1'
  else delete process.env.TSNFS_NO_NATIVE
  const target = await openTarget('tsnfs-local', { process: true, exportsText: `${dir} *(rw,insecure,no_root_squash)\n` })
  if (before === undefined) delete process.env.TSNFS_NO_NATIVE
  else process.env.TSNFS_NO_NATIVE = before
  const c = await NfsClient.mount(target.url)
  try {
    const f = await c.create('/f')
    const lat: number[] = []
    for (let i = 0; i < calls; i++) {
      // Times copied from another file carry nanoseconds: the case Node's utimes cannot do.
      const t0 = process.hrtime.bigint()
      await c.nfs.call('SETATTR', {
        object: { data: f.fh },
        new_attributes: {
          mode: null, uid: null, gid: null, size: null,
          atime: { set_it: time_how.SET_TO_CLIENT_TIME, atime: { seconds: 1_600_000_000 + i, nseconds: 123_456_789 } },
          mtime: { set_it: time_how.SET_TO_CLIENT_TIME, mtime: { seconds: 1_600_000_000 + i, nseconds: 987_654_321 } },
        },
        guard: null,
      })
      lat.push(Number(process.hrtime.bigint() - t0) / 1000)
    }
    lat.sort((a, b) => a - b)
    return { label, meanUs: lat.reduce((s, x) => s + x, 0) / lat.length, p50Us: quantile(lat, 0.5), p99Us: quantile(lat, 0.99) }
  } finally {
    await c.umount()
    await target.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? 0
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { N: { type: 'string', short: 'N', default: '1000' }, runs: { type: 'string', default: '3' } } })
  const calls = Number(values.N)
  const runs = Number(values.runs)
  const byLabel = new Map<string, Run[]>()
  for (let r = 0; r < runs; r++) {
    for (const [label, noNative] of [['native helper', false], ['touch(1) fallback', true]] as const) {
      const run = await measure(label, noNative, calls)
      byLabel.set(label, [...(byLabel.get(label) ?? []), run])
      process.stdout.write(`run ${r + 1} ${label}: mean ${run.meanUs.toFixed(0)} us, p50 ${run.p50Us.toFixed(0)} us, p99 ${run.p99Us.toFixed(0)} us\n`)
    }
  }
  process.stdout.write(`\nSETATTR (atime+mtime with ns), ${calls} calls one at a time, medians of ${runs} runs:\n`)
  for (const [label, rs] of byLabel) {
    process.stdout.write(`  ${label.padEnd(18)} mean ${median(rs.map(r => r.meanUs)).toFixed(0).padStart(6)} us  p50 ${median(rs.map(r => r.p50Us)).toFixed(0).padStart(6)} us  p99 ${median(rs.map(r => r.p99Us)).toFixed(0).padStart(6)} us\n`)
  }
}

await main()
