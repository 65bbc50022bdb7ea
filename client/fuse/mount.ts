/*
 * Mounting and unmounting (TOOLING.md §3b): open /dev/fuse, let mount(8)
 * attach it (`mount -i`: no mount.fuse helper, which would try to run the
 * source as a command), start reading only once mount has exited 0 (a read
 * on an unattached fd fails with EPERM), and wait for INIT. umount(8) runs
 * as a child process, never synchronously: unmounting waits on requests
 * this very process must answer. After umount the reader's read fails
 * with ENODEV and the session ends; only then may the process exit (an
 * exit while the reader is blocked in /dev/fuse hangs).
 *
 * Mount flags: nosuid and nodev unless asked otherwise (suid, dev: root
 * only), as every FUSE mount of files other users own must carry them (a
 * setuid binary or a device node on the server would otherwise act here);
 * mount(8) turns them into MS_NOSUID and MS_NODEV for mount(2), and
 * /proc/mounts shows them.
 *
 * default_permissions (the kernel checks every access against the mode,
 * owner and group it holds, with the caller's full credentials, before a
 * request reaches us) is set on every mount other users may enter
 * (allow_other) or that a user other than root made. There it is what
 * keeps one user from walking, through the kernel's cached entries, a
 * directory only another may search: without it FUSE checks no search
 * permission at all (fs/fuse/dir.c fuse_permission). The server then also
 * judges the caller's own AUTH_SYS credential (callers.ts), which catches
 * what the kernel's stale attributes would let through (nfs-fs.ts).
 * A mount only root may enter (no allow_other, made by root: FUSE admits
 * no other caller) goes without it, as the Linux NFS client does, which
 * leaves every decision to the server (nfs_permission asks ACCESS): the
 * kernel would grant root everything anyway (CAP_DAC_OVERRIDE), and its
 * check cost a GETATTR of the directory after every create and remove,
 * which invalidate the directory's attributes in the kernel (2,207
 * requests against 346 for cp -a, tar x, rsync -a and rm -rf of a
 * 294-entry tree; bench/README.md). What stays: the kernel's own check of
 * a regular file's execute bits, access(2) and chdir as FUSE ACCESS
 * (answered by the server's ACCESS as the caller), an open's ACCESS
 * (nfs-files.ts), and the server's judgement of every change.
 */
import { spawn } from 'node:child_process'
import { closeSync, openSync, writeFileSync } from 'node:fs'
import type { NfsClient } from '../nfs-client.ts'
import { FUSE_MIN_READ_BUFFER } from './abi.ts'
import { Callers } from './callers.ts'
import { whyNoFusePoll } from './native-poll.ts'
import { mountAt } from './mountinfo.ts'
import { NfsFiles } from './nfs-files.ts'
import { NfsFs } from './nfs-fs.ts'
import { FuseLocks } from './locks.ts'
import { createHandler } from './ops.ts'
import type { LocalLock } from './options.ts'
import { FuseSession } from './session.ts'
import type { FuseLogger } from './session.ts'

export interface FuseMountOptions {
  /** What /proc/mounts shows as the source ('host:/export'). */
  source: string
  mountpoint: string
  /** Let other users in (the kernel then checks permissions too: default_permissions). */
  allowOther?: boolean
  readOnly?: boolean
  /** Honour setuid/setgid bits (default: nosuid). Root only. */
  suid?: boolean
  /** Honour device nodes (default: nodev). Root only. */
  dev?: boolean
  /** false: noexec. */
  exec?: boolean
  /** Every request as the client's own credential (`-o uid=,gid=`), not as its caller. */
  fixedIdentity?: boolean
  /** Which locks stay in the kernel (nfs(5) local_lock; default none: all go to the server, unless the client has locking off). */
  localLock?: LocalLock
  log: FuseLogger
}

/** The mount(8) option list of a FUSE mount of fd. */
export function fuseMountOptions(opts: Omit<FuseMountOptions, 'source' | 'mountpoint' | 'log'>, uid: number, gid: number): string {
  const o = ['fd=3', 'rootmode=40000', `user_id=${String(uid)}`, `group_id=${String(gid)}`]
  // Only root's own mounts go without: see the file's comment.
  if (opts.allowOther === true || uid !== 0) o.push('default_permissions')
  if (opts.allowOther === true) o.push('allow_other')
  if (opts.readOnly === true) o.push('ro')
  o.push(opts.suid === true ? 'suid' : 'nosuid', opts.dev === true ? 'dev' : 'nodev')
  if (opts.exec === false) o.push('noexec')
  return o.join(',')
}

export class FuseMountError extends Error {
  readonly code: 'FUSE_MOUNT_FAILED' | 'FUSE_UMOUNT_FAILED' | 'FUSE_INIT_FAILED'
  constructor(code: FuseMountError['code'], message: string) {
    super(message)
    this.name = 'FuseMountError'
    this.code = code
  }
}

/** Run a command to completion without blocking the event loop; stderr is kept for errors. */
export function runTool(cmd: string, args: string[], extraFds: number[] = []): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe', ...extraFds] })
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', code => {
      resolve({ code, stderr: stderr.trim() })
    })
  })
}

/**
 * umount(8) the mount point (lazy: detach now, finish when the last file
 * closes). The path must be canonical (as /proc/self/mountinfo shows it):
 * umount runs with --no-canonicalize, since resolving the path would stat
 * the mount, and a stat through a mount whose server does not answer waits
 * forever (and keeps the mount busy while it waits).
 */
export async function unmount(mountpoint: string, opts: { lazy?: boolean } = {}): Promise<void> {
  const r = await runTool('umount', ['--no-canonicalize', ...(opts.lazy === true ? ['-l'] : []), mountpoint])
  if (r.code !== 0) throw new FuseMountError('FUSE_UMOUNT_FAILED', r.stderr === '' ? `umount ${mountpoint}: exit ${String(r.code)}` : r.stderr)
}

/** Where the kernel lets root end a FUSE connection by hand (fusectl; systemd mounts it at boot). */
const FUSECTL = '/sys/fs/fuse/connections'

/**
 * End a FUSE connection whatever holds it (its device "0:N" from the mount
 * table): every waiting request fails with ECONNABORTED, the reader's read
 * fails with ENODEV, and the process may exit (an exit while the reader is
 * blocked in /dev/fuse hangs). Mounts fusectl first if it is not (as root).
 * Returns false when that is impossible.
 */
export async function abortConnection(dev: string): Promise<boolean> {
  const minor = /^0:(\d+)$/.exec(dev)?.[1]
  if (minor === undefined) return false
  const file = `${FUSECTL}/${minor}/abort`
  const poke = (): boolean => {
    try {
      writeFileSync(file, '1')
      return true
    } catch {
      return false
    }
  }
  if (poke()) return true
  if (mountAt(FUSECTL)?.fstype === 'fusectl') return false
  const r = await runTool('mount', ['-t', 'fusectl', 'fusectl', FUSECTL]).catch(() => null)
  return r?.code === 0 && poke()
}

export class FuseMount {
  readonly client: NfsClient
  readonly mountpoint: string
  readonly session: FuseSession
  readonly fs: NfsFs
  readonly files: NfsFiles
  /** Resolves with why the connection ended ('ENODEV': unmounted). */
  readonly ended: Promise<string>
  /** The connection's device ("0:N") from the mount table once mounted, for abortConnection. */
  dev: string | null = null

  private constructor(client: NfsClient, mountpoint: string, session: FuseSession, fs: NfsFs, files: NfsFiles) {
    this.client = client
    this.mountpoint = mountpoint
    this.session = session
    this.fs = fs
    this.files = files
    this.ended = session.ended
  }

  /** Mount the client's tree at rootFh on opts.mountpoint; resolves once the kernel's INIT is answered. */
  static async mount(client: NfsClient, rootFh: Buffer, opts: FuseMountOptions): Promise<FuseMount> {
    const uid = process.getuid?.() ?? 0
    const gid = process.getgid?.() ?? 0
    if ((opts.suid === true || opts.dev === true) && uid !== 0) throw new FuseMountError('FUSE_MOUNT_FAILED', 'the suid and dev options are for root only')
    const fd = openSync('/dev/fuse', 'r+')
    const fs = new NfsFs(client, rootFh)
    let session: FuseSession | null = null
    const files = new NfsFiles(fs, {
      notify: (code, body) => session?.notify(code, body) ?? false,
      notifyAsync: (code, body) => session?.notifyAsync(code, body) ?? Promise.resolve(false),
    })
    const maxWrite = client.limits.wsize
    let initDone: () => void = () => undefined
    const init = new Promise<void>(resolve => {
      initDone = resolve
    })
    const callers = new Callers(client, { fixed: opts.fixedIdentity === true })
    const local = opts.localLock ?? 'none'
    const locks = client.options.lock.enabled && local !== 'all' ? new FuseLocks(await client.locks()) : null
    const handler = createHandler(fs, files, {
      maxWrite, readdirplus: client.usesReaddirPlus, log: opts.log, onInit: () => { initDone() }, callers,
      locks, posixLocks: local !== 'posix', flockLocks: local !== 'flock',
    })
    session = new FuseSession(fd, handler, opts.log)
    let r: { code: number | null; stderr: string }
    try {
      r = await runTool('mount', ['-i', '-t', 'fuse.tsnfs', '-o', fuseMountOptions(opts, uid, gid), opts.source, opts.mountpoint], [fd])
    } catch (err) {
      closeSync(fd)
      throw err
    }
    if (r.code !== 0) {
      closeSync(fd)
      throw new FuseMountError('FUSE_MOUNT_FAILED', r.stderr === '' ? `mount ${opts.mountpoint}: exit ${String(r.code)}` : r.stderr)
    }
    // The kernel's request buffer rule: at least 8 KiB, and a whole WRITE (header, write_in, data) must fit.
    session.start(Math.max(FUSE_MIN_READ_BUFFER, maxWrite + 4096))
    if (session.reader === 'worker') opts.log.warn({ why: whyNoFusePoll() }, 'fuse: reading /dev/fuse through a worker thread (no native reader): a thread wake-up more per request')
    else opts.log.debug({ reader: session.reader }, 'fuse: reading /dev/fuse on the main thread')
    const m = new FuseMount(client, opts.mountpoint, session, fs, files)
    const why = await Promise.race([init.then(() => null), session.ended])
    if (why !== null) {
      // Never leave the mount behind as "Transport endpoint is not connected".
      await unmount(opts.mountpoint, { lazy: true }).catch(() => undefined)
      throw new FuseMountError('FUSE_INIT_FAILED', `connection ended before INIT: ${why}`)
    }
    const entry = mountAt(opts.mountpoint)
    m.dev = entry?.fstype === 'fuse.tsnfs' ? entry.dev : null
    return m
  }

  /** umount, or with lazy a detach that completes when the last open file closes. */
  unmount(opts: { lazy?: boolean } = {}): Promise<void> {
    return unmount(this.mountpoint, opts)
  }

  /**
   * The whole shutdown: umount (lazily if busy), wait for the connection to
   * end, close what is still open (writing it out), and unmount the client.
   */
  async stop(): Promise<void> {
    try {
      await this.unmount()
    } catch {
      await this.unmount({ lazy: true }).catch(() => undefined)
    }
    await this.ended
    await this.finish()
  }

  /** After the connection ended: write out and close files, then the client. */
  async finish(): Promise<void> {
    await this.files.closeAll()
    await this.client.umount()
  }
}
