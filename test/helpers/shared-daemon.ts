/*
 * A host daemon that test processes share: the system's rpcbind on port 111
 * and rpc.statd, which Ganesha needs. There can be one of each, and tap runs
 * test files in parallel, so a test must not stop one that another test
 * still uses (Ganesha asks rpcbind for rpc.statd each time it starts
 * monitoring a client, and denies locks when that fails). Each user process
 * leaves its pid in a users directory under /tmp; the first that finds no
 * daemon answering starts one, with a detached reaper shell that stops it
 * once no user process is alive (a test that releases it, or one killed by
 * tap's timeout, counts alike). A daemon that was already running, started
 * by someone else, is used and never stopped. Every step that reads or
 * changes the users and the daemon holds a lock directory, taken atomically
 * with mkdir; a lock whose holder died is broken.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

const ROOT = '/tmp/tsnfs-test-daemons'

export interface SharedDaemon {
  /** A name for the registry directory and messages (rpcbind, statd). */
  name: string
  /** The binary and its arguments; it must stay in the foreground. */
  command: string
  args: readonly string[]
  /** Whether the daemon (ours or anyone's) answers. */
  answers(): Promise<boolean>
  /** Where its output goes. */
  logFile: string
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, 'lock')
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      mkdirSync(lock)
      writeFileSync(join(lock, 'pid'), String(process.pid))
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      let holder = 0
      try {
        holder = Number(readFileSync(join(lock, 'pid'), 'utf8'))
      } catch {
        // Taken a moment ago, its pid not yet written: wait.
      }
      if (holder > 0 && !alive(holder)) rmSync(lock, { recursive: true, force: true })
      else if (Date.now() > deadline) throw new Error(`${lock} held by pid ${String(holder)} for 30 s`, { cause: err })
      else await sleep(50)
    }
  }
  try {
    return await fn()
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n')
  } catch {
    return '(no log)'
  }
}

/*
 * The reaper: $1 the registry directory, $2 the daemon's pid. Each second,
 * under the lock, it drops the pid files of dead users; with none left it
 * stops the daemon (TERM, then KILL) and exits. It exits too when the
 * daemon is gone.
 */
const REAPER = `dir="$1"; d="$2"
while kill -0 "$d" 2>/dev/null; do
  sleep 1
  mkdir "$dir/lock" 2>/dev/null || continue
  echo $$ > "$dir/lock/pid"
  live=0
  for f in "$dir"/users/*; do
    [ -e "$f" ] || continue
    if kill -0 "\${f##*/}" 2>/dev/null; then live=1; else rm -f "$f"; fi
  done
  if [ "$live" = 0 ]; then
    kill -TERM "$d" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$d" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$d" 2>/dev/null
    rm -f "$dir/pid"
    rm -rf "$dir/lock"
    exit 0
  fi
  rm -rf "$dir/lock"
done`

/**
 * Use the daemon, starting it if none answers. Resolves to release(), which
 * the caller runs at teardown (after stopping whatever needs the daemon).
 */
export async function useSharedDaemon(d: SharedDaemon): Promise<() => void> {
  const dir = join(ROOT, d.name)
  mkdirSync(join(dir, 'users'), { recursive: true })
  const me = join(dir, 'users', String(process.pid))
  const release = (): void => {
    rmSync(me, { force: true })
  }
  await withLock(dir, async () => {
    writeFileSync(me, '')
    if (await d.answers()) return
    const out = openSync(d.logFile, 'a')
    const child = spawn(d.command, [...d.args], { detached: true, stdio: ['ignore', out, out] })
    closeSync(out)
    child.unref()
    const pid = child.pid ?? 0
    writeFileSync(join(dir, 'pid'), String(pid))
    spawn('sh', ['-c', REAPER, `tsnfs-test-reaper-${d.name}`, dir, String(pid)], { detached: true, stdio: 'ignore' }).unref()
    for (let i = 0; i < 50; i++) {
      if (child.exitCode !== null) break
      if (await d.answers()) return
      await sleep(100)
    }
    release()
    throw new Error(`${d.name} (${d.command}) did not answer within 5 s (exit status ${String(child.exitCode)}):\n${tail(d.logFile)}`)
  })
  return release
}
