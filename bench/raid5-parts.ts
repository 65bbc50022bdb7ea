/*
 * What a RAID-5 sequential write costs, part by part (issue 14 item 8): the same bytes written
 * sequentially (1 MiB requests, 32 in flight, as the NFS seq workload sends them) straight into
 * the block devices, no NFS, no engine, in these modes:
 *
 *   single            one sparse image file
 *   raid5             a 3-member RAID-5 (`volume create` defaults: 64 KiB unit, intent bitmap)
 *   raid5-nobitmap    the same without the write-intent bitmap
 *   raid5-noparity    parity computed, but each member drops the writes of its parity units
 *                     (bench/parity-dropping.ts: a member wrapper, not in the shipped path)
 *   single-flush, raid5-flush   a flush after every request instead of one at the end
 *   engine-single, engine-raid5 the engine on top (one file, UNSTABLE writes, one COMMIT), no NFS
 *   xor               xorOf alone: two 64 KiB data units into a parity unit, in memory
 *
 *   npx tsx bench/raid5-parts.ts [--size MiB] [--runs N] [--inflight N] [--region MiB] [--dir DIR] [--modes a,b,…] [--json]
 *
 * Every mode runs on fresh sparse images, the modes interleaved run by run (the order rotated);
 * medians in MB/s (10^6 bytes of the client's data per second) and the ratio to `single`.
 */
import { mkdir, rm } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { raidLayoutOf } from '../cli/volume-raid.ts'
import type { BlockDevice } from '../vfs/engine/blockdev/block-device.ts'
import type { RaidLayout } from '../vfs/engine/mkfs/raid.ts'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { openEngineOn } from '../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../vfs/engine/mkfs/mkfs.ts'
import { createVolume } from '../vfs/volume/create-volume.ts'
import { MEMBER_RESERVED } from '../vfs/volume/member-format.ts'
import { openVolumeOn } from '../vfs/volume/open-volume.ts'
import { xorOf } from '../vfs/volume/parity.ts'
import { DEFAULT_UNIT } from '../vfs/volume/layer.ts'
import { ParityDropping } from './parity-dropping.ts'
import { median } from './results.ts'

const MiB = 1024 * 1024
export const MODES = ['single', 'raid5', 'raid5-nobitmap', 'raid5-noparity', 'single-flush', 'raid5-flush', 'engine-single', 'engine-raid5', 'xor'] as const
export type Mode = (typeof MODES)[number]

export interface PartsOptions {
  dir: string
  sizeMiB: number
  runs: number
  modes: readonly Mode[]
  log: (line: string) => void
}

const REQ = MiB
/** Requests in flight: 32 as the NFS client sends them; the engine serialises its writes (one device write at a time), so `--inflight 1` is what the volume sees under it. */
let INFLIGHT = 32
/** `--region MiB`: the intent bitmap's region (default: `volume create`'s, 64 MiB here). */
let REGION_MIB: number | undefined

/** Writes `total` bytes from 0 in REQ-sized requests, INFLIGHT at once; `after` runs after each. */
async function stream(total: number, write: (offset: number, data: Buffer) => Promise<void>, after?: () => Promise<void>): Promise<void> {
  const data = Buffer.alloc(REQ, 0x5a)
  for (let i = 0; i < REQ; i += 4096) data.writeUInt32LE(i, i)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      const at = next
      next += REQ
      const began = performance.now()
      await write(at, data.subarray(0, Math.min(REQ, total - at)))
      if (after !== undefined) await after()
      took.push({ at, ms: performance.now() - began })
    }
  }
  const took: { at: number; ms: number }[] = []
  await Promise.all(Array.from({ length: INFLIGHT }, worker))
  // Where the stream waited: the slowest requests and where they were (a region crossing of the
  // intent bitmap shows as one request at a region boundary taking a whole flush).
  const sorted = [...took].sort((a, b) => a.ms - b.ms)
  const slow = sorted.slice(-3).reverse()
  const sum = took.reduce((s, x) => s + x.ms, 0)
  streamLog?.(
    `  requests: median ${(sorted[Math.floor(sorted.length / 2)]?.ms ?? 0).toFixed(2)} ms, slowest ${slow.map((x) => `${x.ms.toFixed(0)} ms at ${x.at / MiB} MiB`).join(', ')}; the 3 slowest ${((100 * slow.reduce((s, x) => s + x.ms, 0)) / sum).toFixed(0)} % of the time`,
  )
}

/** Where stream() reports its slowest requests (set by main). */
let streamLog: ((line: string) => void) | undefined

interface Volume {
  dev: BlockDevice
  /** The geometry `tsnfs volume mkfs` records, so the engine's file data is row-aligned. */
  raid?: RaidLayout
  close(): Promise<void>
}

/** A 3-member RAID-5 of image files giving `volumeBytes`, made with `volume create` and opened. */
async function raid5(dir: string, volumeBytes: number, opts: { bitmap: boolean; dropParity: boolean }): Promise<Volume> {
  const paths = [0, 1, 2].map((i) => join(dir, `m${i}.img`))
  const made = []
  for (const path of paths) made.push({ path, dev: await ImageFile.create(path, MEMBER_RESERVED + volumeBytes / 2, { overwrite: true }) })
  try {
    await createVolume('parts', 'raid5', made, { force: true, intentBitmap: opts.bitmap, ...(REGION_MIB === undefined ? {} : { regionSize: REGION_MIB * MiB }) })
  } finally {
    for (const d of made) await d.dev.close()
  }
  const disks = []
  for (const [i, path] of paths.entries()) {
    const dev = await ImageFile.open(path)
    disks.push({ path, dev: opts.dropParity ? new ParityDropping(dev, { index: i, members: 3, unit: DEFAULT_UNIT, dataOffset: MEMBER_RESERVED }) : dev })
  }
  const v = await openVolumeOn(disks)
  const raid = raidLayoutOf(v.config.root)
  return { dev: v.device, ...(raid === undefined ? {} : { raid }), close: () => v.close() }
}

async function single(dir: string, bytes: number): Promise<Volume> {
  const dev = await ImageFile.create(join(dir, 'single.img'), bytes, { overwrite: true })
  return { dev, close: () => dev.close() }
}

/** Seconds to write `total` bytes through the device, flushed (per request or once at the end). */
async function direct(v: Volume, total: number, flushEach: boolean, log: (line: string) => void): Promise<number> {
  const cpu0 = process.cpuUsage()
  const f0 = process.resourceUsage().minorPageFault
  const t0 = performance.now()
  await stream(total, (at, d) => v.dev.write(at, d), flushEach ? () => v.dev.flush() : undefined)
  const t1 = performance.now()
  await v.dev.flush()
  const t2 = performance.now()
  log(`  writes ${((t1 - t0) / 1000).toFixed(3)} s, last flush ${((t2 - t1) / 1000).toFixed(3)} s; ${cpuLine(cpu0, total)}, ${process.resourceUsage().minorPageFault - f0} page faults`)
  return (t2 - t0) / 1000
}

/** Seconds for the engine on `v` to take one file of `total` bytes: UNSTABLE writes, one COMMIT. */
async function throughEngine(v: Volume, total: number, log: (line: string) => void): Promise<number> {
  await makeFileSystem(v.dev, { zeroed: true, allocateJournal: true, ...(v.raid === undefined ? {} : { raid: v.raid }) })
  const e = await openEngineOn(v.dev)
  try {
    const owner = { uid: 0, gid: 0 }
    const { ref } = await e.create(e.root(), Buffer.from('f'), { how: 'unchecked', attr: {} }, owner)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await stream(total, async (at, d) => {
      await e.write(ref, BigInt(at), d, 'unstable')
    })
    const t1 = performance.now()
    await e.commit(ref)
    const t2 = performance.now()
    log(`  writes ${((t1 - t0) / 1000).toFixed(3)} s, COMMIT ${((t2 - t1) / 1000).toFixed(3)} s; ${cpuLine(cpu0, total)}`)
    return (t2 - t0) / 1000
  } finally {
    await e.close()
  }
}

/**
 * The process's CPU time (every thread: the main one and the thread pool's, user and kernel) per
 * GiB written since `from`. On a machine shared with other work the wall time swings 3× between
 * runs; the CPU a mode spends per byte barely moves, and it is what the mode costs when the CPUs
 * are the bottleneck.
 */
function cpuLine(from: NodeJS.CpuUsage, total: number): string {
  const d = process.cpuUsage(from)
  const perGiB = (us: number): string => ((us / 1e6) * (1024 * MiB / total)).toFixed(2)
  return `CPU per GiB: user ${perGiB(d.user)} s, system ${perGiB(d.system)} s`
}

function xorSeconds(total: number): number {
  const a = Buffer.alloc(DEFAULT_UNIT, 1)
  const b = Buffer.alloc(DEFAULT_UNIT, 2)
  const p = Buffer.alloc(DEFAULT_UNIT)
  const t0 = performance.now()
  // One parity unit per two data units, as raid5/write-path.ts computes a 3-member stripe's parity.
  for (let done = 0; done < total; done += 2 * DEFAULT_UNIT) xorOf(p, [a, b])
  return (performance.now() - t0) / 1000
}

async function once(mode: Mode, dir: string, total: number, log: (line: string) => void): Promise<number> {
  if (mode === 'xor') return xorSeconds(total)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  const engine = mode.startsWith('engine-')
  // The engine needs room beside its file (journal, metadata): four times the file.
  const bytes = engine ? 4 * total : total + 4 * MiB
  const r5 = mode.startsWith('raid5') || mode === 'engine-raid5'
  const v = r5 ? await raid5(dir, bytes, { bitmap: mode !== 'raid5-nobitmap', dropParity: mode === 'raid5-noparity' }) : await single(dir, bytes)
  try {
    return engine ? await throughEngine(v, total, log) : await direct(v, total, mode.endsWith('-flush'), log)
  } finally {
    await v.close()
    await rm(dir, { recursive: true, force: true })
  }
}

export type PartsResult = Record<string, number[]>

export async function partsBench(o: PartsOptions): Promise<PartsResult> {
  const total = o.sizeMiB * MiB
  const out: PartsResult = {}
  for (let run = 0; run < o.runs; run++) {
    const order = o.modes.map((_, i) => o.modes[(i + run) % o.modes.length] ?? 'single')
    for (const mode of order) {
      const secs = await once(mode, join(o.dir, mode), total, o.log)
      const mbps = total / 1e6 / secs
      ;(out[mode] ??= []).push(mbps)
      o.log(`run ${run + 1} ${mode}: ${mbps.toFixed(1)} MB/s`)
    }
  }
  return out
}

export function partsReport(r: PartsResult, o: PartsOptions, load: readonly number[]): string {
  const base = median(r.single ?? [])
  const lines = [`${o.sizeMiB} MiB sequential, 1 MiB requests, ${INFLIGHT} in flight, ${o.runs} interleaved runs, medians; load ${load.map((x) => x.toFixed(2)).join(' ')}`]
  lines.push('| mode | MB/s | ÷ single | runs |', '|---|---|---|---|')
  for (const mode of o.modes) {
    const m = median(r[mode] ?? [])
    const ratio = mode === 'xor' || mode === 'engine-raid5' ? (mode === 'engine-raid5' ? m / median(r['engine-single'] ?? []) : NaN) : m / base
    const runs = (r[mode] ?? []).map((x) => x.toFixed(0)).join(' ')
    lines.push(`| ${mode} | ${m.toFixed(1)} | ${Number.isFinite(ratio) ? ratio.toFixed(2) + (mode === 'engine-raid5' ? ' (÷ engine-single)' : '') : '—'} | ${runs} |`)
  }
  return lines.join('\n')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { size: { type: 'string' }, runs: { type: 'string' }, inflight: { type: 'string' }, region: { type: 'string' }, dir: { type: 'string' }, modes: { type: 'string' }, json: { type: 'boolean' } },
  })
  const modes = (values.modes ?? MODES.join(',')).split(',')
  const bad = modes.find((m) => !(MODES as readonly string[]).includes(m))
  if (bad !== undefined) throw new Error(`--modes: ${MODES.join(', ')}; got "${bad}"`)
  const o: PartsOptions = {
    dir: values.dir ?? '/tmp/tsnfs-bench-raid5-parts',
    sizeMiB: Number(values.size ?? 256),
    runs: Number(values.runs ?? 3),
    modes: modes as Mode[],
    log: (line) => process.stderr.write(`${line}\n`),
  }
  if (!Number.isSafeInteger(o.sizeMiB) || o.sizeMiB <= 0 || !Number.isSafeInteger(o.runs) || o.runs <= 0) throw new Error('--size and --runs: positive integers')
  INFLIGHT = Number(values.inflight ?? 32)
  if (!Number.isSafeInteger(INFLIGHT) || INFLIGHT <= 0) throw new Error('--inflight: a positive integer')
  streamLog = o.log
  REGION_MIB = values.region === undefined ? undefined : Number(values.region)
  const load = loadavg()
  const r = await partsBench(o)
  if (values.json === true) process.stderr.write(`${JSON.stringify(r)}\n`)
  process.stdout.write(`${partsReport(r, o, [...load, ...loadavg()])}\n`)
}

if (import.meta.filename === process.argv[1]) await main()
