/*
 * The engine server's resident memory over a large tree (issue 13 item 7): a fresh image made by
 * our mkfs, a tree of small (empty) files created through one `tsnfs serve` (engine export), then
 * for each buffer-cache limit (`cache=`) a new server on the same image that walks the whole tree
 * (READDIRPLUS of every directory, every page, then GETATTR of every file), sampling VmRSS and
 * VmHWM of the server after opening, after the walk, after a second walk and once idle (the server
 * runs with deploy/tsnfs.service's malloc settings and `--memory-idle 5`). RSS minus the cache
 * limit is the fixed cost.
 *
 *   npm run build --silent && npx tsx bench/engine-rss.ts [--files 100000] [--per-dir 1000]
 *     [--caches 16m,64m,256m] [--image /tmp/tsnfs-bench-engine-rss.img] [-K 32] [--fill nfs|engine|mkfs]
 *     [--tree DIR] [--settle S] [--node-args '...'] [--heap-budget SIZE|off] [--heap-growth PERCENT|off]
 *     [--keep] [--reuse] [--json]
 *
 * --fill engine creates the tree with the engine in this process (no NFS, 256 creates in flight,
 * so each commit carries a large batch): 1,000,000 files in minutes rather than the quarter of an
 * hour durable NFS creates take here. --fill mkfs is faster still: the tree is made on the host
 * (in --tree DIR, reused if it is there) and `mkfs.ext4 -d` copies it into the image, which
 * `e2fsck -fn` must call clean. What is measured, the serving, is the same.
 *
 * Before each cache limit's walk, a server on a fresh empty image with the same limit is sampled
 * once opened: the fixed cost against which "RSS ≤ cache= + fixed cost" is judged. --settle S
 * adds a sample S seconds after the idle one (V8's memory reducer shrinks the heap only after
 * some seconds without allocation). --node-args go to the server's node (e.g. V8 heap flags).
 * --heap-budget is passed to `tsnfs serve` (the collections it forced and their pauses are in the
 * samples, from /metrics); each walk's duration and the server's CPU time over it are sampled too
 * (the budget's throughput cost; the CPU time is the figure to compare on a loaded machine).
 * --heap-growth is passed to `tsnfs serve` too (its default, 50, when absent; `off` is V8's own
 * growing factor, the server before session 35).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
import { openEngine } from '../vfs/engine/fs/assemble.ts'
import type { FileRef } from '../vfs/types.ts'
import { makeEngineImage } from './targets.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { withMallocEnv } from '../cli/malloc-env.ts'
import { cpuOf, metricsText, rssOf, startServer } from './tree-procs.ts'
import type { ServerProc } from './tree-procs.ts'

const MiB = 2 ** 20
const IDLE_S = 5

function size(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v)
  if (m === null) throw new Error(`not a size: ${v}`)
  const unit = (m[2] ?? '').toLowerCase()
  return Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? MiB : unit === 'g' ? 1024 * MiB : 1)
}

interface Sample {
  cacheMiB: number
  phase: string
  rssMiB: number
  peakMiB: number
  /** Where the resident memory is, from the server's /metrics: V8 heap reserved and used, Buffers and other memory outside it. */
  heapTotalMiB: number
  heapUsedMiB: number
  externalMiB: number
  arrayBuffersMiB: number
  /** V8's young generation and old space, reserved (from the per-space gauges; NaN from a server without them). */
  newSpaceMiB: number
  oldSpaceMiB: number
  /** The heap budget's forced collections so far, their pauses summed and the longest (ms; NaN without the metric). */
  budgetCollections: number
  budgetPauseMs: number
  budgetMaxPauseMs: number
  /** The walk just sampled took this long (s; NaN for other phases). */
  walkSeconds: number
  /** CPU seconds (user + system) the server spent on that walk: the walk's cost to compare when the load moves its seconds. */
  walkCpuSeconds: number
  seconds: number
}

/** The server's process.memoryUsage() gauges, in MiB. */
async function heapOf(metricsPort: number): Promise<Omit<Sample, 'cacheMiB' | 'phase' | 'rssMiB' | 'peakMiB' | 'seconds' | 'walkSeconds' | 'walkCpuSeconds'>> {
  const text = await metricsText(metricsPort)
  const g = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN) / MiB
  const space = (s: string): number => g(`nodejs_heap_space_size_bytes\\{space="${s}"\\}`)
  return { heapTotalMiB: g('nodejs_heap_size_total_bytes'), heapUsedMiB: g('nodejs_heap_used_bytes'), externalMiB: g('nodejs_external_memory_bytes'), arrayBuffersMiB: g('nodejs_array_buffers_bytes'),
    newSpaceMiB: space('new_space'), oldSpaceMiB: space('old_space'),
    budgetCollections: g('tsnfs_memory_budget_collections_total') * MiB,
    budgetPauseMs: Number(/^tsnfs_memory_budget_pause_seconds_total (\S+)$/m.exec(text)?.[1] ?? NaN) * 1000,
    budgetMaxPauseMs: Number(/^tsnfs_memory_budget_pause_max_seconds (\S+)$/m.exec(text)?.[1] ?? NaN) * 1000 }
}

let serverNodeArgs: string | undefined
let heapBudget: string | undefined
let heapGrowth: string | undefined

async function serve(image: string, cacheBytes: number): Promise<{ server: ServerProc; driver: NfsDriver; cleanup(): Promise<void> }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'tsnfs-engine-rss-'))
  const exportsFile = join(stateDir, 'exports')
  await writeFile(exportsFile, `/export *(rw,insecure,no_root_squash,backend=engine,image=${image},cache=${String(cacheBytes)})\n`)
  // As deployed (deploy/tsnfs.service's malloc settings), and idle after 5 s so the last sample
  // shows what stays once the server has trimmed its pools and collected garbage.
  const server = await startServer(exportsFile, stateDir, serverNodeArgs, { args: ['--memory-idle', String(IDLE_S), ...(heapBudget === undefined ? [] : ['--heap-budget', heapBudget]), ...(heapGrowth === undefined ? [] : ['--heap-growth', heapGrowth])], env: withMallocEnv(process.env) })
  const driver = await NfsDriver.connect(parseBenchUrl(`nfs://127.0.0.1/export?nfsport=${String(server.port)}&mountport=${String(server.port)}`))
  return {
    server,
    driver,
    async cleanup() {
      await driver.close()
      await server.stop()
      await rm(stateDir, { recursive: true, force: true })
    },
  }
}

/** Run `n` jobs with at most `k` in flight. */
async function pool(n: number, k: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) await job(next++)
  }
  await Promise.all(Array.from({ length: Math.min(k, n) }, worker))
}

async function walk(d: NfsDriver, dirs: number, k: number): Promise<number> {
  let files = 0
  await pool(dirs, Math.min(k, 8), async (i) => {
    const dir = await d.lookup(d.root, `d${String(i)}`)
    const handles: Buffer[] = []
    let cookie = 0n
    let verf = Buffer.alloc(8)
    for (;;) {
      const r = await d.readdirplus(dir, cookie, verf)
      for (const e of r.resok.reply.entries) {
        cookie = e.cookie
        if (e.name_handle !== null && e.name.toString() !== '.' && e.name.toString() !== '..') handles.push(Buffer.from(e.name_handle.data))
      }
      verf = Buffer.from(r.resok.cookieverf)
      if (r.resok.reply.eof) break
    }
    await pool(handles.length, 4, async (j) => {
      const h = handles[j]
      if (h !== undefined) await d.getattr(h)
    })
    files += handles.length
  })
  return files
}

type Note = (cacheMiB: number, phase: string, server: ServerProc, walk?: { seconds: number; cpu: number }) => Promise<void>

/** The tree through one server, creates K in flight, noting its memory before and after. */
async function fillOverNfs(image: string, cacheBytes: number, dirs: number, files: number, perDir: number, k: number, note: Note): Promise<void> {
  const maker = await serve(image, cacheBytes)
  try {
    await note(cacheBytes / MiB, 'empty, opened', maker.server)
    const d = maker.driver
    const dirHandles: Buffer[] = []
    for (let i = 0; i < dirs; i++) dirHandles.push(await d.mkdir(d.root, `d${String(i)}`))
    await pool(files, k, async (i) => {
      const dir = dirHandles[Math.floor(i / perDir)]
      if (dir === undefined) throw new Error(`no directory for file ${String(i)}`)
      await d.create(dir, `f${String(i % perDir)}`)
    })
    await note(cacheBytes / MiB, `created ${String(files)} files`, maker.server)
  } finally {
    await maker.cleanup()
  }
}

/** The same tree made by the engine in this process (see --fill in the header). */
async function fillInProcess(image: string, dirs: number, files: number, perDir: number): Promise<void> {
  const e = await openEngine(image, { cacheBytes: 64 * MiB })
  try {
    const owner = { uid: 0, gid: 0 }
    const dirRefs: FileRef[] = []
    for (let i = 0; i < dirs; i++) dirRefs.push((await e.mkdir(e.root(), Buffer.from(`d${String(i)}`), {}, owner)).ref)
    await pool(files, 256, async (i) => {
      const dir = dirRefs[Math.floor(i / perDir)]
      if (dir === undefined) throw new Error(`no directory for file ${String(i)}`)
      await e.create(dir, Buffer.from(`f${String(i % perDir)}`), { how: 'guarded', attr: {} }, owner)
    })
  } finally {
    await e.close()
  }
}

/** `dirs` directories d0… of `perDir` empty files f0… under `tree` on the host (kept: a second run reuses it). */
function hostTree(tree: string, dirs: number, files: number, perDir: number): void {
  if (existsSync(tree)) {
    if (readdirSync(tree).length !== dirs) throw new Error(`${tree} exists but does not hold ${String(dirs)} directories`)
    return
  }
  for (let i = 0; i < dirs; i++) {
    const dir = join(tree, `d${String(i)}`)
    mkdirSync(dir, { recursive: true })
    for (let j = 0; j < perDir && i * perDir + j < files; j++) closeSync(openSync(join(dir, `f${String(j)}`), 'w'))
  }
}

/** The host tree copied into a new image by e2fsprogs, then judged by e2fsck: ext4 as mkfs.ext4 makes it, not our mkfs. */
function fillWithMkfs(image: string, tree: string, bytes: number, inodes: number): void {
  execFileSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-N', String(inodes), '-d', tree, image, `${String(Math.ceil(bytes / 1024))}k`], { stdio: 'inherit' })
  execFileSync('e2fsck', ['-fn', image], { stdio: ['ignore', 'ignore', 'inherit'] })
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '100000' },
      'per-dir': { type: 'string', default: '1000' },
      caches: { type: 'string', default: '16m,64m,256m' },
      image: { type: 'string', default: '/tmp/tsnfs-bench-engine-rss.img' },
      K: { type: 'string', short: 'K', default: '32' },
      fill: { type: 'string', default: 'nfs' },
      tree: { type: 'string' },
      settle: { type: 'string', default: '0' },
      'node-args': { type: 'string' },
      'heap-budget': { type: 'string' },
      'heap-growth': { type: 'string' },
      reuse: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  })
  const files = Number(values.files)
  const perDir = Number(values['per-dir'])
  const k = Number(values.K)
  const caches = values.caches.split(',').map(size)
  const dirs = Math.ceil(files / perDir)
  const settle = Number(values.settle)
  serverNodeArgs = values['node-args']
  heapBudget = values['heap-budget']
  heapGrowth = values['heap-growth']
  const samples: Sample[] = []
  const t0 = Date.now()
  const note: Note = async (cacheMiB, phase, server, w) => {
    const s = { cacheMiB, phase, ...rssOf(server.pid), ...await heapOf(server.metricsPort), walkSeconds: w?.seconds ?? NaN, walkCpuSeconds: w?.cpu ?? NaN, seconds: (Date.now() - t0) / 1000 }
    samples.push(s)
    process.stderr.write(`${JSON.stringify(s)}\n`)
  }

  const first = caches[0] ?? 16 * MiB
  // --reuse: serve the tree a previous run left with --keep (same --files and --per-dir); it is kept again.
  const imageBytes = Math.max(4 * 1024 * MiB, files * 16 * 1024)
  if (!values.reuse && values.fill === 'mkfs') {
    const tree = values.tree ?? `${values.image}.tree`
    hostTree(tree, dirs, files, perDir)
    fillWithMkfs(values.image, tree, imageBytes, files + dirs + 1024)
    process.stderr.write(`mkfs.ext4 -d ${tree}: ${String((Date.now() - t0) / 1000)} s, e2fsck -fn clean\n`)
  } else if (!values.reuse) {
    await makeEngineImage(values.image, imageBytes)
    if (values.fill === 'engine') await fillInProcess(values.image, dirs, files, perDir)
    else await fillOverNfs(values.image, first, dirs, files, perDir, k, note)
  }

  const emptyImage = `${values.image}.empty`
  await makeEngineImage(emptyImage, 256 * MiB)
  for (const cache of caches) {
    const empty = await serve(emptyImage, cache)
    try {
      await note(cache / MiB, 'empty export, opened', empty.server)
    } finally {
      await empty.cleanup()
    }
    const s = await serve(values.image, cache)
    try {
      await note(cache / MiB, 'opened', s.server)
      const timed = async (): Promise<{ seen: number; seconds: number; cpu: number }> => {
        const w0 = performance.now()
        const c0 = cpuOf(s.server.pid)
        const seen = await walk(s.driver, dirs, k)
        return { seen, seconds: (performance.now() - w0) / 1000, cpu: cpuOf(s.server.pid) - c0 }
      }
      const first = await timed()
      if (first.seen !== files) throw new Error(`walk saw ${String(first.seen)} files, expected ${String(files)}`)
      await note(cache / MiB, 'walked', s.server, first)
      await note(cache / MiB, 'walked twice', s.server, await timed())
      await sleep((IDLE_S + 3) * 1000)
      await note(cache / MiB, `idle ${String(IDLE_S + 3)} s (trimmed, collected)`, s.server)
      if (settle > 0) {
        await sleep(settle * 1000)
        await note(cache / MiB, `idle ${String(IDLE_S + 3 + settle)} s`, s.server)
      }
    } finally {
      await s.cleanup()
    }
  }
  await rm(emptyImage, { force: true })
  if (!values.reuse && !values.keep) await rm(values.image, { force: true })

  if (values.json) {
    for (const s of samples) process.stdout.write(`${JSON.stringify(s)}\n`)
    return
  }
  process.stdout.write('| cache= | phase | RSS MiB | peak RSS MiB | RSS − cache MiB | V8 heap reserved / used MiB | V8 new / old space MiB | external / arrayBuffers MiB | walk s | walk CPU s | budget gcs / pause sum / max ms |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n')
  for (const s of samples) {
    const f = (v: number): string => v.toFixed(0)
    process.stdout.write(`| ${String(s.cacheMiB)}M | ${s.phase} | ${f(s.rssMiB)} | ${f(s.peakMiB)} | ${f(s.rssMiB - s.cacheMiB)} | ${f(s.heapTotalMiB)} / ${f(s.heapUsedMiB)} | ${f(s.newSpaceMiB)} / ${f(s.oldSpaceMiB)} | ${f(s.externalMiB)} / ${f(s.arrayBuffersMiB)} | ${Number.isNaN(s.walkSeconds) ? '' : s.walkSeconds.toFixed(1)} | ${Number.isNaN(s.walkCpuSeconds) ? '' : s.walkCpuSeconds.toFixed(1)} | ${f(s.budgetCollections)} / ${f(s.budgetPauseMs)} / ${f(s.budgetMaxPauseMs)} |\n`)
  }
}

await main()
