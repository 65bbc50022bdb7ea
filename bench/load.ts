/*
 * The load run (issue 7 §3): N concurrent NfsClients, TCP and UDP mixed,
 * each in its own directory of one memory export, run a mixed workload
 * (create, write, read, rename, remove, readdir, getattr, mkdir, rmdir) for a
 * while against one server. At the end: no operation failed, the server's
 * RSS and open descriptors are back where they were, and a fresh client
 * finds exactly what each client's model says (names and sha256 of contents).
 *
 *   npx tsx bench/load.ts [--clients 64] [--seconds 120] [--process] [--record]
 *
 * --process runs the server as a separate `tsnfs serve` (its own RSS and
 * /proc/PID/fd are measured); otherwise it runs in this process. --record
 * writes the summary to bench/load-results.md. Exit status 1 on any failure.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { NfsClient } from '../client/index.ts'
import { parseExports } from '../server/exports/parse.ts'
import { createServer } from '../server/index.ts'
import type { TsnfsServer } from '../server/index.ts'
import { LoadClient, listState } from './load-client.ts'
import type { ClientResult } from './load-client.ts'

export interface LoadOptions {
  clients: number
  durationMs: number
  /** Run the server as a separate process (else in this one). */
  separateProcess: boolean
  seed: number
  maxFileSize: number
  maxFiles: number
  /**
   * Allowed growth of the server's RSS (in process: heap + buffers after GC) from
   * the baseline, taken once this fraction of the run has passed (bounded caches
   * such as the DRC and the handle caches have filled), to after the run.
   */
  rssToleranceBytes: number
  warmupFraction: number
  /** Allowed growth of its open descriptors. */
  fdTolerance: number
}

export interface LoadReport {
  options: LoadOptions
  elapsedMs: number
  ops: number
  calls: number
  retransmits: number
  timeouts: number
  errors: string[]
  /** Directories whose final state differs from the model. */
  mismatches: string[]
  /** Before any client, after the warm-up (the baseline), after the run. */
  rssIdle: number
  rssBefore: number
  rssAfter: number
  fdsBefore: number
  fdsAfter: number
  failures: string[]
}

export const DEFAULT_LOAD: Readonly<LoadOptions> = Object.freeze({
  clients: 64,
  durationMs: 120_000,
  separateProcess: false,
  seed: 1,
  maxFileSize: 64 * 1024,
  maxFiles: 12,
  rssToleranceBytes: 96 * 1024 * 1024,
  warmupFraction: 0.3,
  fdTolerance: 2,
})

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const root = join(dirname(fileURLToPath(import.meta.url)), '..')

interface ServerUnderLoad {
  port: number
  pid: number
  close(): Promise<void>
}

async function inProcessServer(stateDir: string): Promise<ServerUnderLoad> {
  const server: TsnfsServer = await createServer({ exports: parseExports(EXPORTS, 'exports'), stateDir, port: 0, host: '127.0.0.1' })
  return { port: server.port, pid: process.pid, close: () => server.close() }
}

async function separateServer(stateDir: string): Promise<ServerUnderLoad> {
  const exportsFile = join(stateDir, 'exports')
  writeFileSync(exportsFile, EXPORTS)
  const args = ['--import', 'tsx', join(root, 'cli/main.ts'), 'serve', '--port', '0', '--host', '127.0.0.1', '--no-rpcbind']
  const child: ChildProcess = spawn(process.execPath, [...args, '--exports', exportsFile, '--state-dir', stateDir, '--log-level', 'warn'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /port (\d+)/.exec(out)
      if (m?.[1] !== undefined) resolve(Number(m[1]))
    })
    child.once('exit', code => {
      reject(new Error(`tsnfs serve exited (${String(code)}) before listening`))
    })
  })
  return {
    port,
    pid: child.pid ?? 0,
    close: async () => {
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** Resident set size of a process (bytes), from /proc. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

export function fdsOf(pid: number): number {
  return readdirSync(`/proc/${String(pid)}/fd`).length
}

/**
 * Settle (let closes propagate), then take the lowest of a few readings. A
 * separate server is measured by its RSS; in this process, which also holds
 * the clients, RSS says little, so it is the heap and buffers after a full GC.
 */
async function measure(pid: number): Promise<{ rss: number; fds: number }> {
  let rss = Infinity
  let fds = Infinity
  for (let i = 0; i < 5; i++) {
    await sleep(200)
    rss = Math.min(rss, pid === process.pid ? liveMemory() : rssOf(pid))
    fds = Math.min(fds, fdsOf(pid))
  }
  return { rss, fds }
}

let gc: (() => void) | null = null
function liveMemory(): number {
  if (gc === null) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

export async function runLoad(partial: Partial<LoadOptions> = {}): Promise<LoadReport> {
  const options: LoadOptions = { ...DEFAULT_LOAD, ...partial }
  const stateDir = mkdtempSync(join(tmpdir(), 'tsnfs-load-'))
  const server = options.separateProcess ? await separateServer(stateDir) : await inProcessServer(stateDir)
  try {
    const before = await measure(server.pid)
    const clients = Array.from(
      { length: options.clients },
      (_, id) =>
        new LoadClient({
          id,
          port: server.port,
          exportPath: '/export',
          proto: id % 2 === 0 ? 'tcp' : 'udp',
          seed: options.seed * 1_000_003 + id,
          maxFileSize: options.maxFileSize,
          maxFiles: options.maxFiles,
        }),
    )
    const started = Date.now()
    await Promise.all(clients.map(c => c.mount()))
    const stopAt = Date.now() + options.durationMs
    const running = Promise.all(clients.map(c => c.run(stopAt)))
    await Promise.race([running, sleep(options.durationMs * options.warmupFraction)])
    const warm = await measure(server.pid)
    await running
    const results: ClientResult[] = await Promise.all(clients.map(c => c.close()))
    const elapsedMs = Date.now() - started
    const mismatches = await verify(server.port, results)
    const after = await measure(server.pid)
    const report: LoadReport = {
      options,
      elapsedMs,
      ops: sum(results, r => r.ops),
      calls: sum(results, r => r.calls),
      retransmits: sum(results, r => r.retransmits),
      timeouts: sum(results, r => r.timeouts),
      errors: results.flatMap(r => r.errors),
      mismatches,
      rssIdle: before.rss,
      rssBefore: warm.rss,
      rssAfter: after.rss,
      fdsBefore: before.fds,
      fdsAfter: after.fds,
      failures: [],
    }
    report.failures = judge(report)
    return report
  } finally {
    await server.close()
    rmSync(stateDir, { recursive: true, force: true })
  }
}

/** A fresh TCP client (no caches from the run) reads every directory back. */
async function verify(port: number, results: readonly ClientResult[]): Promise<string[]> {
  const nfs = await NfsClient.mount({ host: '127.0.0.1', exportPath: '/export' }, { nfsport: port, mountport: port, uid: 0, gid: 0 })
  const out: string[] = []
  try {
    for (const r of results) {
      const got = await listState(nfs, `/c${String(r.id)}`)
      const diff = [...new Set([...got.keys(), ...r.model.keys()])].filter(n => got.get(n) !== r.model.get(n))
      if (diff.length > 0) out.push(`/c${String(r.id)}: ${diff.join(' ')} differ from the model`)
    }
  } finally {
    await nfs.umount()
  }
  return out
}

function judge(r: LoadReport): string[] {
  const f: string[] = []
  if (r.errors.length > 0) f.push(`${String(r.errors.length)} operations failed`)
  if (r.mismatches.length > 0) f.push(`${String(r.mismatches.length)} directories differ from their model`)
  if (r.rssAfter - r.rssBefore > r.options.rssToleranceBytes) f.push(`server RSS grew by ${mib(r.rssAfter - r.rssBefore)}`)
  if (r.fdsAfter - r.fdsBefore > r.options.fdTolerance) f.push(`server descriptors grew from ${String(r.fdsBefore)} to ${String(r.fdsAfter)}`)
  return f
}

const sum = <T>(xs: readonly T[], f: (x: T) => number): number => xs.reduce((a, x) => a + f(x), 0)
const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`

export function summarize(r: LoadReport): string {
  const o = r.options
  return [
    '# Load run (bench/load.ts)',
    '',
    `- date: ${new Date().toISOString()}, node ${process.version}`,
    `- server: ${o.separateProcess ? 'separate process (tsnfs serve)' : 'in process'}, memory export`,
    `- clients: ${String(o.clients)} (${String(Math.ceil(o.clients / 2))} TCP, ${String(Math.floor(o.clients / 2))} UDP), seed ${String(o.seed)}`,
    `- duration: ${(r.elapsedMs / 1000).toFixed(1)} s (workload ${(o.durationMs / 1000).toFixed(0)} s)`,
    `- operations: ${String(r.ops)}; NFS calls: ${String(r.calls)} (${(r.calls / (r.elapsedMs / 1000)).toFixed(0)}/s)`,
    `- retransmissions: ${String(r.retransmits)}; per-try timeouts: ${String(r.timeouts)}`,
    `- errors: ${String(r.errors.length)}; directories differing from their model: ${String(r.mismatches.length)}`,
    `- server ${o.separateProcess ? 'RSS' : 'heap + buffers after GC (in process)'}: ${mib(r.rssIdle)} idle, ${mib(r.rssBefore)} after ${String(Math.round(o.warmupFraction * 100))}% of the run (baseline), ${mib(r.rssAfter)} after the run (tolerance ${mib(o.rssToleranceBytes)})`,
    `- server open fds: ${String(r.fdsBefore)} before, ${String(r.fdsAfter)} after`,
    `- verdict: ${r.failures.length === 0 ? 'PASS' : `FAIL: ${r.failures.join('; ')}`}`,
    ...r.errors.slice(0, 10).map(e => `  - ${e}`),
    ...r.mismatches.slice(0, 10).map(e => `  - ${e}`),
    '',
  ].join('\n')
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '64' },
      seconds: { type: 'string', default: '120' },
      seed: { type: 'string', default: '1' },
      process: { type: 'boolean', default: false },
      record: { type: 'boolean', default: false },
    },
  })
  const clients = Number(values.clients)
  const seconds = Number(values.seconds)
  if (!Number.isInteger(clients) || clients < 1) throw new Error(`--clients: not a count: ${values.clients}`)
  if (!(seconds > 0)) throw new Error(`--seconds: not a duration: ${values.seconds}`)
  const report = await runLoad({ clients, durationMs: seconds * 1000, separateProcess: values.process, seed: Number(values.seed) })
  const text = summarize(report)
  process.stdout.write(text)
  if (values.record) writeFileSync(join(root, 'bench/load-results.md'), text)
  process.exitCode = report.failures.length === 0 ? 0 : 1
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
