/*
 * tsnfs bench copy: large files as people move them, against one server in
 * one run. Each run times, in alternating order so machine drift cancels
 * out in the ratios:
 *   up     `nfs-cp SRC URL` (libnfs-utils), `tsnfs cp SRC URL`, and the
 *          library doing what tsnfs cp does, in this process (no Node
 *          start-up: NfsClient, block buffers from its pool handed over,
 *          COMMIT at close)
 *   down   `nfs-cp URL DST`, `tsnfs cp URL DST`, and the library
 *   mount  `dd bs=1M` and `cp` onto a `tsnfs mount` of the same export
 *          (both end with close(2), which writes out and COMMITs), against
 *          the library's upload of the same run
 * With `before` (another build's dist/cli/main.js), that build's `tsnfs cp`
 * runs in the same rotation both ways (an A/B of the CLI in one session).
 * Each `tsnfs cp` runs as installed: the bin/tsnfs.cjs beside the build.
 * It reports each one's median, and the ratios of the medians as speed
 * ratios: tsnfs cp against nfs-cp (≥ 1 means at least as fast), the mount
 * against the library; and the CPU time (user + system) of each tool the same
 * way, the figure to trust on a busy machine, where wall times move by
 * several times between runs of one command. Every copy is checked
 * byte-exact at the end of its run.
 */
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { NfsClient } from '../client/index.ts'
import { Progress } from '../cli/progress.ts'
import { download, upload } from '../cli/transfer.ts'
import { median } from './results.ts'
import { openTarget } from './targets.ts'

const MIB = 1024 * 1024

export interface CopyBenchOptions {
  /** A target as for the other workloads: tsnfs-memory (default), tsnfs-BACKEND or an nfs:// URL. */
  target: string
  sizeMiB: number
  runs: number
  /** Also time writes through a FUSE mount (needs root and /dev/fuse). */
  mount: boolean
  /** Run our server as a child process (default), so it does not share the client's CPU time. */
  process: boolean
  nfsCp: string
  /** Another build's CLI entry (dist/cli/main.js): its `tsnfs cp` is timed too, as 'tsnfs cp (before)'. */
  before?: string
  /** Where the source, the downloads and the mount point go (default: a new temp directory). */
  workDir?: string
  log?: (line: string) => void
}

export interface CopyRow {
  /** 'up', 'down', 'mount-dd', 'mount-cp'. */
  phase: string
  /** What the row is measured against ('nfs-cp' or 'library'), and the tool measured. */
  reference: string
  tool: string
  reference_s: number[]
  tool_s: number[]
  reference_median_s: number
  tool_median_s: number
  reference_mib_per_s: number
  tool_mib_per_s: number
  /** reference_median_s / tool_median_s: ≥ 1 means the tool is at least as fast. */
  speed_ratio: number
  /** CPU seconds (user + system) of each run: a command's whole process, the library's copy alone. */
  reference_cpu_s: number[]
  tool_cpu_s: number[]
  reference_cpu_median_s: number
  tool_cpu_median_s: number
}

/** Wall and CPU (user + system) seconds of one timed copy. */
export interface Timing {
  s: number
  cpu: number
}

/** The CLI entry: dist/cli/main.js from the sources' bench/ or from dist/bench/. */
function cliEntry(): string {
  const here = import.meta.dirname
  const entry = resolve(here, '..', here.endsWith(join('dist', 'bench')) ? '' : 'dist', 'cli', 'main.js')
  if (!existsSync(entry)) throw new Error(`${entry} not found: run npm run build first`)
  return entry
}

/** The installed command beside a build's dist/cli/main.js: bin/tsnfs.cjs (bin/tsnfs.js before session 37), which runs the bundle (dist/bundle/) when it is current. */
function installedEntry(cli: string): string {
  for (const name of ['tsnfs.cjs', 'tsnfs.js']) {
    const bin = resolve(cli, '..', '..', '..', 'bin', name)
    if (existsSync(bin)) return bin
  }
  return cli
}

const run = promisify(execFile)

/**
 * Seconds a command takes, and its CPU seconds: bash runs it and then
 * `times`, whose last line is its children's user and system time (no
 * /usr/bin/time needed). A failure throws with the command's stderr.
 */
async function timed(cmd: string, args: string[]): Promise<Timing> {
  const t0 = process.hrtime.bigint()
  let out: string
  try {
    out = (await run('bash', ['-c', '"$@" >/dev/null && times', 'timed', cmd, ...args], { maxBuffer: 1024 * 1024 })).stdout
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`${cmd} ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err })
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  return { s, cpu: childCpu(out) }
}

/** The CPU seconds in the last line of bash's `times` ("0m0.120s 0m0.050s": the children's user and system time). */
export function childCpu(times: string): number {
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(times)
  if (m === null) throw new Error(`no CPU times in ${JSON.stringify(times)}`)
  // Whole milliseconds, as bash prints them (no float residue in sums).
  return Math.round((Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000) / 1000
}

async function timedFn(fn: () => Promise<void>): Promise<Timing> {
  const t0 = process.hrtime.bigint()
  const c0 = process.cpuUsage()
  await fn()
  const c = process.cpuUsage(c0)
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, cpu: (c.user + c.system) / 1e6 }
}

/** nfs://host/export?query → nfs://host/export/name?query */
function fileUrl(url: string, name: string): string {
  const u = new URL(url)
  return `nfs://${u.host}${u.pathname.replace(/\/$/, '')}/${name}${u.search}`
}

/** cmp(1): byte-exact without loading 256 MiB files into this process (its memory would weigh on the runs). */
async function sameBytes(a: string, b: string): Promise<boolean> {
  return run('cmp', ['-s', a, b]).then(
    () => true,
    () => false,
  )
}

/**
 * The library's side of a run, in a fresh process like tsnfs cp but timed
 * from after the mount (`tsnfs bench copy-lib up|down SRC DST`): what
 * tsnfs cp does minus Node's start-up, the client's mount and its exit.
 */
export async function libraryCopy(direction: 'up' | 'down', src: string, dst: string): Promise<Timing> {
  // The URL names the file; the client splits it into export and path (c.path), as tsnfs cp does.
  const c = await NfsClient.mount(direction === 'up' ? dst : src)
  try {
    return await timedFn(async () => {
      if (direction === 'up') await upload(src, await c.open(c.path, 'w'), new Progress(0, null))
      else await download(await c.open(c.path, 'r'), dst, 0o644, new Progress(0, null))
    })
  } finally {
    await c.umount()
  }
}

async function timedLibrary(cli: string, direction: string, src: string, dst: string): Promise<Timing> {
  let out: { stdout: string }
  try {
    out = await run(process.execPath, [cli, 'bench', 'copy-lib', direction, src, dst])
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`copy-lib ${direction}: ${(e.stderr ?? '').trim() || e.message}`, { cause: err })
  }
  // "SECONDS CPU-SECONDS" (cli/bench.ts copy-lib).
  const [s, cpu] = out.stdout.trim().split(' ').map(Number)
  if (s === undefined || cpu === undefined || !Number.isFinite(s) || !Number.isFinite(cpu)) throw new Error(`copy-lib ${direction}: unexpected output ${JSON.stringify(out.stdout)}`)
  return { s, cpu }
}

function row(phase: string, reference: string, tool: string, refT: Timing[], gotT: Timing[], mib: number): CopyRow {
  const ref = refT.map(x => x.s)
  const got = gotT.map(x => x.s)
  const r = median(ref)
  const g = median(got)
  return {
    phase,
    reference,
    tool,
    reference_s: ref,
    tool_s: got,
    reference_median_s: r,
    tool_median_s: g,
    reference_mib_per_s: mib / r,
    tool_mib_per_s: mib / g,
    speed_ratio: r / g,
    reference_cpu_s: refT.map(x => x.cpu),
    tool_cpu_s: gotT.map(x => x.cpu),
    reference_cpu_median_s: median(refT.map(x => x.cpu)),
    tool_cpu_median_s: median(gotT.map(x => x.cpu)),
  }
}

/** The tools of one phase, in the order of this run: each run starts one further along, so every tool goes first as often. */
function rotated<T>(items: readonly T[], runNo: number): T[] {
  const k = runNo % items.length
  return [...items.slice(k), ...items.slice(0, k)]
}

export async function copyBench(o: CopyBenchOptions): Promise<CopyRow[]> {
  const log = o.log ?? (() => undefined)
  const cli = cliEntry()
  // tsnfs cp as it is installed (the bundle); the rest (mount, the library's copy) from dist/cli/.
  const bin = installedEntry(cli)
  const work = o.workDir ?? (await mkdtemp(join(tmpdir(), 'tsnfs-bench-copy-')))
  await mkdir(work, { recursive: true })
  const target = await openTarget(o.target, { process: o.process })
  const src = join(work, 'source')
  // Random bytes: nothing on the way can compress or skip them.
  const fd = await open(src, 'w')
  for (let i = 0; i < o.sizeMiB; i++) await fd.write(randomBytes(MIB))
  await fd.close()
  const mnt = join(work, 'mnt')
  const times = new Map<string, Timing[]>()
  const note = (key: string, s: Timing): void => {
    times.set(key, [...(times.get(key) ?? []), s])
  }
  let client: NfsClient | null = null
  let mounted = false
  try {
    // Other clients create the files it removes: no caching that could hide them.
    const c = await NfsClient.mount(target.url, { noac: true, lookupcache: 'none' })
    client = c
    if (o.mount) {
      await mkdir(mnt, { recursive: true })
      const u = new URL(target.url)
      const port = u.searchParams.get('nfsport') ?? '2049'
      const mport = u.searchParams.get('mountport') ?? port
      await run(process.execPath, [cli, 'mount', '-o', `port=${port},mountport=${mport}`, `${u.hostname}:${u.pathname}`, mnt])
      mounted = true
    }
    const check = join(work, 'check')
    /** An uploaded file byte-exact (read back through nfs-cp, untimed), then removed: every upload finds the server as the first did. */
    const verifyUp = async (name: string): Promise<void> => {
      await rm(check, { force: true })
      await run(o.nfsCp, [fileUrl(target.url, name), check])
      if (!(await sameBytes(src, check))) throw new Error(`${name} came back different`)
      await c.rm(`/${name}`, { force: true })
    }
    // What every download reads.
    await run(o.nfsCp, [src, fileUrl(target.url, 'down')])
    const up: Record<string, (name: string) => Promise<Timing>> = {
      'nfs-cp': (name) => timed(o.nfsCp, [src, fileUrl(target.url, name)]),
      'tsnfs cp': (name) => timed(process.execPath, [bin, 'cp', src, fileUrl(target.url, name)]),
      library: (name) => timedLibrary(cli, 'up', src, fileUrl(target.url, name)),
    }
    const before = o.before === undefined ? undefined : installedEntry(o.before)
    if (before !== undefined) up['tsnfs cp (before)'] = (name) => timed(process.execPath, [before, 'cp', src, fileUrl(target.url, name)])
    const down: Record<string, (file: string) => Promise<Timing>> = {
      'nfs-cp': (file) => timed(o.nfsCp, [fileUrl(target.url, 'down'), file]),
      'tsnfs cp': (file) => timed(process.execPath, [bin, 'cp', fileUrl(target.url, 'down'), file]),
      library: (file) => timedLibrary(cli, 'down', fileUrl(target.url, 'down'), file),
    }
    if (before !== undefined) down['tsnfs cp (before)'] = (file) => timed(process.execPath, [before, 'cp', fileUrl(target.url, 'down'), file])
    const onMount: Record<string, (name: string) => Promise<Timing>> = {
      library: (name) => timedLibrary(cli, 'up', src, fileUrl(target.url, name)),
      dd: (name) => timed('dd', [`if=${src}`, `of=${join(mnt, name)}`, 'bs=1M', 'status=none']),
      cp: (name) => timed('cp', [src, join(mnt, name)]),
    }
    for (let runNo = 0; runNo < o.runs; runNo++) {
      const parts: string[] = []
      for (const tool of rotated(Object.keys(up), runNo)) {
        const name = `up-${String(runNo)}-${tool.replace(/[^a-z]+/g, '-')}`
        const s = await (up[tool] as (n: string) => Promise<Timing>)(name)
        await verifyUp(name)
        note(`up ${tool}`, s)
        parts.push(`up ${tool} ${s.s.toFixed(2)} s`)
      }
      for (const tool of rotated(Object.keys(down), runNo)) {
        const file = join(work, 'downloaded')
        await rm(file, { force: true })
        const s = await (down[tool] as (f: string) => Promise<Timing>)(file)
        if (!(await sameBytes(src, file))) throw new Error(`run ${String(runNo + 1)}: ${tool} downloaded different bytes`)
        note(`down ${tool}`, s)
        parts.push(`down ${tool} ${s.s.toFixed(2)} s`)
      }
      if (mounted) {
        for (const tool of rotated(Object.keys(onMount), runNo)) {
          const name = `w-${String(runNo)}-${tool}`
          const s = await (onMount[tool] as (n: string) => Promise<Timing>)(name)
          // Read back through the mount (a new open: close-to-open).
          if (!(await sameBytes(src, join(mnt, name)))) throw new Error(`run ${String(runNo + 1)}: ${tool} wrote different bytes`)
          await rm(join(mnt, name), { force: true })
          note(`mount ${tool}`, s)
          parts.push(`mount ${tool} ${s.s.toFixed(2)} s`)
        }
      }
      const load = (await readFile('/proc/loadavg', 'utf8').catch(() => '?')).split(' ')[0] ?? '?'
      log(`run ${String(runNo + 1)}: ${parts.join(', ')} (load ${load})`)
    }
  } finally {
    if (mounted) await run(process.execPath, [cli, 'umount', mnt]).catch(() => undefined)
    await client?.umount().catch(() => undefined)
    await target.close()
    if (o.workDir === undefined) await rm(work, { recursive: true, force: true })
  }
  const t = (k: string): Timing[] => times.get(k) ?? []
  const rows = [
    row('up', 'nfs-cp', 'tsnfs cp', t('up nfs-cp'), t('up tsnfs cp'), o.sizeMiB),
    row('up', 'nfs-cp', 'library', t('up nfs-cp'), t('up library'), o.sizeMiB),
    row('down', 'nfs-cp', 'tsnfs cp', t('down nfs-cp'), t('down tsnfs cp'), o.sizeMiB),
    row('down', 'nfs-cp', 'library', t('down nfs-cp'), t('down library'), o.sizeMiB),
  ]
  if (t('up tsnfs cp (before)').length > 0) {
    rows.push(row('up', 'nfs-cp', 'tsnfs cp (before)', t('up nfs-cp'), t('up tsnfs cp (before)'), o.sizeMiB))
    rows.push(row('down', 'nfs-cp', 'tsnfs cp (before)', t('down nfs-cp'), t('down tsnfs cp (before)'), o.sizeMiB))
  }
  if (t('mount dd').length > 0) {
    rows.push(row('mount-write', 'library', 'dd bs=1M', t('mount library'), t('mount dd'), o.sizeMiB))
    rows.push(row('mount-write', 'library', 'cp', t('mount library'), t('mount cp'), o.sizeMiB))
  }
  return rows
}

export function copyTable(rows: readonly CopyRow[], sizeMiB: number): string {
  const lines = [`${String(sizeMiB)} MiB, medians of ${String(rows[0]?.tool_s.length ?? 0)} alternating runs`, '']
  lines.push('| phase | reference | s | MiB/s | CPU s | measured | s | MiB/s | CPU s | speed ratio |', '|---|---|---:|---:|---:|---|---:|---:|---:|---:|')
  for (const r of rows) {
    lines.push(
      `| ${r.phase} | ${r.reference} | ${r.reference_median_s.toFixed(2)} | ${r.reference_mib_per_s.toFixed(0)} | ${r.reference_cpu_median_s.toFixed(2)} | ${r.tool} | ${r.tool_median_s.toFixed(2)} | ${r.tool_mib_per_s.toFixed(0)} | ${r.tool_cpu_median_s.toFixed(2)} | ${r.speed_ratio.toFixed(2)} |`,
    )
  }
  return `${lines.join('\n')}\n`
}

/** nfs-cp from PATH or the usual place, or null. */
export function findNfsCp(): string | null {
  for (const p of [...(process.env.PATH ?? '').split(':').map((d) => join(d, 'nfs-cp')), '/usr/bin/nfs-cp']) if (existsSync(p)) return p
  return null
}
