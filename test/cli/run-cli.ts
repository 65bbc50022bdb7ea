/*
 * Runs the compiled tsnfs command (dist/cli/main.js) as users do, with
 * stdin from a string, and returns exit code, stdout and stderr whatever
 * the code. `npm test` builds first; a bare tap run builds in ensureBuilt.
 */
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, startServer } from '../helpers/server.ts'
import type { ServerFixture } from '../helpers/server.ts'

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const cli = join(root, 'dist/cli/main.js')

export async function ensureBuilt(): Promise<void> {
  if (!existsSync(join(root, 'dist/cli/shell.js'))) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root })
}

/**
 * The environment of a run: TZ=UTC (ls -l and stat print local times), and
 * without tap's coverage hook in NODE_OPTIONS, which makes each short-lived
 * command several times slower (the commands' own coverage is not counted).
 */
function childEnv(): NodeJS.ProcessEnv {
  const keep = Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_PROCESSINFO'))
  return { ...Object.fromEntries(keep), TZ: 'UTC' }
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
  /** stdout as bytes (cat). */
  raw: Buffer
}

export function tsnfs(args: string[], opts: { input?: string; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: opts.cwd ?? root,
      env: childEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', reject)
    child.on('close', code => {
      const raw = Buffer.concat(out)
      resolvePromise({ code, stdout: raw.toString(), stderr: Buffer.concat(err).toString(), raw })
    })
    child.stdin.end(opts.input ?? '')
  })
}

export interface LocalExport {
  server: ServerFixture
  /** The exported host directory (also the export path). */
  exp: string
  url: (path?: string) => string
  host: (path: string) => string
}

/**
 * A server exporting a fresh host directory (local backend, root not
 * squashed): what the commands do is checked with node:fs on `host()`.
 * Call at the top level before any t.test (the root test's testdir is
 * made lazily, so the directory is created here); it uses t.testdir(), so
 * put other files next to `exp`, not in a second testdir.
 */
export async function localExport(t: Test): Promise<LocalExport> {
  const exp = join(t.testdir({ export: {} }), 'export')
  mkdirSync(exp, { recursive: true })
  const server = await startServer(t, `${exp} *(rw,insecure,no_root_squash,backend=local)\n`)
  return { server, exp, url: (p = '') => server.url(exp, p), host: p => join(exp, p) }
}

/** Run a command that must succeed; on failure the assertion shows its stderr. */
export async function ok(t: Test, args: string[], opts: { input?: string; cwd?: string } = {}): Promise<CliResult> {
  const r = await tsnfs(args, opts)
  t.equal(r.code, 0, `tsnfs ${args[0] ?? ''} exits 0${r.code === 0 ? '' : `: ${r.stderr}`}`)
  return r
}
