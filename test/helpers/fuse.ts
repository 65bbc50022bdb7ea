/*
 * FUSE mount fixtures: a tsnfs server exporting a host directory (local
 * backend, in this process), `tsnfs mount -f` as a separate process (the
 * way it is used; an in-process FUSE daemon next to synchronous tools
 * would deadlock), shell commands run asynchronously, and a manifest of a
 * tree (lstat fields with nanosecond times, symlink targets, sha256 of
 * contents) to compare a mount with a local directory.
 */
import type { Test } from 'tap'
import { execFile, spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { lstat, readFile, readdir, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { startServer } from './server.ts'
import type { ServerFixture } from './server.ts'
import { ROOT, TSNFS_ARGS } from '../cli/cli.ts'

export const canFuse = process.getuid?.() === 0 && (() => {
  try {
    readFileSync('/proc/filesystems', 'utf8')
    return true
  } catch {
    return false
  }
})()

/** Run `tsnfs ...args` to completion (without tap's loaders). */
export function tsnfs(args: string[]): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...TSNFS_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV() })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', code => {
      resolve({ code: code ?? -1, stdout, stderr })
    })
  })
}

export interface ShResult {
  code: number
  stdout: string
  stderr: string
}

/** bash -c script, asynchronously (the event loop keeps serving NFS meanwhile). */
export function sh(script: string, env: Record<string, string> = {}, opts: { timeoutMs?: number } = {}): Promise<ShResult> {
  return new Promise(resolve => {
    execFile('bash', ['-c', script], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: opts.timeoutMs ?? 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** sh that must succeed. */
export async function shOk(t: Test, script: string, env: Record<string, string> = {}): Promise<string> {
  const r = await sh(script, env)
  if (r.code !== 0) t.fail(`script failed (${String(r.code)}): ${script}\n${r.stderr}`)
  return r.stdout
}

export interface ExportFixture extends ServerFixture {
  /** The exported host directory. */
  dir: string
  /** mount source, `127.0.0.1:/dir`. */
  source: string
  /** -o options naming the ports. */
  portOpts: string
}

/** A server exporting a fresh host directory under base (default no_root_squash: the tests run as root). */
export async function exportDir(t: Test, base: string, name = 'export', options = 'rw,insecure,no_root_squash'): Promise<ExportFixture> {
  const dir = join(base, name)
  mkdirSync(dir, { recursive: true })
  const f = await startServer(t, `${dir} *(${options})\n`)
  return { ...f, dir, source: `127.0.0.1:${dir}`, portOpts: `port=${String(f.port)},mountport=${String(f.port)}` }
}

export interface MountProcess {
  child: ChildProcess
  mountpoint: string
  stderr(): string
  exit: Promise<number | null>
  /** umount (lazy with lazy) and wait for the daemon to exit. */
  stop(opts?: { lazy?: boolean }): Promise<number | null>
}

function CHILD_ENV(): NodeJS.ProcessEnv {
  // Not tap's loaders and coverage hooks: the daemon runs as a user would run it.
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return env
}

/** Mounts still up: lazily unmounted if the test process exits without its teardown (a tap timeout). */
const live = new Map<string, ChildProcess>()
process.once('exit', () => {
  for (const [mnt, child] of live) {
    spawnSync('umount', ['-l', mnt])
    child.kill('SIGKILL')
  }
})

/**
 * A fresh empty mount point outside the test directory (removing a test
 * directory must never walk into a mount), removed at teardown.
 */
export function mountpointDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-mnt-'))
  t.teardown(() => {
    try {
      rmdirSync(dir)
    } catch {
      // still mounted (a failed teardown): leave it rather than recurse into it
    }
  })
  return dir
}

/** Soft with a short timeout: a test that loses its server fails instead of hanging on the mount. */
export const TEST_OPTS = 'soft,timeo=50,retrans=2'

/** `tsnfs mount -f -o OPTS SOURCE MNT` as a child; resolved once it reports the mount live. */
export async function mountFuse(t: Test, source: string, mountpoint: string, options: string, extra: string[] = [], env: Record<string, string> = {}): Promise<MountProcess> {
  const child = spawn(process.execPath, [...TSNFS_ARGS, 'mount', '-f', '-o', options, ...extra, source, mountpoint], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: { ...CHILD_ENV(), ...env, TSNFS_READY_FD: '3' },
  })
  let err = ''
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  live.set(mountpoint, child)
  const exit = new Promise<number | null>(resolve => child.on('exit', code => {
    live.delete(mountpoint)
    resolve(code)
  }))
  const m: MountProcess = {
    child,
    mountpoint,
    stderr: () => err,
    exit,
    stop: async (opts = {}) => {
      if (child.exitCode === null && child.signalCode === null) await sh(`umount ${opts.lazy === true ? '-l ' : ''}${mountpoint}`)
      return exit
    },
  }
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    await sh(`umount -l ${mountpoint}`)
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exit
    clearTimeout(timer)
  })
  const ready = await new Promise<string>(resolve => {
    let text = ''
    const pipe = child.stdio[3]
    pipe?.on('data', (d: Buffer) => (text += d.toString()))
    pipe?.on('end', () => {
      resolve(text.trim())
    })
  })
  if (!ready.startsWith('ready')) throw new Error(`mount failed: ${ready}\n${err}`)
  return m
}

/** The options /proc/mounts lists for a mount point (empty if it is not mounted). */
export function mountFlags(mountpoint: string): string[] {
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const f = line.split(' ')
    if (f[1] === mountpoint) return (f[3] ?? '').split(',')
  }
  return []
}

export interface ManifestOptions {
  /** Compare directory mtimes (only for trees that were copied, not worked in). */
  dirTimes?: boolean
  /** Compare file and symlink mtimes (default true). */
  fileTimes?: boolean
  /** Names to skip (anywhere in the tree). */
  skip?: string[]
}

/** One line per entry below root: path, type, mode, nlink, uid, gid, size, mtime (ns), and the link target or sha256. */
export async function manifest(root: string, opts: ManifestOptions = {}): Promise<string[]> {
  const out: string[] = []
  const skip = new Set(opts.skip ?? [])
  const visit = async (rel: string): Promise<void> => {
    const p = rel === '' ? root : join(root, rel)
    const st = await lstat(p, { bigint: true })
    const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o'
    const mtime = (type === 'd' ? opts.dirTimes === true : opts.fileTimes !== false) ? String(st.mtimeNs) : '-'
    let what = ''
    if (type === 'l') what = await readlink(p)
    else if (type === 'f') what = createHash('sha256').update(await readFile(p)).digest('hex')
    const mode = (st.mode & 0o7777n).toString(8)
    out.push(`${rel === '' ? '.' : rel} ${type} ${mode} n${String(st.nlink)} ${String(st.uid)}:${String(st.gid)} ${type === 'd' ? '-' : String(st.size)} ${mtime} ${what}`)
    if (type === 'd') {
      for (const name of (await readdir(p)).sort()) if (!skip.has(name)) await visit(rel === '' ? name : join(rel, name))
    }
  }
  await visit('')
  return out
}

/** Deterministic bytes (xorshift32), so trees are the same on every run. */
export function patternBytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  let x = seed >>> 0 || 1
  let i = 0
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b.writeUInt32LE(x >>> 0, i)
  }
  for (; i < n; i++) b[i] = i & 0xff
  return b
}
