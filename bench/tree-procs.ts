/*
 * The processes of the tree benchmark: our server (`tsnfs serve`, with
 * --metrics) and mount daemons (`tsnfs mount`), run from dist/ as a user
 * runs them, each a separate process so that its CPU and memory are its
 * own; their resident memory from /proc; the server's per-procedure call
 * counts from its metrics endpoint.
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess, ChildProcessByStdio } from 'node:child_process'
import type { Readable } from 'node:stream'
import { existsSync, readFileSync } from 'node:fs'
import { get } from 'node:http'
import { join, resolve } from 'node:path'
import { daemonOf } from '../cli/mount-registry.ts'

let entryOverride: string | null = null

/** Run another build's tsnfs (its dist/cli/main.js) instead of this checkout's: before/after comparisons. */
export function useEntry(path: string): void {
  if (!existsSync(path)) throw new Error(`${path} not found`)
  entryOverride = resolve(path)
}

/** dist/cli/main.js: from the sources (bench/) it is ../dist, from the build (dist/bench/) it is .. */
export function tsnfsEntry(): string {
  if (entryOverride !== null) return entryOverride
  const here = import.meta.dirname
  const entry = resolve(here, '..', here.endsWith(join('dist', 'bench')) ? '' : 'dist', 'cli', 'main.js')
  if (!existsSync(entry)) throw new Error(`${entry} not found: run npm run build first`)
  return entry
}

function nodeArgs(extra: string | undefined): string[] {
  return (extra ?? '').split(' ').filter(Boolean)
}

export interface ServerProc {
  port: number
  metricsPort: number
  pid: number
  stop(): Promise<void>
}

/** `tsnfs serve --port 0 --metrics 127.0.0.1:0`; ports read from its banner. */
/** `extra.args` go to `tsnfs serve`; `extra.env` is the child's environment (default: ours). */
export async function startServer(exportsFile: string, stateDir: string, extraNodeArgs?: string, extra: { args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<ServerProc> {
  const child = spawn(process.execPath, [...nodeArgs(extraNodeArgs), tsnfsEntry(), 'serve', '--port', '0', '--host', '127.0.0.1', '--no-rpcbind',
    '--exports', exportsFile, '--state-dir', stateDir, '--log-level', 'warn', '--metrics', '127.0.0.1:0', ...(extra.args ?? [])],
  { stdio: ['ignore', 'pipe', 'inherit'], env: extra.env ?? process.env })
  return listening(child)
}

/** A started `tsnfs serve --port 0 --metrics HOST:0` child, once its banner names both ports. */
export async function listening(child: ChildProcessByStdio<null, Readable, null>): Promise<ServerProc> {
  const { port, metricsPort } = await new Promise<{ port: number; metricsPort: number }>((ok, fail) => {
    let seen = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (s: string) => {
      seen += s
      const p = /port (\d+)/.exec(seen)
      const m = /metrics: http:\/\/[^:]+:(\d+)\//.exec(seen)
      if (p !== null && m !== null) ok({ port: Number(p[1]), metricsPort: Number(m[1]) })
    })
    child.once('exit', code => { fail(new Error(`tsnfs serve exited (${String(code)}) before listening`)) })
  })
  return { port, metricsPort, pid: child.pid ?? 0, stop: () => stopChild(child) }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise(ok => child.once('exit', ok))
  child.kill('SIGTERM')
  await exited
}

export interface MountProc {
  mountpoint: string
  pid: number
  stop(): Promise<void>
}

/**
 * `tsnfs mount -o port=P,mountport=P[,OPTS] 127.0.0.1:PATH MOUNTPOINT`
 * (detached; returns once live). With logFile, the daemon logs at info
 * there, which fuseRequests reads.
 */
export function mount(port: number, exportPath: string, mountpoint: string, opts: string, extraNodeArgs?: string, logFile?: string): MountProc {
  const o = [`port=${String(port)}`, `mountport=${String(port)}`, ...(opts === '' ? [] : [opts])].join(',')
  const log = logFile === undefined ? [] : ['--log-level', 'info', '--log-file', logFile]
  const r = spawnSync(process.execPath, [...nodeArgs(extraNodeArgs), tsnfsEntry(), 'mount', '-o', o, ...log, `127.0.0.1:${exportPath}`, mountpoint], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`tsnfs mount ${mountpoint}: ${r.stderr.trim()}`)
  const pid = daemonOf(mountpoint)?.pid ?? 0
  return {
    mountpoint,
    pid,
    stop: () => {
      const u = spawnSync(process.execPath, [tsnfsEntry(), 'umount', mountpoint], { encoding: 'utf8' })
      if (u.status !== 0) spawnSync('umount', ['-l', mountpoint])
      return Promise.resolve()
    },
  }
}

/**
 * The FUSE requests a mount daemon (started with a log file) has received
 * so far, by operation: SIGUSR2 makes it log them (cli/mount.ts); the line
 * that follows the ones already there is the answer.
 */
export async function fuseRequests(pid: number, logFile: string): Promise<Map<string, number>> {
  const lines = (): string[] => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '').split('\n').filter(l => l.includes('"request counts"'))
  const before = lines().length
  process.kill(pid, 'SIGUSR2')
  for (let i = 0; i < 200; i++) {
    const now = lines()
    const line = now[before]
    if (line !== undefined) return new Map(Object.entries((JSON.parse(line) as { requests: Record<string, number> }).requests))
    await new Promise(ok => setTimeout(ok, 10))
  }
  throw new Error(`mount daemon ${String(pid)}: no request counts in ${logFile} within 2 s of SIGUSR2`)
}

/** Resident and peak resident memory of a process, in MiB (0 when gone). */
export function rssOf(pid: number): { rssMiB: number; peakMiB: number } {
  try {
    const s = readFileSync(`/proc/${String(pid)}/status`, 'utf8')
    const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0)
    return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 }
  } catch {
    return { rssMiB: 0, peakMiB: 0 }
  }
}

/** Clock ticks per second of /proc/PID/stat's times (sysconf(_SC_CLK_TCK); 100 on Linux unless asked otherwise). */
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const n = Number(r.stdout.trim())
  return r.status === 0 && n > 0 ? n : 100
})()

/**
 * CPU seconds (user + system) a process has used so far, from /proc/PID/stat (fields 14 and 15,
 * counted after the command name, which may hold spaces); 0 once it is gone. On a machine whose
 * load moves the wall clock by several times between runs, what each process spent is the figure
 * to compare.
 */
export function cpuOf(pid: number): number {
  try {
    const s = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) / CLK_TCK
  } catch {
    return 0
  }
}

/** The server's /metrics text (a fresh connection each time: a kept-alive one may be closed by the server as it is reused). */
export function metricsText(metricsPort: number): Promise<string> {
  return new Promise((ok, fail) => {
    const req = get({ host: '127.0.0.1', port: metricsPort, path: '/metrics', timeout: 10_000, agent: false }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => { ok(text) })
    })
    req.on('error', fail)
    req.on('timeout', () => req.destroy(new Error('metrics: timeout')))
  })
}

/** NFS calls per procedure so far (tsnfs_rpc_calls_total of NFS_PROGRAM). */
export async function nfsCalls(metricsPort: number): Promise<Map<string, number>> {
  const text = await metricsText(metricsPort)
  const out = new Map<string, number>()
  for (const m of text.matchAll(/^tsnfs_rpc_calls_total\{program="NFS_PROGRAM",version="3",procedure="NFSPROC3_(\w+)"\} (\d+)$/gm)) {
    out.set(m[1] ?? '', Number(m[2]))
  }
  return out
}

/** b - a per procedure, without zeros. */
export function callDiff(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>()
  for (const [k, v] of b) {
    const d = v - (a.get(k) ?? 0)
    if (d !== 0) out.set(k, d)
  }
  return out
}
