/*
 * Which mount daemon serves which mount point: each `tsnfs mount` daemon
 * claims its mount point in a small file under the run directory before it
 * mounts (so a second daemon for the same point is refused, even before
 * the first has mounted) and removes it when it exits. `tsnfs umount` finds
 * the daemon here by the mount point string alone: it never stats or
 * resolves another mount (a hung FUSE or NFS mount blocks stat(2)).
 */
import { createHash, randomBytes } from 'node:crypto'
import { linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { processRunning, processStartTime } from '../server/state.ts'

export interface DaemonRecord {
  pid: number
  /** processStartTime of the daemon: a recycled pid is not mistaken for it. */
  start?: number
  mountpoint: string
  source: string
  /** The FUSE connection's device ("0:52"), once mounted. */
  dev?: string
}

/** `$TSNFS_RUN_DIR`, else /run/tsnfs as root, else `$XDG_RUNTIME_DIR/tsnfs`, else a per-user directory in /tmp. */
export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TSNFS_RUN_DIR !== undefined && env.TSNFS_RUN_DIR !== '') return env.TSNFS_RUN_DIR
  const uid = process.getuid?.() ?? -1
  if (uid === 0) return '/run/tsnfs'
  if (env.XDG_RUNTIME_DIR?.startsWith('/') === true) return join(env.XDG_RUNTIME_DIR, 'tsnfs')
  return join(tmpdir(), `tsnfs-${String(uid)}`)
}

function recordPath(mountpoint: string): string {
  // Mount points may be long or hold any byte: the file is named by a hash, the point is inside.
  return join(runDir(), 'mounts', `${createHash('sha256').update(mountpoint).digest('hex').slice(0, 32)}.json`)
}

function readRecord(path: string): { text: string; record: DaemonRecord | null } | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    return null
  }
  try {
    const r = JSON.parse(text) as Partial<DaemonRecord>
    if (typeof r.pid === 'number' && typeof r.mountpoint === 'string' && typeof r.source === 'string') {
      return { text, record: { pid: r.pid, mountpoint: r.mountpoint, source: r.source, ...(typeof r.start === 'number' ? { start: r.start } : {}), ...(typeof r.dev === 'string' ? { dev: r.dev } : {}) } }
    }
  } catch {
    // a torn or foreign file: stale
  }
  return { text, record: null }
}

/** The live daemon that claimed `mountpoint`, or null. */
export function daemonOf(mountpoint: string): DaemonRecord | null {
  const r = readRecord(recordPath(mountpoint))?.record ?? null
  return r !== null && r.mountpoint === mountpoint && processRunning(r.pid, r.start) ? r : null
}

export class MountpointClaimed extends Error {
  readonly code = 'MOUNTPOINT_CLAIMED'
  readonly holder: DaemonRecord
  constructor(holder: DaemonRecord) {
    super(`${holder.mountpoint}: another tsnfs mount daemon (pid ${String(holder.pid)}, ${holder.source}) serves or is mounting it`)
    this.holder = holder
  }
}

export interface Claim {
  /** Rewrite the record (adding the device once mounted). */
  update(fields: Partial<Pick<DaemonRecord, 'dev'>>): void
  /** Remove the record if it is still ours (synchronous: from an 'exit' handler too). */
  release(): void
}

/** Claim `mountpoint` for this process: MountpointClaimed if a live daemon holds it; a dead one's claim is taken over. */
export function claimMountpoint(mountpoint: string, source: string): Claim {
  const path = recordPath(mountpoint)
  mkdirSync(join(runDir(), 'mounts'), { recursive: true, mode: 0o755 })
  const start = processStartTime(process.pid)
  let record: DaemonRecord = { pid: process.pid, mountpoint, source, ...(start !== undefined && start >= 0 ? { start } : {}) }
  let text = JSON.stringify(record) + '\n'
  for (let attempt = 0; ; attempt++) {
    const tmp = `${path}.${String(process.pid)}.${randomBytes(4).toString('hex')}.tmp`
    writeFileSync(tmp, text, { mode: 0o644 })
    try {
      linkSync(tmp, path)
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err
    } finally {
      unlinkSync(tmp)
    }
    const held = readRecord(path)
    const holder = held?.record ?? null
    if (holder !== null && holder.pid !== process.pid && holder.mountpoint === mountpoint && processRunning(holder.pid, holder.start)) {
      throw new MountpointClaimed(holder)
    }
    // Remove only the stale file we read: another daemon may have claimed the point since.
    if (held !== null && readRecord(path)?.text === held.text) {
      try {
        unlinkSync(path)
      } catch {
        // gone already
      }
    }
  }
  return {
    update(fields) {
      if (readRecord(path)?.text !== text) return
      record = { ...record, ...fields }
      const next = JSON.stringify(record) + '\n'
      const tmp = `${path}.${String(process.pid)}.${randomBytes(4).toString('hex')}.tmp`
      writeFileSync(tmp, next, { mode: 0o644 })
      // rename is atomic: a reader sees the old record or the new one.
      renameSync(tmp, path)
      text = next
    },
    release() {
      if (readRecord(path)?.text !== text) return
      try {
        unlinkSync(path)
      } catch {
        // gone already
      }
    },
  }
}
