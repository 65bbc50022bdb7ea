/*
 * What the client commands share: argument parsing that turns mistakes into
 * usage errors (exit 2), errors printed as `tsnfs <cmd>: <path>: <message>`
 * (exit 1), and a set of mounts that reuses one NfsClient for every URL of
 * the same export (so `mv` and `ln` can tell whether two URLs share a mount).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { ParseArgsConfig } from 'node:util'
// The modules themselves, not client/index.ts: every command loads this file, and the index loads the whole client (the NLM lock service, UDP) whose loading costs each command's start-up.
import { MountError, NfsError, UrlError } from '../client/errors.ts'
import { NfsClient } from '../client/nfs-client.ts'
import { RpcError } from '../client/rpc/errors.ts'
import { parseNfsUrl } from '../client/url.ts'
import { wantsHelp } from './help.ts'

/** A mistake in the command line: printed with the usage, exit 2. */
export class UsageError extends Error {
  readonly code = 'CLI_USAGE'
}

/** A failure about one path: `tsnfs <cmd>: <path>: <message>`. */
export class PathError extends Error {
  readonly code = 'CLI_PATH'
  readonly path: string
  constructor(path: string, message: string) {
    super(message)
    this.path = path
  }
}

/** strerror(3) texts (glibc) for the errno names our errors carry. */
const STRERROR: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  ENXIO: 'No such device or address',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  EACCES: 'Permission denied',
  EEXIST: 'File exists',
  EXDEV: 'Invalid cross-device link',
  ENODEV: 'No such device',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  EMLINK: 'Too many links',
  EPIPE: 'Broken pipe',
  ENAMETOOLONG: 'File name too long',
  ENOTEMPTY: 'Directory not empty',
  ELOOP: 'Too many levels of symbolic links',
  EDQUOT: 'Disk quota exceeded',
  ESTALE: 'Stale file handle',
  EREMOTE: 'Object is remote',
  ENOTSUP: 'Operation not supported',
  ECONNREFUSED: 'Connection refused',
}

export function strerror(errno: string): string {
  return STRERROR[errno] ?? errno
}

/** The human message for any error a command can meet. */
export function messageOf(err: unknown): string {
  if (err instanceof NfsError) return strerror(err.errno)
  if (err instanceof MountError) return `cannot mount ${err.path}: ${strerror(err.errno)} (${err.code})`
  if (err instanceof RpcError || err instanceof UrlError || err instanceof PathError) return err.message
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code
    if (typeof code === 'string' && code in STRERROR) return strerror(code)
    return err.message
  }
  return String(err)
}

/** The errno name of an error, if it has one ('ENOENT'). */
export function errnoOf(err: unknown): string | undefined {
  if (err instanceof NfsError || err instanceof MountError) return err.errno
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code
    return typeof code === 'string' ? code : undefined
  }
  return undefined
}

/** Print one failure as `tsnfs <cmd>: <path>: <message>` (path omitted when empty). */
export function report(cmd: string, path: string, err: unknown): void {
  const where = err instanceof PathError ? err.path : path
  process.stderr.write(`tsnfs ${cmd}: ${where === '' ? '' : `${where}: `}${messageOf(err)}\n`)
}

export function isNfsUrl(arg: string): boolean {
  return arg.startsWith('nfs://')
}

/** parseArgs (positionals allowed), turning its errors into UsageError. */
export function parseCommand<const O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true })
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err))
  }
}

/**
 * Run a command body with its mounts, mapping errors to exit codes: 2 for
 * usage (the usage text goes to stderr), 1 for anything else (reported with
 * the argument it concerned, when known).
 */
export async function runCommand(cmd: string, usage: string, argv: string[], body: (mounts: Mounts) => Promise<number>): Promise<number> {
  // df keeps -h for human-readable sizes, as df(1) does.
  if (wantsHelp(argv, cmd !== 'df')) {
    process.stdout.write(usage)
    return 0
  }
  const mounts = new Mounts()
  try {
    return await body(mounts)
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tsnfs ${cmd}: ${err.message}\n${usage}`)
      return 2
    }
    report(cmd, '', err)
    return 1
  } finally {
    await mounts.closeAll()
  }
}

/** A path inside a mounted export. */
export interface Target {
  client: NfsClient
  /** Path from the export root ('/' or '/a/b'). */
  path: string
  /** The argument as the user wrote it (for messages). */
  arg: string
}

interface MountEntry {
  key: string
  client: NfsClient
}

/** One NfsClient per export and option set; URLs inside an open export reuse it. */
export class Mounts {
  private readonly open: MountEntry[] = []

  async target(url: string): Promise<Target> {
    const u = parseNfsUrl(url)
    const key = `${u.host}\0${JSON.stringify(u.options)}`
    for (const m of this.open) {
      if (m.key !== key) continue
      const e = m.client.exportPath
      if (e === '/' || u.path === e || u.path.startsWith(`${e}/`)) {
        const rest = e === '/' ? u.path : u.path.slice(e.length)
        return { client: m.client, path: rest === '' ? '/' : rest, arg: url }
      }
    }
    const client = await NfsClient.mount(url)
    this.open.push({ key, client })
    return { client, path: client.path, arg: url }
  }

  /** Mount for one argument, reporting a failure against that argument. */
  targetOf(url: string): Promise<Target> {
    return at(url, () => this.target(url))
  }

  async closeAll(): Promise<void> {
    const all = this.open.splice(0)
    await Promise.all(all.map(m => m.client.umount()))
  }
}

/** Run fn for each argument; report failures and go on; exit 1 if any failed. */
export async function eachArg(cmd: string, args: readonly string[], fn: (arg: string) => Promise<void>): Promise<number> {
  let code = 0
  for (const arg of args) {
    try {
      await fn(arg)
    } catch (err) {
      if (err instanceof UsageError) throw err
      report(cmd, arg, err)
      code = 1
    }
  }
  return code
}

/** Run fn, reporting any failure against arg. */
export async function at<T>(arg: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw err instanceof PathError || err instanceof UsageError ? err : new PathError(arg, messageOf(err))
  }
}

let cachedUmask: number | undefined

/**
 * The process umask, applied by the client to modes of what it creates (an
 * NFS server applies none). Read from /proc (process.umask() without an
 * argument is deprecated: it sets the mask to read it); 022 elsewhere.
 */
export function umask(): number {
  if (cachedUmask !== undefined) return cachedUmask
  cachedUmask = 0o022
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    if (m?.[1] !== undefined) cachedUmask = parseInt(m[1], 8)
  } catch {
    // not Linux: keep the common default
  }
  return cachedUmask
}

/** `/a/b/` → 'b'; the export root → ''. */
export function baseName(path: string): string {
  const parts = path.split('/').filter(p => p !== '')
  return parts[parts.length - 1] ?? ''
}

/** Join a directory path inside an export and a name. */
export function joinPath(dir: string, name: string): string {
  if (name === '') return dir
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`
}
