/*
 * What replication costs (issue 15 §8): create + 4 KiB UNSTABLE WRITE +
 * COMMIT, one at a time (latency, median) and from 32 workers at once
 * (throughput), against `tsnfs serve` alone, with a `tsnfs standby` in
 * sync mode and in async mode — each a process of its own, local-directory
 * exports on the same disk, the order rotated every run. Ratios of medians
 * in one run are what to read; this machine is shared and noisy.
 *
 *   npx tsx bench/replication.ts [--ops N] [--seconds S] [--runs R] [--json]
 *                                [--op file|create] [--modes plain,sync,async]
 *                                [--tree DIR] [--source] [--prof DIR] [--rate N] [--warmup S]
 *
 * Besides latency and throughput it prints the CPU time (user + system, from
 * /proc) the primary and the standby took per op at 32 in flight. The servers
 * run from the tree's build (dist/: `npm run build` first), or with `--source`
 * from its TypeScript through tsx. `--tree`
 * runs the tsnfs of another checkout (before/after in the same minutes);
 * `--prof` has every server process write a V8 CPU profile (--cpu-prof) there.
 * `--rate N` paces the 32 workers to N ops/s in all: CPU per op compared at
 * the same offered load (at full speed it falls as the rate rises: more work
 * per wakeup), so what replication adds is not mixed with what it slows.
 *
 * `--warmup S` first runs the workload from 32 workers for S seconds in each
 * mode's fresh processes, unmeasured (their CPU is not counted either).
 *
 * `--op create` measures CREATE alone (a non-idempotent call: in sync mode its
 * reply also waits for its cached copy on the standby, drc-ship.ts).
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { NfsDriver } from './nfs-driver.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

type Mode = 'plain' | 'sync' | 'async'

interface Started {
  port: number
  exportPath: string
  /** CPU ms used so far by the primary and the standby (NaN without one). */
  cpu(): { primary: number; standby: number }
  stop(): Promise<void>
}

function waitFor(child: ChildProcess, which: 'stdout' | 'stderr', re: RegExp): Promise<RegExpExecArray> {
  let text = ''
  return new Promise((res, rej) => {
    const timer = setTimeout(() => { rej(new Error(`no ${String(re)}: ${text}`)); }, 60_000)
    child[which]?.on('data', (d: Buffer) => {
      text += d.toString()
      const m = re.exec(text)
      if (m !== null) {
        clearTimeout(timer)
        res(m)
      }
    })
  })
}

/** `--tree DIR`: run another checkout's tsnfs (the same workload against the tree before a change). */
let tree = ROOT

/** `--prof DIR`: each server process writes a V8 CPU profile into DIR/ROLE-N/ at exit. */
let profDir: string | undefined
let profCount = 0

/**
 * `--source`: run the tree's TypeScript through tsx instead of its build. By default the servers
 * run from TREE/dist/ (`npm run build`), as they are installed: tsx's transform adds its own
 * per-call costs (keepNames wrappers on every closure, session 43), which are not the server's.
 */
let fromSource = false

function entry(): string[] {
  if (fromSource) return ['--import', 'tsx', join(tree, 'cli/main.ts')]
  const built = join(tree, 'dist/cli/main.js')
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` in ${tree}, or pass --source`)
  return [built]
}

function run(role: string, args: string[]): ChildProcess {
  const prof = profDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profDir, `${role}-${++profCount}`)]
  return spawn(process.execPath, [...prof, ...entry(), ...args], { cwd: tree, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** CPU time (user + system) a process has used so far, in ms (Linux /proc; NaN elsewhere). */
function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100
  } catch {
    return NaN
  }
}

async function stopAll(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((c) => new Promise<void>((res) => {
    if (c.exitCode !== null || c.signalCode !== null) {
      res()
      return
    }
    c.once('exit', () => {
      res()
    })
    c.kill('SIGTERM')
  })))
}

async function start(mode: Mode, work: string): Promise<Started> {
  // Fresh directories per start: the primary's export and state, the standby's state.
  const [exp, a, b] = ['export', 'a', 'b'].map((d) => mkdtempSync(join(work, `${mode}-${d}-`))) as [string, string, string]
  writeFileSync(join(a, 'exports'), `${exp} *(rw,insecure,no_root_squash)\n`)
  const children: ChildProcess[] = []
  let standbyPid: number | undefined
  const serveArgs = ['serve', '--exports', join(a, 'exports'), '--port', '0', '--host', '127.0.0.1', '--state-dir', a, '--no-lock', '--admin', 'off']
  if (mode !== 'plain') {
    // The standby keeps its copy in memory under the same path name (one host: the export id is the path's).
    writeFileSync(join(b, 'exports'), `${exp} *(rw,insecure,no_root_squash,backend=memory)\n`)
    const standby = run(`${mode}-standby`, ['standby', '--listen', '127.0.0.1:0', '--exports', join(b, 'exports'), '--state-dir', b, '--port', '0', '--node', 'b'])
    children.push(standby)
    standbyPid = standby.pid
    const m = await waitFor(standby, 'stdout', /replication on [^\s]+:(\d+),/)
    serveArgs.push('--standby', `127.0.0.1:${m[1] ?? ''}`, mode === 'sync' ? '--sync' : '--async', '--node', 'a')
  }
  const primary = run(`${mode}-primary`, serveArgs)
  children.push(primary)
  const joined = mode === 'plain' ? null : waitFor(primary, 'stderr', /standby joined the sync set/)
  const m = await waitFor(primary, 'stdout', /TCP and UDP port (\d+)/)
  await joined
  return { port: Number(m[1]), exportPath: exp, cpu: () => ({ primary: cpuMs(primary.pid), standby: cpuMs(standbyPid) }), stop: () => stopAll(children) }
}

interface Result {
  latencyMs: number
  throughput: number
  /** CPU ms per op at 32 in flight, of the primary and of the standby. */
  cpuPrimary: number
  cpuStandby: number
  /** The same for this process, the clients (the third user of the same cores). */
  cpuClients: number
}

async function workload(s: Started, ops: number, seconds: number, op: 'file' | 'create', rate: number, warmup: number): Promise<Result> {
  const url = { host: '127.0.0.1', exportPath: s.exportPath, nfsport: s.port, mountport: s.port, uid: 0, gid: 0 }
  const data = Buffer.alloc(4096, 7)
  const one = async (nfs: NfsDriver, dir: Buffer, name: string): Promise<void> => {
    const fh = await nfs.create(dir, name)
    if (op === 'create') return
    await nfs.write(fh, 0n, data, 0)
    await nfs.commit(fh)
  }
  // --warmup: the same work from 32 workers, unmeasured, so that what is timed is processes whose
  // code V8 has optimized (a server runs for days), not their first seconds of compiling hot paths.
  if (warmup > 0) {
    const warmers = await Promise.all(Array.from({ length: 32 }, () => NfsDriver.connect(url)))
    const until = performance.now() + warmup * 1000
    await Promise.all(warmers.map(async (w, k) => {
      for (let i = 0; performance.now() < until; i++) await one(w, w.root, `warm${k}-${i}`)
    }))
    await Promise.all(warmers.map((w) => w.close()))
  }
  const solo = await NfsDriver.connect(url)
  const lat: number[] = []
  for (let i = 0; i < ops; i++) {
    const t0 = performance.now()
    await one(solo, solo.root, `solo-${i}`)
    lat.push(performance.now() - t0)
  }
  await solo.close()
  lat.sort((x, y) => x - y)
  const workers = await Promise.all(Array.from({ length: 32 }, () => NfsDriver.connect(url)))
  let done = 0
  const cpu0 = s.cpu()
  const me0 = process.cpuUsage()
  const start = performance.now()
  const end = start + seconds * 1000
  await Promise.all(workers.map(async (w, k) => {
    for (let i = 0; performance.now() < end; i++) {
      // --rate: worker k's i-th op starts no earlier than its slot, so the 32 offer `rate` ops/s in all.
      if (rate > 0) {
        const slot = start + ((i * 32 + k) * 1000) / rate
        const now = performance.now()
        if (slot >= end) break
        if (slot > now) await new Promise((r) => setTimeout(r, slot - now))
      }
      await one(w, w.root, `w${k}-${i}`)
      done++
    }
  }))
  const cpu1 = s.cpu()
  const me = process.cpuUsage(me0)
  await Promise.all(workers.map((w) => w.close()))
  return {
    latencyMs: lat[Math.floor(lat.length / 2)] ?? NaN,
    throughput: done / seconds,
    cpuPrimary: (cpu1.primary - cpu0.primary) / done,
    cpuStandby: (cpu1.standby - cpu0.standby) / done,
    cpuClients: (me.user + me.system) / 1000 / done,
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { ops: { type: 'string', default: '300' }, seconds: { type: 'string', default: '8' }, runs: { type: 'string', default: '3' }, json: { type: 'boolean' }, op: { type: 'string', default: 'file' }, modes: { type: 'string', default: 'plain,sync,async' }, prof: { type: 'string' }, tree: { type: 'string' }, source: { type: 'boolean', default: false }, rate: { type: 'string', default: '0' }, warmup: { type: 'string', default: '0' } } })
  if (values.tree !== undefined) tree = resolve(values.tree)
  fromSource = values.source
  process.stderr.write(`servers: ${entry().join(' ')}\n`)
  profDir = values.prof === undefined ? undefined : resolve(values.prof)
  if (values.op !== 'file' && values.op !== 'create') throw new Error('--op: file or create')
  const op = values.op
  const ops = Number(values.ops)
  const seconds = Number(values.seconds)
  const runs = Number(values.runs)
  const rate = Number(values.rate)
  const warmup = Number(values.warmup)
  if (!(warmup >= 0)) throw new Error(`--warmup: seconds, not ${values.warmup}`)
  const work = mkdtempSync(join(tmpdir(), 'tsnfs-bench-repl-'))
  const empty = (): Record<keyof Result, number[]> => ({ latencyMs: [], throughput: [], cpuPrimary: [], cpuStandby: [], cpuClients: [] })
  const results: Record<Mode, Record<keyof Result, number[]>> = { plain: empty(), sync: empty(), async: empty() }
  const modes = values.modes.split(',').filter((m): m is Mode => m === 'plain' || m === 'sync' || m === 'async')
  if (modes.length === 0) throw new Error('--modes: plain, sync and/or async')
  try {
    for (let r = 0; r < runs; r++) {
      for (const mode of [...modes.slice(r % modes.length), ...modes.slice(0, r % modes.length)]) {
        const s = await start(mode, work)
        try {
          const x = await workload(s, ops, seconds, op, rate, warmup)
          for (const k of Object.keys(x) as (keyof Result)[]) results[mode][k].push(x[k])
          process.stderr.write(`run ${r + 1} ${mode}: median ${x.latencyMs.toFixed(2)} ms, ${x.throughput.toFixed(0)} ops/s at 32, CPU ms/op primary ${x.cpuPrimary.toFixed(2)} standby ${x.cpuStandby.toFixed(2)} clients ${x.cpuClients.toFixed(2)}\n`)
        } finally {
          await s.stop()
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  const med = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)] ?? NaN
  const row = (m: Mode): string => `| ${m} | ${med(results[m].latencyMs).toFixed(2)} | ${(med(results[m].latencyMs) / med(results.plain.latencyMs)).toFixed(2)} | ${med(results[m].throughput).toFixed(0)} | ${(med(results[m].throughput) / med(results.plain.throughput)).toFixed(2)} | ${med(results[m].cpuPrimary).toFixed(2)} | ${m === 'plain' ? '–' : med(results[m].cpuStandby).toFixed(2)} | ${med(results[m].cpuClients).toFixed(2)} |`
  if (values.json === true) process.stdout.write(`${JSON.stringify(results)}\n`)
  process.stdout.write(`| mode | latency ms (median) | ÷ plain (target ≤ 1.5) | ops/s at 32 | ÷ plain (sync ≥ 0.6, async ≥ 0.9) | CPU ms/op primary | CPU ms/op standby | CPU ms/op clients |\n|---|---|---|---|---|---|---|---|\n${modes.map(row).join('\n')}\n`)
}

await main()
