/*
 * Running the tsnfs command from source (node --import tsx cli/main.ts), so
 * these tests never exercise a stale dist/: one-shot runs with their exit
 * status and output, and a served process with its banner and stderr lines.
 */
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const BUILT = join(ROOT, 'dist/cli/main.js')

/** Newest mtime of the .ts sources the command is built from. */
function newestSource(): number {
  let newest = 0
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
    }
  }
  for (const d of ['cli', 'server', 'client', 'xdr', 'vfs', 'backup', 'common']) walk(join(ROOT, d))
  return newest
}

function builtIsFresh(): boolean {
  try {
    return statSync(BUILT).mtimeMs >= newestSource()
  } catch {
    return false
  }
}

/**
 * How to run tsnfs: the build when it is newer than every source (npm test builds first; it starts
 * in a third of tsx's time), else the sources through tsx, so a stale build is never what is tested.
 */
export const TSNFS_ARGS: readonly string[] = builtIsFresh() ? [BUILT] : ['--import', 'tsx', join(ROOT, 'cli/main.ts')]

/** The dispatcher behind cli/main.ts, from the same place TSNFS_ARGS runs the command from. */
const DISPATCH = builtIsFresh() ? join(ROOT, 'dist/cli/dispatch.js') : join(ROOT, 'cli/dispatch.ts')

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Run `tsnfs ...args` to completion. timeoutMs kills it (SIGTERM) after that long: for a command
 * that must exit by itself, where a start that wrongly serves would otherwise never end.
 */
export function tsnfs(args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  return runNode([...TSNFS_ARGS, ...args], { timeoutMs: opts.timeoutMs })
}

/** Run node with `args` (from the project's root unless `cwd`), to its exit, with what it printed. */
export function runNode(args: string[], opts: { timeoutMs?: number | undefined; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: opts.timeoutMs })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      resolveRun({ code, stdout, stderr })
    })
  })
}

/**
 * Run each `tsnfs ...args` of `runs` in turn in one process (test/cli/cli-batch.ts), with the exit
 * code, stdout and stderr of each: for a test of what commands print and return, not of how a
 * process starts (a process per command was about a second of CPU each). Keep at least one real
 * start (tsnfs) beside it.
 */
export async function tsnfsBatch(runs: readonly (readonly string[])[]): Promise<RunResult[]> {
  const r = await runNode(['--import', 'tsx', join(ROOT, 'test/cli/cli-batch.ts'), DISPATCH, JSON.stringify(runs)])
  if (r.code !== 0) throw new Error(`the batch of ${String(runs.length)} commands exited ${String(r.code)}: ${r.stderr}`)
  return JSON.parse(r.stdout) as RunResult[]
}

export interface Served {
  child: ChildProcess
  port: number
  banner: string
  /** Everything written to stderr so far (pino JSON lines). */
  stderr(): string
  /** Resolves when a stderr line matches. */
  waitForLog(re: RegExp, ms?: number): Promise<string>
  exit: Promise<number | null>
}

/** `tsnfs serve ...args`, resolved once the banner is out; SIGKILLed at teardown if still running. */
export async function serveProcess(t: Test, args: string[]): Promise<Served> {
  const child = spawn(process.execPath, [...TSNFS_ARGS, 'serve', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  const watchers: { re: RegExp; resolve: (line: string) => void }[] = []
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
    for (const w of [...watchers]) {
      const line = err.split('\n').find((l) => w.re.test(l))
      if (line !== undefined) {
        watchers.splice(watchers.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  const exit = new Promise<number | null>((resolveExit) => child.on('exit', (code) => {
    resolveExit(code)
  }))
  const banner = await new Promise<string>((resolveBanner, reject) => {
    let settle: NodeJS.Timeout | undefined
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      // The metrics and rpcbind lines follow the exports in the same tick: wait for the output to go quiet.
      if (out.includes('macOS:')) {
        clearTimeout(settle)
        settle = setTimeout(() => {
          resolveBanner(out)
        }, 150)
      }
    })
    void exit.then((code) => {
      reject(new Error(`serve exited (${String(code)}) before its banner: ${out}\n${err}`))
    })
  })
  const port = Number(/port (\d+)/.exec(banner)?.[1])
  return {
    child,
    port,
    banner,
    stderr: () => err,
    waitForLog: (re, ms = 10_000) =>
      new Promise((resolveLog, reject) => {
        const line = err.split('\n').find((l) => re.test(l))
        if (line !== undefined) {
          resolveLog(line)
          return
        }
        const timer = setTimeout(() => {
          reject(new Error(`no log line matching ${String(re)} within ${String(ms)} ms:\n${err}`))
        }, ms)
        watchers.push({
          re,
          resolve: (l) => {
            clearTimeout(timer)
            resolveLog(l)
          },
        })
      }),
    exit,
  }
}
