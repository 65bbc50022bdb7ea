/*
 * Durable CREATE and REMOVE on the engine in one process (issue 13 item 7): a fresh image made by
 * our mkfs in a sparse temp file (same disk as the e2e bench's), K callers each with one request
 * in flight (as nfsprobe's K=32), N files in one directory, created then removed. Reports ops/s,
 * CPU µs per op, device flushes per 1,000 ops, the mean flush time, and the main thread's idle
 * fraction (event-loop utilization): where the wall time goes when the server is not CPU-bound.
 *
 *   npx tsx bench/engine-create.bench.ts [N] [K]      (defaults 5000 32)
 *   ENGINE_BENCH_PROF=FILE: also a V8 CPU profile of the create and remove phases.
 *
 * The engine's vfs is called directly (not through NFS dispatch) so that the device can be
 * wrapped to count flushes; dispatch adds per-call CPU but does not change how changes wait.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { startProfile } from './cpu-profile.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { PassThroughDevice } from '../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../vfs/engine/fs/assemble.ts'
import type { FileRef } from '../vfs/types.ts'
import { makeEngineImage } from './targets.ts'

/** Counts flushes and the time spent in them. */
class CountingDevice extends PassThroughDevice {
  flushes = 0
  flushMs = 0
  reads = 0
  writes = 0
  override readInto(offset: number, target: Uint8Array): Promise<void> {
    this.reads++
    return this.inner.readInto(offset, target)
  }

  override read(offset: number, length: number): Promise<Buffer> {
    this.reads++
    return this.inner.read(offset, length)
  }

  override write(offset: number, data: Uint8Array): Promise<void> {
    this.writes++
    return this.inner.write(offset, data)
  }

  override async flush(): Promise<void> {
    const t0 = performance.now()
    await this.inner.flush()
    this.flushMs += performance.now() - t0
    this.flushes++
  }
}

export interface PhaseResult {
  phase: string
  ops: number
  opsPerSec: number
  cpuUsPerOp: number
  flushesPer1000: number
  readsPer1000: number
  writesPer1000: number
  meanFlushMs: number
  idle: number
}

async function phase(name: string, dev: CountingDevice, n: number, k: number, op: (i: number) => Promise<unknown>): Promise<PhaseResult> {
  let next = 0
  const f0 = dev.flushes
  const r0 = dev.reads
  const w0 = dev.writes
  const fms0 = dev.flushMs
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: k }, async () => {
    while (next < n) await op(next++)
  }))
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const elu = performance.eventLoopUtilization(elu0)
  const flushes = dev.flushes - f0
  return {
    phase: name,
    ops: n,
    opsPerSec: n / (ms / 1000),
    cpuUsPerOp: (cpu.user + cpu.system) / n,
    flushesPer1000: (flushes / n) * 1000,
    readsPer1000: ((dev.reads - r0) / n) * 1000,
    writesPer1000: ((dev.writes - w0) / n) * 1000,
    meanFlushMs: flushes === 0 ? 0 : (dev.flushMs - fms0) / flushes,
    idle: 1 - elu.utilization,
  }
}

export async function engineCreateBench(n = 5000, k = 32): Promise<PhaseResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-engine-create-'))
  const image = join(dir, 'engine.img')
  try {
    await makeEngineImage(image, 4 * 1024 ** 3)
    const dev = new CountingDevice(await ImageFile.open(image))
    const vfs = await openEngineOn(dev)
    const owner = { uid: 0, gid: 0 }
    const results: PhaseResult[] = []
    try {
      const { ref: d } = await vfs.mkdir(vfs.root(), Buffer.from('d'), {}, owner)
      const names = Array.from({ length: n }, (_, i) => Buffer.from(`file.${i}`))
      const made: FileRef[] = []
      const stop = await startProfile(process.env.ENGINE_BENCH_PROF)
      results.push(await phase('create', dev, n, k, async (i) => {
        made[i] = (await vfs.create(d, names[i] as Buffer, { how: 'guarded', attr: {} }, owner)).ref
      }))
      results.push(await phase('remove', dev, n, k, (i) => vfs.remove(d, names[i] as Buffer)))
      await stop()
    } finally {
      await vfs.close()
    }
    return results
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const n = Number(process.argv[2] ?? 5000)
  const k = Number(process.argv[3] ?? 32)
  const rows = await engineCreateBench(n, k)
  console.log(`N=${n} K=${k}`)
  console.log('phase    ops/s  CPU µs/op  flushes/1000 ops  mean flush ms  reads/1000  writes/1000  main idle')
  for (const r of rows) {
    console.log(`${r.phase.padEnd(6)} ${Math.round(r.opsPerSec).toString().padStart(7)}  ${r.cpuUsPerOp.toFixed(0).padStart(9)}  ${r.flushesPer1000.toFixed(0).padStart(16)}  ${r.meanFlushMs.toFixed(2).padStart(13)}  ${r.readsPer1000.toFixed(0).padStart(10)}  ${r.writesPer1000.toFixed(0).padStart(11)}  ${(r.idle * 100).toFixed(0).padStart(8)} %`)
  }
}
