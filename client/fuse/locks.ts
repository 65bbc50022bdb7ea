/*
 * fcntl and flock locks through the mount, onto the server's NLM (the
 * mount's LockClient). The kernel negotiates FUSE_POSIX_LOCKS and
 * FUSE_FLOCK_LOCKS at INIT and then leaves every lock to us: GETLK, SETLK
 * and SETLKW name the open file, the kernel's lock owner (a process's file
 * table for fcntl, the open file for flock) and the range, end inclusive
 * (OFFSET_MAX: to the end). flock arrives as a whole-file lock of the open
 * file's owner, which is what the Linux NFS client sends for it too.
 *
 * Each kernel lock owner becomes an NLM owner of its own: an svid given
 * out here (Linux's lockd does the same, __nlm_alloc_pid), so two processes
 * of this host conflict at the server as they would locally. POSIX drops a
 * process's locks on a file at any close of it: the kernel says so with
 * FLUSH's lock_owner; flock locks go with the open file's RELEASE
 * (FUSE_RELEASE_FLOCK_UNLOCK). A process that is killed closes its files
 * on the way out, so its locks go the same way.
 *
 * Errors as the Linux client reports them: denied EAGAIN, no locks
 * ENOLCK, deadlock EDEADLK; a server in its grace period is waited out; an
 * interrupted SETLKW (FUSE_INTERRUPT) cancels its NLM request (the session
 * has answered EINTR).
 */
import type { LockClient } from '../lock/lock-client.ts'
import { F_RDLCK, F_UNLCK, F_WRLCK, OFFSET_MAX, lkOut } from './abi.ts'
import type { LkIn } from './abi.ts'
import { FuseError } from './convert.ts'
import type { Reply } from './session.ts'

/** Kernel lock owners with an svid at once; past it, new owners get ENOLCK. */
const MAX_OWNERS = 65_536

export class FuseLocks {
  private readonly locks: LockClient
  private readonly svids = new Map<bigint, number>()
  /** Owners with a lock request under way (their svid must stay while it runs). */
  private readonly busy = new Map<bigint, number>()
  private nextSvid = 1

  constructor(locks: LockClient) {
    this.locks = locks
  }

  /** Owners known now (tests). */
  get owners(): number {
    return this.svids.size
  }

  private svidOf(owner: bigint): number {
    let s = this.svids.get(owner)
    if (s === undefined) {
      if (this.svids.size >= MAX_OWNERS) throw new FuseError('ENOLCK')
      s = this.nextSvid
      this.nextSvid = this.nextSvid >= 0x7fff_ffff ? 1 : this.nextSvid + 1
      this.svids.set(owner, s)
    }
    return s
  }

  /** Forget an owner's svid once it holds nothing and waits for nothing. */
  private async settle(owner: bigint, svid: number): Promise<void> {
    if ((this.busy.get(owner) ?? 0) > 0) return
    const o = await this.locks.owner(svid)
    if (this.locks.held.owned(x => x.svid === o.svid && x.oh.equals(o.oh)).length === 0) this.svids.delete(owner)
  }

  /** GETLK: the conflicting lock, or F_UNLCK. */
  async getlk(fh: Buffer, lk: LkIn): Promise<Reply> {
    const range = rangeOf(lk)
    const h = await this.locks.test(fh, { ...range, owner: this.svidOf(lk.owner), exclusive: lk.type === F_WRLCK, retryGrace: true })
    if (h === null) return { data: [lkOut(F_UNLCK, 0n, 0n, 0)] }
    const last = h.length === 0n || h.start + h.length - 1n > OFFSET_MAX ? OFFSET_MAX : h.start + h.length - 1n
    return { data: [lkOut(h.exclusive ? F_WRLCK : F_RDLCK, h.start > OFFSET_MAX ? OFFSET_MAX : h.start, last, h.svid)] }
  }

  /** SETLK and SETLKW (wait): lock, or with F_UNLCK unlock. */
  async setlk(fh: Buffer, lk: LkIn, wait: boolean, signal: AbortSignal): Promise<Reply> {
    const range = rangeOf(lk)
    if (lk.type === F_UNLCK) {
      const svid = this.svids.get(lk.owner)
      // An owner we never gave an svid holds nothing here.
      if (svid === undefined) return {}
      await this.locks.unlock(fh, { ...range, owner: svid })
      await this.settle(lk.owner, svid)
      return {}
    }
    if (lk.type !== F_RDLCK && lk.type !== F_WRLCK) throw new FuseError('EINVAL')
    const svid = this.svidOf(lk.owner)
    this.busy.set(lk.owner, (this.busy.get(lk.owner) ?? 0) + 1)
    try {
      await this.locks.lock(fh, { ...range, owner: svid, exclusive: lk.type === F_WRLCK, wait, signal, retryGrace: true })
    } finally {
      const n = (this.busy.get(lk.owner) ?? 1) - 1
      if (n === 0) this.busy.delete(lk.owner)
      else this.busy.set(lk.owner, n)
      await this.settle(lk.owner, svid).catch(() => undefined)
    }
    return {}
  }

  /** A close by owner (FLUSH's lock_owner, or RELEASE's for flock): every lock it holds on the file goes. */
  async dropOwner(fh: Buffer, owner: bigint): Promise<void> {
    const svid = this.svids.get(owner)
    if (svid === undefined) return
    await this.locks.unlockAll(fh, svid)
    await this.settle(owner, svid)
  }
}

/** The kernel's [start, end] (end inclusive, OFFSET_MAX = to EOF) as NLM's offset and length. */
function rangeOf(lk: LkIn): { start: bigint; length: bigint } {
  if (lk.end < lk.start || lk.start > OFFSET_MAX) throw new FuseError('EINVAL')
  return { start: lk.start, length: lk.end >= OFFSET_MAX ? 0n : lk.end - lk.start + 1n }
}
