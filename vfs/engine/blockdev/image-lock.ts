import { randomBytes } from 'node:crypto'
import { link, open, readFile, rename, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { BlockDevError } from './block-device.ts'

/**
 * One read-write opener per image file, across processes. Node has no flock(2) or fcntl locks,
 * so the lock is a file beside the image, `<image>.tsnfs-lock`, created with O_EXCL and holding
 * who owns it: pid, the process's start time (from /proc/<pid>/stat, so a reused pid — pid 1 in
 * a restarted container — is not mistaken for the old owner), the boot id and the host name.
 * A lock whose owner is gone (other boot, no such pid, other start time) is stale and taken over.
 *
 * Limits (said, not hidden): it binds only openers that use it, on one host and one pid
 * namespace; a lock written by another host is never judged stale (remove it by hand once that
 * host is down). Shared storage across hosts needs ext4's MMP. Block devices do not use this
 * file: they are opened with O_EXCL, which the kernel enforces against mounts and other
 * exclusive openers.
 */

interface Owner {
  pid: number
  start: string
  boot: string
  host: string
  nonce: string
}

export interface ImageLock {
  readonly path: string
  release(): Promise<void>
}

export function lockPathFor(imagePath: string): string {
  return `${imagePath}.tsnfs-lock`
}

export async function acquireImageLock(imagePath: string): Promise<ImageLock> {
  const path = lockPathFor(imagePath)
  const me: Owner = { pid: process.pid, start: await startTimeOf(process.pid), boot: await bootId(), host: hostname(), nonce: randomBytes(8).toString('hex') }
  const text = format(me)
  // A few rounds: each round either takes the lock, proves it held, or removes one stale lock.
  for (let round = 0; round < 5; round++) {
    if (await linkInPlace(path, text, me)) return { path, release: () => releaseIfOurs(path, text) }
    const seen = await readOrNull(path)
    if (seen === null) continue
    const holder = parse(seen)
    if (holder === null) throw locked(imagePath, path, 'an unreadable lock file')
    if (await isAlive(holder, me)) throw locked(imagePath, path, `pid ${holder.pid} on ${holder.host}`)
    // Stale. Move it aside by rename: of several processes racing for the same stale lock, one
    // rename succeeds and the others see ENOENT and start over.
    const aside = `${path}.stale-${me.pid}-${me.nonce}`
    try {
      await rename(path, aside)
    } catch (err) {
      if (hasCode(err, 'ENOENT')) continue
      throw err
    }
    const moved = await readOrNull(aside)
    if (moved !== seen) {
      // Between our read and our rename someone took the lock afresh: put theirs back.
      try {
        await link(aside, path)
      } finally {
        await unlink(aside)
      }
      throw locked(imagePath, path, 'a process that took it just now')
    }
    await unlink(aside)
  }
  throw locked(imagePath, path, 'processes racing for it')
}

/**
 * Creates the lock with its content already in it: written to a private file, then link(2)ed to
 * the lock name, which fails with EEXIST if the name exists. An O_EXCL create followed by a write
 * could leave an empty lock behind a crash, which no one could judge stale.
 */
async function linkInPlace(path: string, text: string, me: Owner): Promise<boolean> {
  const temp = `${path}.new-${me.pid}-${me.nonce}`
  const fh = await open(temp, 'wx', 0o644)
  try {
    await fh.writeFile(text)
  } finally {
    await fh.close()
  }
  try {
    await link(temp, path)
    return true
  } catch (err) {
    if (hasCode(err, 'EEXIST')) return false
    throw err
  } finally {
    await unlink(temp)
  }
}

function locked(imagePath: string, lockPath: string, who: string): BlockDevError {
  return new BlockDevError('BLOCKDEV_LOCKED', `${imagePath} is open read-write by ${who} (lock file ${lockPath})`)
}

async function releaseIfOurs(path: string, text: string): Promise<void> {
  if ((await readOrNull(path)) !== text) return
  try {
    await unlink(path)
  } catch (err) {
    if (!hasCode(err, 'ENOENT')) throw err
  }
}

async function isAlive(holder: Owner, me: Owner): Promise<boolean> {
  if (holder.host !== me.host) return true
  if (holder.boot !== '' && me.boot !== '' && holder.boot !== me.boot) return false
  if (holder.start !== '' && me.start !== '') {
    const start = await startTimeOf(holder.pid)
    return start !== '' && start === holder.start
  }
  try {
    process.kill(holder.pid, 0)
    return true
  } catch (err) {
    return !hasCode(err, 'ESRCH')
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or '' where /proc is absent. */
async function startTimeOf(pid: number): Promise<string> {
  const stat = await readOrNull(`/proc/${pid}/stat`)
  if (stat === null) return ''
  // The command name (field 2) may hold spaces and parentheses; fields after the last ')' are plain.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return fields[19] ?? ''
}

async function bootId(): Promise<string> {
  return ((await readOrNull('/proc/sys/kernel/random/boot_id')) ?? '').trim()
}

function format(o: Owner): string {
  return `tsnfs-lock 1 pid=${o.pid} start=${o.start} boot=${o.boot} host=${o.host} nonce=${o.nonce}\n`
}

function parse(text: string): Owner | null {
  const m = /^tsnfs-lock 1 pid=(\d+) start=(\d*) boot=([0-9a-f-]*) host=(\S*) nonce=([0-9a-f]+)\n$/.exec(text)
  if (m === null) return null
  const [, pid = '', start = '', boot = '', host = '', nonce = ''] = m
  return { pid: Number(pid), start, boot, host, nonce }
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return null
    throw err
  }
}

function hasCode(err: unknown, code: string): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === code
}
