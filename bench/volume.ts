/*
 * Volumes under the engine (issue 14 item 8): sequential write and read through NFS of the same
 * engine on one image file, on a 2-leg mirror and on a 3-member RAID-5, every image in one
 * directory (one disk), repetitions interleaved (single, mirror, raid5, then the next order …),
 * medians and the ratios mirror/single and raid5/single. Then the RAID-5 rebuild through the
 * online `volume replace` of a running server (its admin socket, as `tsnfs volume replace NAME OLD
 * NEW --admin SOCK` sends it) onto a fresh sparse image: idle, and again while a client writes and
 * reads a file sequentially through NFS from the same server.
 *
 *   npx tsx bench/volume.ts [--short] [--size MiB] [--runs N] [--dir DIR] [--fs MiB]
 *                           [--client MiB] [--layouts single,mirror,raid5] [--no-rebuild] [--json] [--keep]
 *
 * --short: 16 MiB files, 2 runs, a 256 MiB file system (the smoke test). JSON lines on stderr.
 */
import { mkdir, rm } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { raidLayoutOf } from '../cli/volume-raid.ts'
import { adminRequest } from '../server/admin/client.ts'
import { parseExports } from '../server/exports/parse.ts'
import { createServer } from '../server/index.ts'
import type { OperationProgress } from '../server/volume-registry.ts'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { makeFileSystem } from '../vfs/engine/mkfs/mkfs.ts'
import { createVolume } from '../vfs/volume/create-volume.ts'
import { MEMBER_RESERVED } from '../vfs/volume/member-format.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
import { median, round } from './results.ts'
import type { PhaseResult } from './results.ts'
import { openTarget } from './targets.ts'
import { runWorkload } from './workloads.ts'
import type { WorkloadOptions } from './workloads.ts'

const MiB = 1024 * 1024
const LAYOUTS = ['single', 'mirror', 'raid5'] as const
type Layout = (typeof LAYOUTS)[number]

export interface VolumeBenchOptions {
  dir: string
  sizeMiB: number
  runs: number
  /** File-system bytes on every layout (the volume's size; members sized to give it). */
  fsBytes: number
  /** The client's file while measuring the rebuild under load. */
  clientMiB: number
  keep: boolean
  /** Layouts of the seq table (default all three). */
  layouts: readonly Layout[]
  rebuild: boolean
  log: (line: string) => void
}

interface Made {
  exportsText: string
  paths: string[]
}

function exportLine(opts: string): string {
  return `/export  *(rw,insecure,no_root_squash,backend=engine,${opts})\n`
}

/** Image files for one layout, a volume over them when it is one, and an ext4 of `fsBytes` on top. */
async function makeLayout(dir: string, layout: Layout, fsBytes: number): Promise<Made> {
  if (layout === 'single') {
    const path = join(dir, 'single.img')
    const dev = await ImageFile.create(path, fsBytes, { overwrite: true })
    try {
      await makeFileSystem(dev, { zeroed: true, allocateJournal: true })
    } finally {
      await dev.close()
    }
    return { exportsText: exportLine(`image=${path}`), paths: [path] }
  }
  const count = layout === 'mirror' ? 2 : 3
  const dataBytes = layout === 'mirror' ? fsBytes : fsBytes / 2
  const paths = Array.from({ length: count }, (_, i) => join(dir, `${layout}-${i}.img`))
  const disks = []
  for (const path of paths) disks.push({ path, dev: await ImageFile.create(path, MEMBER_RESERVED + dataBytes, { overwrite: true }) })
  try {
    await createVolume(layout, layout, disks, { force: true })
  } finally {
    for (const d of disks) await d.dev.close()
  }
  const v = await openVolume(paths)
  try {
    // The RAID geometry `tsnfs volume mkfs` records (cli/volume-raid.ts), so file data is row-aligned.
    const raid = raidLayoutOf(v.config.root)
    await makeFileSystem(v.device, { zeroed: true, allocateJournal: true, ...(raid === undefined ? {} : { raid }) })
  } finally {
    await v.close()
  }
  return { exportsText: exportLine(`volume=${layout},disks=${paths.join(':')}`), paths }
}

function workloadOptions(label: string, sizeMiB: number): WorkloadOptions {
  return { label, files: 0, smallFiles: 0, inflight: 32, sizeMiB, reqSize: MiB, seconds: 0, stable: 'unstable' }
}

/** One seq run (UNSTABLE writes + COMMIT, then reads) against a server opened and closed here. */
async function seqOnce(layout: Layout, made: Made, sizeMiB: number): Promise<PhaseResult[]> {
  const target = await openTarget('tsnfs-engine', { process: false, exportsText: made.exportsText })
  try {
    const d = await NfsDriver.connect(parseBenchUrl(target.url))
    try {
      return await runWorkload(d, 'seq', workloadOptions(layout, sizeMiB))
    } finally {
      await d.close()
    }
  } finally {
    await target.close()
  }
}

function rate(rows: readonly PhaseResult[], phase: string): number {
  const r = rows.find((x) => x.phase === phase)
  if (r === undefined || r.errors > 0) throw new Error(`seq ${phase}: ${r === undefined ? 'missing' : `${r.errors} errors (${r.first_error ?? ''})`}`)
  return r.mib_per_s ?? 0
}

export interface SeqTable {
  write: Record<Layout, number[]>
  read: Record<Layout, number[]>
  /**
   * CPU seconds of this process (every thread, user and kernel: server, client, thread pool) per
   * run (server start, write, COMMIT, read, stop). On a machine shared with other work the rates
   * swing 3× from run to run; what a layout costs in CPU barely moves, and when the CPUs are the
   * bottleneck the rates follow it.
   */
  cpu: Record<Layout, number[]>
}

async function seqTable(o: VolumeBenchOptions, made: Record<Layout, Made>): Promise<SeqTable> {
  const table: SeqTable = { write: { single: [], mirror: [], raid5: [] }, read: { single: [], mirror: [], raid5: [] }, cpu: { single: [], mirror: [], raid5: [] } }
  for (let run = 0; run < o.runs; run++) {
    // Rotate the order so no layout always runs first (cold) or last.
    const order = o.layouts.map((_, i) => o.layouts[(i + run) % o.layouts.length] ?? 'single')
    for (const layout of order) {
      const cpu0 = process.cpuUsage()
      const rows = await seqOnce(layout, made[layout], o.sizeMiB)
      const cpu = process.cpuUsage(cpu0)
      const cpuSecs = round((cpu.user + cpu.system) / 1e6, 2)
      table.write[layout].push(rate(rows, 'write'))
      table.read[layout].push(rate(rows, 'read'))
      table.cpu[layout].push(cpuSecs)
      o.log(`run ${run + 1} ${layout}: write ${rate(rows, 'write')} MiB/s, read ${rate(rows, 'read')} MiB/s, CPU ${cpuSecs} s`)
    }
  }
  return table
}

interface ServedVolume {
  url: string
  admin: string
  close(): Promise<void>
}

/** A server in this process serving `made` (the RAID-5), with its admin socket, as `tsnfs serve` runs. */
async function serveWithAdmin(made: Made, stateDir: string): Promise<ServedVolume> {
  await mkdir(stateDir, { recursive: true })
  const admin = join(stateDir, 'admin.sock')
  const exports = parseExports(made.exportsText, '<bench volume>')
  const server = await createServer({ exports, stateDir, port: 0, host: '127.0.0.1', admin })
  return {
    url: `nfs://127.0.0.1/export?nfsport=${server.port}&mountport=${server.port}`,
    admin,
    close: () => server.close(),
  }
}

export interface RebuildResult {
  memberBytes: number
  idleMBps: number
  /** The same without the final fdatasync of the new member. */
  idleCopyMBps: number
  /** Client seq rates (MiB/s) without a rebuild, and during one. */
  clientWithout: { write: number; read: number }
  clientDuring: { write: number; read: number }
  /** Client runs that finished inside the rebuild (only those count). */
  runsDuring: number
  loadedMBps: number
}

interface Replace {
  /** Resolves with the seconds the whole replace took, its copy alone, and the member bytes rebuilt. */
  done: Promise<{ secs: number; copySecs: number; bytes: number }>
}

/**
 * `tsnfs volume replace raid5 MEMBER NEW --admin SOCK` as the CLI sends it (cli/volume-online.ts):
 * the server fails the member, records the fresh sparse image in its place and rebuilds it while
 * serving. Timed from the request to the reply (the new member flushed, the configuration
 * recorded), and the copy alone to its last progress report.
 */
async function replaceOnline(served: ServedVolume, member: number, path: string, memberBytes: number): Promise<Replace> {
  const dev = await ImageFile.create(path, MEMBER_RESERVED + memberBytes, { overwrite: true })
  await dev.close()
  const t0 = performance.now()
  let copySecs = 0
  let bytes = 0
  const onProgress = (p: OperationProgress): void => {
    bytes = p.total
    if (p.done === p.total) copySecs = (performance.now() - t0) / 1000
  }
  const done = adminRequest(served.admin, { command: 'replace', volume: 'raid5', member, disk: path }, onProgress).then((reply) => {
    if (!reply.ok) throw new Error(`replace: ${reply.code}: ${reply.message}`)
    return { secs: (performance.now() - t0) / 1000, copySecs, bytes }
  })
  return { done }
}

async function clientSeq(url: string, sizeMiB: number): Promise<{ write: number; read: number }> {
  const d = await NfsDriver.connect(parseBenchUrl(url))
  try {
    const rows = await runWorkload(d, 'seq', workloadOptions('client', sizeMiB))
    return { write: rate(rows, 'write'), read: rate(rows, 'read') }
  } finally {
    await d.close()
  }
}

async function rebuildBench(o: VolumeBenchOptions, made: Made): Promise<RebuildResult> {
  // A member's data area: the volume's half for 3 members (makeLayout).
  const memberBytes = o.fsBytes / 2
  const served = await serveWithAdmin(made, join(o.dir, 'state'))
  try {
    // Idle: nothing but the rebuild.
    const idle = await (await replaceOnline(served, 2, join(o.dir, 'raid5-new-a.img'), memberBytes)).done
    const idleMBps = idle.bytes / 1e6 / idle.secs
    const idleCopyMBps = idle.bytes / 1e6 / idle.copySecs
    o.log(`rebuild idle: ${idle.bytes} bytes in ${idle.secs.toFixed(2)} s = ${idleMBps.toFixed(1)} MB/s (copy ${idle.copySecs.toFixed(2)} s = ${idleCopyMBps.toFixed(1)} MB/s, then fdatasync)`)

    const without: { write: number; read: number }[] = []
    for (let i = 0; i < 3; i++) without.push(await clientSeq(served.url, o.clientMiB))
    const loaded = await replaceOnline(served, 0, join(o.dir, 'raid5-new-b.img'), memberBytes)
    const state = { finished: false }
    const finish = (): void => {
      state.finished = true
    }
    void loaded.done.then(finish, finish)
    const during: { write: number; read: number }[] = []
    let runs = 0
    const rebuilding = (): boolean => !state.finished
    while (rebuilding()) {
      const r = await clientSeq(served.url, o.clientMiB)
      runs++
      // Only a run wholly inside the rebuild counts.
      if (rebuilding()) during.push(r)
    }
    const l = await loaded.done
    const loadedMBps = l.bytes / 1e6 / l.secs
    o.log(`rebuild under load: ${l.bytes} bytes in ${l.secs.toFixed(2)} s = ${loadedMBps.toFixed(1)} MB/s; ${during.length} of ${runs} client runs inside it`)
    return {
      memberBytes: idle.bytes,
      idleMBps,
      idleCopyMBps,
      clientWithout: { write: median(without.map((x) => x.write)), read: median(without.map((x) => x.read)) },
      clientDuring: { write: median(during.map((x) => x.write)), read: median(during.map((x) => x.read)) },
      runsDuring: during.length,
      loadedMBps,
    }
  } finally {
    await served.close()
  }
}

export interface VolumeBenchResult {
  seq: SeqTable
  rebuild?: RebuildResult
  loadBefore: number[]
  loadAfter: number[]
}

export async function volumeBench(o: VolumeBenchOptions): Promise<VolumeBenchResult> {
  await rm(o.dir, { recursive: true, force: true })
  await mkdir(o.dir, { recursive: true })
  const loadBefore = loadavg()
  try {
    const made = {} as Record<Layout, Made>
    for (const layout of new Set([...o.layouts, ...(o.rebuild ? ['raid5' as const] : [])])) made[layout] = await makeLayout(o.dir, layout, o.fsBytes)
    const seq = await seqTable(o, made)
    const rebuild = o.rebuild ? await rebuildBench(o, made.raid5) : undefined
    return { seq, ...(rebuild === undefined ? {} : { rebuild }), loadBefore, loadAfter: loadavg() }
  } finally {
    if (!o.keep) await rm(o.dir, { recursive: true, force: true })
  }
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(1) : '—'
}

export function report(r: VolumeBenchResult, o: VolumeBenchOptions): string {
  const lines: string[] = []
  const m = (phase: 'write' | 'read', l: Layout): number => median(r.seq[phase][l])
  lines.push(`seq through NFS, ${o.sizeMiB} MiB file, ${o.runs} interleaved runs, medians (MiB/s); load ${r.loadBefore.map((x) => x.toFixed(2)).join(' ')} → ${r.loadAfter.map((x) => x.toFixed(2)).join(' ')}`)
  lines.push('| phase | single | mirror | raid5 | mirror/single (≥ 0.8) | raid5/single (≥ 0.7) |')
  lines.push('|---|---|---|---|---|---|')
  for (const phase of ['write', 'read'] as const) {
    const s = m(phase, 'single')
    lines.push(`| ${phase} | ${fmt(s)} | ${fmt(m(phase, 'mirror'))} | ${fmt(m(phase, 'raid5'))} | ${(m(phase, 'mirror') / s).toFixed(2)} | ${(m(phase, 'raid5') / s).toFixed(2)} |`)
  }
  // single ÷ layout: the rate ratio the CPU cost alone would give (higher is cheaper).
  const c = (l: Layout): number => median(r.seq.cpu[l])
  lines.push(`| CPU s per run (write + read) | ${fmt(c('single'))} | ${fmt(c('mirror'))} | ${fmt(c('raid5'))} | ${(c('single') / c('mirror')).toFixed(2)} | ${(c('single') / c('raid5')).toFixed(2)} |`)
  const b = r.rebuild
  if (b === undefined) return lines.join('\n')
  lines.push('')
  lines.push(`RAID-5 rebuild (online replace), member of ${round(b.memberBytes / MiB, 0)} MiB: idle ${fmt(b.idleMBps)} MB/s (≥ 50; the copy alone, before the new member's fdatasync: ${fmt(b.idleCopyMBps)}); under load ${fmt(b.loadedMBps)} MB/s`)
  lines.push(`client ${o.clientMiB} MiB seq during the rebuild (${b.runsDuring} runs) ÷ without: write ${fmt(b.clientDuring.write)}/${fmt(b.clientWithout.write)} = ${(b.clientDuring.write / b.clientWithout.write).toFixed(2)}, read ${fmt(b.clientDuring.read)}/${fmt(b.clientWithout.read)} = ${(b.clientDuring.read / b.clientWithout.read).toFixed(2)} (≥ 0.5)`)
  return lines.join('\n')
}

function parseLayouts(text: string): Layout[] {
  const names = text.split(',')
  const bad = names.find((n) => !(LAYOUTS as readonly string[]).includes(n))
  if (bad !== undefined) throw new Error(`--layouts: ${LAYOUTS.join(', ')}; got "${bad}"`)
  return names as Layout[]
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      short: { type: 'boolean' },
      size: { type: 'string' },
      runs: { type: 'string' },
      dir: { type: 'string' },
      fs: { type: 'string' },
      client: { type: 'string' },
      json: { type: 'boolean' },
      keep: { type: 'boolean' },
      layouts: { type: 'string' },
      'no-rebuild': { type: 'boolean' },
    },
  })
  const short = values.short === true
  const o: VolumeBenchOptions = {
    dir: values.dir ?? '/tmp/tsnfs-bench-volume',
    sizeMiB: Number(values.size ?? (short ? 16 : 256)),
    runs: Number(values.runs ?? (short ? 2 : 5)),
    fsBytes: Number(values.fs ?? (short ? 256 : 2048)) * MiB,
    clientMiB: Number(values.client ?? (short ? 8 : 64)),
    keep: values.keep === true,
    layouts: parseLayouts(values.layouts ?? LAYOUTS.join(',')),
    rebuild: values['no-rebuild'] !== true,
    log: (line) => process.stderr.write(`${line}\n`),
  }
  for (const [k, v] of Object.entries(o)) if (typeof v === 'number' && !(Number.isSafeInteger(v) && v > 0)) throw new Error(`--${k}: a positive integer, got ${v}`)
  if (o.fsBytes < 4 * o.sizeMiB * MiB) throw new Error(`--fs ${o.fsBytes / MiB} MiB is too small for a ${o.sizeMiB} MiB file`)
  const r = await volumeBench(o)
  if (values.json === true) process.stderr.write(`${JSON.stringify(r)}\n`)
  process.stdout.write(`${report(r, o)}\n`)
}

if (import.meta.filename === process.argv[1]) await main()
