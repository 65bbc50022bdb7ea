import { randomBytes } from 'node:crypto'
import { readFileSync, unlinkSync } from 'node:fs'
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/*
 * What the server keeps on disk between runs (DESIGN.md §3.3): the secret
 * that authenticates file handles, and the mount list for MOUNT DUMP. Files
 * are replaced atomically (write a temp file, then rename or link) so a crash
 * or a second server never sees half a file.
 */

/** The logging this module needs; pino's logger fits. */
export interface StateLogger {
  warn(obj: object, msg?: string): void
}

export type ServerStateErrorCode = 'STATE_BAD_KEY' | 'STATE_IN_USE'

export class ServerStateError extends Error {
  readonly code: ServerStateErrorCode
  constructor(code: ServerStateErrorCode, message: string) {
    super(message)
    this.name = 'ServerStateError'
    this.code = code
  }
}

export interface ServerState {
  readonly dir: string
  /** 32 secret bytes for HandleCodec; the same across restarts, so handles stay valid. */
  readonly handleKey: Buffer
}

const KEY_FILE = 'handle.key'
const KEY_SIZE = 32

/**
 * `$TSNFS_STATE_DIR`; else `/var/lib/tsnfs` as root; else
 * `$XDG_STATE_HOME/tsnfs` or `~/.local/state/tsnfs` (XDG base directory spec).
 */
export function defaultStateDir(
  env: NodeJS.ProcessEnv = process.env,
  uid: number = process.getuid?.() ?? -1,
  home: string = homedir(),
): string {
  if (env.TSNFS_STATE_DIR !== undefined && env.TSNFS_STATE_DIR !== '') return env.TSNFS_STATE_DIR
  if (uid === 0) return '/var/lib/tsnfs'
  const xdg = env.XDG_STATE_HOME
  // The spec says a relative XDG path is invalid and must be ignored.
  if (xdg?.startsWith('/') === true) return join(xdg, 'tsnfs')
  return join(home, '.local', 'state', 'tsnfs')
}

/**
 * The state directory of one server among several on a host: the standard
 * NFS port keeps `base` (where earlier versions kept everything), any other
 * port gets `base/port-N`, so servers on different ports never share a
 * handle key, a mount list or a local export's index by default.
 */
export function instanceStateDir(base: string, port: number): string {
  return port === 2049 ? base : join(base, `port-${String(port)}`)
}

const PID_FILE = 'server.pid'

/** What the pid file holds: the holder, its port, and its start time (to tell a recycled pid). */
interface PidRecord {
  pid: number
  port: number
  /** Field 22 of /proc/PID/stat (clock ticks after boot); absent where there is no /proc. */
  start?: number
}

/** When a process started (field 22 of /proc/PID/stat); -1 for a zombie; undefined where there is no /proc. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const state = fields[0]
    if (state === 'Z' || state === 'X') return -1
    const start = Number(fields[19])
    return Number.isFinite(start) ? start : undefined
  } catch {
    return undefined
  }
}

/**
 * Whether process `pid`, started at `start` (processStartTime; undefined:
 * not recorded), still runs: signal 0 reaches it, it is no zombie, and its
 * start time matches (else the kernel gave its pid to another process).
 */
export function processRunning(pid: number, start?: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if (!isCode(err, 'EPERM')) return false
  }
  const now = processStartTime(pid)
  if (now === -1) return false
  return start === undefined || now === undefined || now === start
}

function parsePidRecord(text: string): PidRecord | null {
  try {
    const v = JSON.parse(text) as Partial<PidRecord>
    if (typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0 && typeof v.port === 'number') {
      return { pid: v.pid, port: v.port, ...(typeof v.start === 'number' ? { start: v.start } : {}) }
    }
  } catch {
    // not JSON: stale
  }
  return null
}

export interface StateLock {
  /** Remove the pid file if it is still ours. */
  release(): Promise<void>
  /** The same, synchronously (from a process 'exit' handler). */
  releaseSync(): void
}

/**
 * Claim the state directory for this process (`server.pid`, written
 * atomically by link(2)): two live servers must not share a mount list or
 * a local export's handle index. A pid file whose process is
 * gone (or whose pid now belongs to another process) is taken over;
 * a live holder is STATE_IN_USE. Creates the directory if needed.
 */
export async function lockStateDir(dir: string, info: { port: number }): Promise<StateLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, PID_FILE)
  const me: PidRecord = { pid: process.pid, port: info.port }
  const start = processStartTime(process.pid)
  if (start !== undefined && start >= 0) me.start = start
  const text = JSON.stringify(me) + '\n'
  for (let attempt = 0; ; attempt++) {
    const tmp = await writeTemp(dir, PID_FILE, text)
    try {
      await link(tmp, path)
      break
    } catch (err) {
      if (!isCode(err, 'EEXIST') || attempt >= 3) throw err
    } finally {
      await unlink(tmp)
    }
    const held = await readIfExists(path)
    const holder = held === null ? null : parsePidRecord(held.toString('utf8'))
    if (holder !== null && holder.pid !== process.pid && processRunning(holder.pid, holder.start)) {
      throw new ServerStateError(
        'STATE_IN_USE',
        `${dir} is in use by the tsnfs server with pid ${String(holder.pid)} (port ${String(holder.port)}); give each server its own --state-dir`,
      )
    }
    // Remove only the stale file we read (another starting server may have replaced it since).
    const again = await readIfExists(path)
    if (again !== null && held !== null && again.equals(held)) {
      await unlink(path).catch((err: unknown) => {
        if (!isCode(err, 'ENOENT')) throw err
      })
    }
  }
  return {
    async release() {
      const now = await readIfExists(path).catch(() => null)
      if (now !== null && now.toString('utf8') === text) await unlink(path).catch(() => undefined)
    },
    releaseSync() {
      try {
        if (readFileSync(path, 'utf8') === text) unlinkSync(path)
      } catch {
        // gone already, or not ours to remove
      }
    },
  }
}

/** Creates the directory (mode 0700) and the handle key if needed, and reads the key. */
export async function openStateDir(dir: string): Promise<ServerState> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, KEY_FILE)
  let key = await readIfExists(path)
  if (key === null) {
    await createKey(dir, path)
    key = await readFile(path)
  }
  if (key.length !== KEY_SIZE) {
    throw new ServerStateError('STATE_BAD_KEY', `${path}: expected ${KEY_SIZE} bytes, found ${key.length}; remove it to make a new key (all handles become stale)`)
  }
  return { dir, handleKey: key }
}

export async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path)
  } catch (err) {
    if (isCode(err, 'ENOENT')) return null
    throw err
  }
}

/**
 * Writes the key to a private temp file, flushes it, then link()s it into
 * place: unlike rename, link fails if another server won the race, and then
 * both use the winner's key.
 */
async function createKey(dir: string, path: string): Promise<void> {
  const tmp = await writeTemp(dir, KEY_FILE, randomBytes(KEY_SIZE))
  try {
    await link(tmp, path)
  } catch (err) {
    if (!isCode(err, 'EEXIST')) throw err
  } finally {
    await unlink(tmp)
  }
}

/** A new file next to `name`, mode 0600, fully written and fsynced. */
export async function writeTemp(dir: string, name: string, data: Buffer | string): Promise<string> {
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', 0o600)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
  return tmp
}

function isCode(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code
}

/**
 * The write verifier (RFC 1813 §3.3.7, specs P10/P11): 8 bytes, the same in
 * every WRITE and COMMIT reply while unstable data can survive, different
 * after anything that may have lost it. It is 8 random bytes per server
 * instance, so two starts in the same second still differ (a boot-time-in-
 * seconds verifier does not: ANCHORS row 16); bump() picks a new value after
 * a failed flush so clients resend their uncommitted writes.
 */
export class WriteVerifier {
  private value: Buffer = randomBytes(8)

  /** The current verifier. Callers must not modify it; bump() replaces it rather than changing it. */
  current(): Buffer {
    return this.value
  }

  bump(): void {
    let next = randomBytes(8)
    while (next.equals(this.value)) next = randomBytes(8)
    this.value = next
  }
}

/** One mounted (host, path) pair, as MOUNT DUMP reports it (RFC 1813 §5.2.2). */
export interface RmtabEntry {
  host: string
  path: string
}

const RMTAB_FILE = 'rmtab'
const RmtabChecker = TypeCompiler.Compile(
  Type.Object({
    version: Type.Literal(1),
    entries: Type.Array(Type.Object({ host: Type.String({ maxLength: 1024 }), path: Type.String({ maxLength: 1024 }) })),
  }),
)

/**
 * The mount list (rmtab): informational only, as in every NFSv3 server (a
 * client that crashes never unmounts). Kept in memory, saved to `rmtab` in
 * the state directory after each change; saves are serialized and atomic.
 */
export class Rmtab {
  private readonly path: string
  private entries: RmtabEntry[]
  private tail: Promise<void> = Promise.resolve()

  private constructor(path: string, entries: RmtabEntry[]) {
    this.path = path
    this.entries = entries
  }

  /** Loads `rmtab` from `dir`; a missing file is empty, a corrupt one is logged and treated as empty. */
  static async open(dir: string, log?: StateLogger): Promise<Rmtab> {
    const path = join(dir, RMTAB_FILE)
    let entries: RmtabEntry[] = []
    const raw = await readIfExists(path)
    if (raw !== null) {
      let parsed: unknown = undefined
      try {
        parsed = JSON.parse(raw.toString('utf8'))
      } catch {
        // handled below as corrupt
      }
      if (RmtabChecker.Check(parsed)) {
        entries = parsed.entries.map((e) => ({ host: e.host, path: e.path }))
      } else {
        log?.warn({ path }, 'rmtab is corrupt; starting with an empty mount list')
      }
    }
    return new Rmtab(path, entries)
  }

  list(): RmtabEntry[] {
    return this.entries.map((e) => ({ ...e }))
  }

  /** Records a mount; adding a pair already present changes nothing. */
  add(host: string, path: string): Promise<void> {
    if (this.entries.some((e) => e.host === host && e.path === path)) return this.tail
    this.entries = [...this.entries, { host, path }]
    return this.save()
  }

  /** UMNT (RFC 1813 §5.2.3). */
  remove(host: string, path: string): Promise<void> {
    return this.filter((e) => e.host !== host || e.path !== path)
  }

  /** UMNTALL (RFC 1813 §5.2.4). */
  removeAll(host: string): Promise<void> {
    return this.filter((e) => e.host !== host)
  }

  private filter(keep: (e: RmtabEntry) => boolean): Promise<void> {
    const next = this.entries.filter(keep)
    if (next.length === this.entries.length) return this.tail
    this.entries = next
    return this.save()
  }

  /** Queues a save of the state as it is when the save runs; a failed save rejects only its own callers. */
  private save(): Promise<void> {
    const run = this.tail.then(async () => {
      const text = JSON.stringify({ version: 1, entries: this.entries }) + '\n'
      const dir = dirname(this.path)
      const tmp = await writeTemp(dir, RMTAB_FILE, text)
      try {
        await rename(tmp, this.path)
      } catch (err) {
        await unlink(tmp).catch(() => undefined)
        throw err
      }
    })
    this.tail = run.catch(() => undefined)
    return run
  }
}
