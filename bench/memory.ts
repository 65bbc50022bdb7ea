/*
 * The memory bench (issue 11 point 6): how much resident memory the server
 * and a `tsnfs mount` daemon hold during and after a workload, phase by
 * phase. The server runs as its own process (`tsnfs serve`, memory and/or
 * local backend), the mount daemon as `tsnfs mount` starts it; the workload
 * goes through our client library (in this process) and through the mount:
 * large sequential writes and reads that are deleted afterwards, plus trees
 * of small files that stay (13 MB in all by default). After each phase it
 * samples VmRSS of both processes from /proc, and the server's heap,
 * external and pool figures from its metrics endpoint; after the last
 * phase it waits an idle period and samples again.
 *
 *   npm run build --silent && npx tsx bench/memory.ts [--backend memory|local|both] [--big MiB]
 *     [--tree MB] [--cp DIR] [--idle S] [--no-mount] [--mount-options O] [--server-arg ARG]…
 *     [--no-malloc-env] [--cli PATH/TO/dist/cli/main.js] [--json]
 *
 * The server is started with the malloc settings of deploy/tsnfs.service
 * (--no-malloc-env: without); `tsnfs mount` gives its daemon the same.
 * --cli runs another build (an older commit's dist/) to compare.
 */
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readSync, writeSync } from 'node:fs'
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { NfsClient } from '../client/index.ts'
import { withMallocEnv } from '../cli/malloc-env.ts'
import { listening } from './tree-procs.ts'
import type { ServerProc } from './tree-procs.ts'

const MiB = 1024 * 1024

export interface MemorySample {
  backend: string
  phase: string
  /** VmRSS of the server and of the mount daemon, bytes (null: no such process). */
  serverRss: number
  serverHeap: number | null
  serverExternal: number | null
  serverPools: Record<string, number>
  mountRss: number | null
  /** How long the phase took (ms). */
  ms: number
}

interface Options {
  backends: string[]
  bigMiB: number
  treeBytes: number
  idleS: number
  mount: boolean
  json: boolean
  serverArgs: string[]
  mountOptions: string
  /** A tree copied into the mount with cp -a and removed again (null: skipped). */
  cpSource: string | null
  /** Start the server with cli/malloc-env.ts's settings, as deploy/tsnfs.service does. */
  mallocEnv: boolean
}

/** The built CLI (dist/cli/main.js), from the sources or from the build; `--cli` names another (a build of an older commit, to compare). */
let cliOverride: string | null = null

function cliEntry(): string {
  if (cliOverride !== null) return cliOverride
  const here = import.meta.dirname
  const entry = resolve(here, '..', here.endsWith(join('dist', 'bench')) ? '' : 'dist', 'cli', 'main.js')
  if (!existsSync(entry)) throw new Error(`${entry} not found: run npm run build first`)
  return entry
}

/** VmRSS of a process in bytes, or null if it is gone. */
export function rssOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? null : Number(m[1]) * 1024
  } catch {
    return null
  }
}

async function startServer(exportsText: string, stateDir: string, extra: string[], mallocEnv: boolean): Promise<ServerProc> {
  const exportsFile = join(stateDir, 'exports')
  await writeFile(exportsFile, exportsText)
  const child = spawn(process.execPath, [cliEntry(), 'serve', '--port', '0', '--host', '127.0.0.1', '--exports', exportsFile, '--state-dir', stateDir,
    '--log-level', 'warn', '--no-rpcbind', '--metrics', '127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
    // As deploy/tsnfs.service starts it (cli/malloc-env.ts), unless asked to show the difference.
    env: mallocEnv ? withMallocEnv(process.env) : process.env,
  })
  return listening(child)
}

/** The server's metrics as name{labels} → value (the samples we read). */
async function scrape(port: number): Promise<Map<string, number>> {
  // A fresh connection each time: this process blocks in synchronous file calls for longer than the endpoint keeps one alive.
  const text = await new Promise<string>((ok, fail) => {
    get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => { ok(body) })
    }).on('error', fail)
  })
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue
    const sp = line.lastIndexOf(' ')
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)))
  }
  return out
}

/** The mount daemon `tsnfs mount` detached: the node process whose command line has `mount --foreground … MOUNTPOINT`. */
function daemonPid(mountpoint: string): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    let args: string[]
    try {
      // comm first: reading the command line of a process stuck on some other FUSE mount can block.
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== 'node') continue
      args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (args.includes('--foreground') && args.includes('mount') && args.includes(mountpoint)) return Number(d)
  }
  return null
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((ok, fail) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('error', fail)
    child.on('close', code => { ok({ code, out }) })
  })
}

/** Bytes that do not compress to nothing (a memory backend or a page cache could share zero pages). */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  let x = seed | 1
  for (let i = 0; i + 4 <= n; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b.writeInt32LE(x, i)
  }
  return b
}

/** A tree of small files through the library: `bytes` in files of 1–16 KiB, 100 per directory. */
async function libTree(c: NfsClient, root: string, bytes: number): Promise<number> {
  let written = 0
  let n = 0
  await c.mkdir(root, { recursive: true })
  while (written < bytes) {
    const dir = `${root}/d${Math.floor(n / 100)}`
    if (n % 100 === 0) await c.mkdir(dir)
    const size = Math.min(bytes - written, 1024 * (1 + (n * 7) % 16))
    await c.writeFile(`${dir}/f${n}`, pattern(size, n + 1))
    written += size
    n++
  }
  return n
}

/** The same through the mount, with plain file system calls. */
async function fsTree(root: string, bytes: number): Promise<number> {
  let written = 0
  let n = 0
  mkdirSync(root, { recursive: true })
  while (written < bytes) {
    const dir = `${root}/d${Math.floor(n / 100)}`
    if (n % 100 === 0) mkdirSync(dir)
    const size = Math.min(bytes - written, 1024 * (1 + (n * 7) % 16))
    await writeFile(`${dir}/f${n}`, pattern(size, n + 1))
    written += size
    n++
  }
  return n
}

/** Sequential 1 MiB writes of `mib` MiB through the mount, then fsync. */
function fsWrite(path: string, mib: number): void {
  const fd = openSync(path, 'w')
  const block = pattern(MiB, 7)
  for (let i = 0; i < mib; i++) {
    block.writeUInt32LE(i, 0)
    writeSync(fd, block, 0, MiB, i * MiB)
  }
  closeSync(fd)
}

function fsRead(path: string): number {
  const fd = openSync(path, 'r')
  const buf = Buffer.allocUnsafe(MiB)
  let total = 0
  for (;;) {
    const n = readSync(fd, buf, 0, MiB, null)
    if (n === 0) break
    total += n
  }
  closeSync(fd)
  return total
}

async function libWrite(c: NfsClient, path: string, mib: number): Promise<void> {
  const f = await c.open(path, 'w')
  const block = pattern(MiB, 11)
  for (let i = 0; i < mib; i++) {
    block.writeUInt32LE(i, 0)
    await f.write(block, i * MiB)
  }
  await f.close()
}

async function libRead(c: NfsClient, path: string): Promise<number> {
  const f = await c.open(path, 'r')
  let total = 0
  for (;;) {
    const b = await f.read(MiB)
    if (b.length === 0) break
    total += b.length
  }
  await f.close()
  return total
}

const sleep = (ms: number): Promise<void> => new Promise(ok => setTimeout(ok, ms))

/** One backend: server up, phases, idle, server down. Returns a sample per phase. */
async function runBackend(backend: string, o: Options, report: (s: MemorySample) => void): Promise<MemorySample[]> {
  const work = await mkdtemp(join(tmpdir(), 'tsnfs-membench-'))
  const stateDir = join(work, 'state')
  const exportDir = join(work, 'export')
  const mnt = join(work, 'mnt')
  mkdirSync(stateDir)
  mkdirSync(exportDir)
  mkdirSync(mnt)
  const path = backend === 'local' ? exportDir : '/export'
  const server = await startServer(`${path} *(rw,insecure,no_root_squash,async,backend=${backend})\n`, stateDir, o.serverArgs, o.mallocEnv)
  const url = `nfs://127.0.0.1${path}?nfsport=${server.port}&mountport=${server.port}`
  const samples: MemorySample[] = []
  let mountPid: number | null = null
  let phaseStart = performance.now()
  const sample = async (phase: string): Promise<void> => {
    const ms = Math.round(performance.now() - phaseStart)
    const m = await scrape(server.metricsPort)
    const pools: Record<string, number> = {}
    for (const [k, v] of m) {
      const p = /^tsnfs_memory_pool_bytes\{pool="([^"]+)"\}$/.exec(k) ?? /^tsnfs_memory_cache_bytes\{cache="([^"]+)"\}$/.exec(k)
      if (p !== null) pools[p[1] ?? ''] = v
    }
    const s: MemorySample = {
      backend,
      phase,
      serverRss: rssOf(server.pid) ?? 0,
      serverHeap: m.get('nodejs_heap_used_bytes') ?? null,
      serverExternal: m.get('nodejs_external_memory_bytes') ?? null,
      serverPools: pools,
      mountRss: mountPid === null ? null : rssOf(mountPid),
      ms,
    }
    samples.push(s)
    report(s)
    phaseStart = performance.now()
  }
  const c = await NfsClient.mount(url, { uid: 0, gid: 0 })
  let mounted = false
  try {
    await sample('start')
    await libWrite(c, '/big-lib', o.bigMiB)
    await sample('lib-write')
    await libRead(c, '/big-lib')
    await sample('lib-read')
    await libTree(c, '/tree-lib', Math.ceil(o.treeBytes / 2))
    await sample('lib-tree')
    if (o.mount) {
      const r = await run(process.execPath, [cliEntry(), 'mount', '-o', `port=${server.port},mountport=${server.port}${o.mountOptions === '' ? '' : `,${o.mountOptions}`}`, `127.0.0.1:${path}`, mnt])
      if (r.code !== 0) throw new Error(`tsnfs mount failed: ${r.out}`)
      mounted = true
      mountPid = daemonPid(mnt)
      await sample('mounted')
      // Never read through this mount before: the kernel's page cache cannot answer it.
      fsRead(join(mnt, 'big-lib'))
      await sample('mount-read')
      fsWrite(join(mnt, 'big-mnt'), o.bigMiB)
      await sample('mount-write')
      await unlink(join(mnt, 'big-mnt'))
      if (o.cpSource !== null) {
        const cp = await run('cp', ['-a', o.cpSource, join(mnt, 'cp')])
        if (cp.code !== 0) throw new Error(`cp -a failed: ${cp.out}`)
        await sample('mount-cp')
        const rmr = await run('rm', ['-rf', join(mnt, 'cp')])
        if (rmr.code !== 0) throw new Error(`rm -rf failed: ${rmr.out}`)
        await sample('mount-rm')
      }
      await fsTree(join(mnt, 'tree-mnt'), Math.floor(o.treeBytes / 2))
      await sample('mount-tree')
    } else {
      await libTree(c, '/tree-lib2', Math.floor(o.treeBytes / 2))
      await sample('lib-tree2')
    }
    await c.unlink('/big-lib')
    await sample('deleted')
    for (let waited = 0; waited < o.idleS; waited += 10) {
      await sleep(Math.min(10, o.idleS - waited) * 1000)
      await sample(`idle ${Math.min(waited + 10, o.idleS)}s`)
    }
  } finally {
    if (mounted) {
      const r = await run(process.execPath, [cliEntry(), 'umount', mnt])
      if (r.code !== 0) await run('umount', ['-l', mnt])
    }
    await c.umount().catch(() => undefined)
    await server.stop()
    await rm(work, { recursive: true, force: true })
  }
  return samples
}

function fmt(n: number | null): string {
  return n === null ? '-' : (n / MiB).toFixed(1)
}

export async function memoryBench(argv: string[]): Promise<MemorySample[]> {
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'both' },
      big: { type: 'string', default: '256' },
      tree: { type: 'string', default: '13' },
      idle: { type: 'string', default: '60' },
      'no-mount': { type: 'boolean', default: false },
      'mount-options': { type: 'string', default: '' },
      cp: { type: 'string' },
      cli: { type: 'string' },
      'no-malloc-env': { type: 'boolean', default: false },
      'server-arg': { type: 'string', multiple: true, default: [] },
      json: { type: 'boolean', default: false },
    },
  })
  const o: Options = {
    backends: values.backend === 'both' ? ['memory', 'local'] : [values.backend],
    bigMiB: Number(values.big),
    treeBytes: Math.round(Number(values.tree) * 1e6),
    idleS: Number(values.idle),
    mount: !values['no-mount'] && process.getuid?.() === 0 && existsSync('/dev/fuse'),
    json: values.json,
    serverArgs: values['server-arg'],
    mountOptions: values['mount-options'],
    cpSource: values.cp === undefined || values.cp === '' ? null : resolve(values.cp),
    mallocEnv: !values['no-malloc-env'],
  }
  if (values.cli !== undefined) cliOverride = resolve(values.cli)
  const all: MemorySample[] = []
  if (!o.json) process.stdout.write(`${'backend'.padEnd(8)} ${'phase'.padEnd(12)} ${'server RSS'.padStart(10)} ${'heap'.padStart(7)} ${'external'.padStart(8)} ${'mount RSS'.padStart(9)} ${'secs'.padStart(6)}  pools/caches (MiB)\n`)
  for (const b of o.backends) {
    all.push(...await runBackend(b, o, s => {
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s)}\n`)
        return
      }
      const pools = Object.entries(s.serverPools).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')
      process.stdout.write(`${s.backend.padEnd(8)} ${s.phase.padEnd(12)} ${fmt(s.serverRss).padStart(10)} ${fmt(s.serverHeap).padStart(7)} ${fmt(s.serverExternal).padStart(8)} ${fmt(s.mountRss).padStart(9)} ${(s.ms / 1000).toFixed(1).padStart(6)}  ${pools}\n`)
    }))
  }
  return all
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  await memoryBench(process.argv.slice(2))
}
