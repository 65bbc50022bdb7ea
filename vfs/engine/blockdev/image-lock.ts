import { acquireLockFile, LockBusyError } from '../../../common/lock-file.ts'
import type { LockFormat } from '../../../common/lock-file.ts'
import { BlockDevError } from './block-device.ts'

/**
 * One read-write opener per image file, across processes: the lock file `<image>.tsnfs-lock`
 * (common/lock-file.ts: who holds it, taken over from a holder that is gone). This file keeps the
 * image lock's own one-line format, so a lock written by an older version is still understood,
 * and its BLOCKDEV_LOCKED errors.
 *
 * Limits (said, not hidden): it binds only openers that use it, on one host and one pid
 * namespace; a lock written by another host is never judged stale (remove it by hand once that
 * host is down), nor is one that does not parse. Shared storage across hosts needs ext4's MMP.
 * Block devices do not use this file: they are opened with O_EXCL, which the kernel enforces
 * against mounts and other exclusive openers.
 */

export interface ImageLock {
  readonly path: string
  release(): Promise<void>
}

const LINE_FORMAT: LockFormat = {
  encode: (o) => `tsnfs-lock 1 pid=${o.pid} start=${o.start} boot=${o.boot} host=${o.host} nonce=${o.nonce}\n`,
  decode: (text) => {
    const m = /^tsnfs-lock 1 pid=(\d+) start=(\d*) boot=([0-9a-f-]*) host=(\S*) nonce=([0-9a-f]+)\n$/.exec(text)
    if (m === null) return null
    const [, pid = '', start = '', boot = '', host = '', nonce = ''] = m
    return { pid: Number(pid), start, boot, host, nonce, purpose: '', since: '' }
  },
}

export function lockPathFor(imagePath: string): string {
  return `${imagePath}.tsnfs-lock`
}

export async function acquireImageLock(imagePath: string): Promise<ImageLock> {
  const path = lockPathFor(imagePath)
  try {
    const lock = await acquireLockFile(path, { format: LINE_FORMAT })
    return { path, release: () => lock.release() }
  } catch (err) {
    if (!(err instanceof LockBusyError)) throw err
    const who = err.holder !== null ? `pid ${err.holder.pid} on ${err.holder.host}` : err.reason === 'unreadable' ? 'an unreadable lock file' : 'processes racing for it'
    throw new BlockDevError('BLOCKDEV_LOCKED', `${imagePath} is open read-write by ${who} (lock file ${path})`)
  }
}
