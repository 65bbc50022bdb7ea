/*
 * Request dispatch: decode each operation's body (fuse.h layouts), run it
 * on NfsFs / NfsFiles, turn failures into errnos. INIT negotiates protocol
 * 7.31 and what we take of the kernel's offer: async reads, big writes up
 * to the client's wsize (max_pages), READDIRPLUS when the server has it,
 * parallel directory operations, cached symlinks (an NFS symlink's text
 * never changes for a handle) and automatic page cache invalidation on
 * mtime/size changes, and HANDLE_KILLPRIV: the setuid and setgid bits a
 * write, truncate or chown drops are the server's to drop, as the Linux NFS
 * client leaves them (nfs_setattr ignores ATTR_KILL_SUID); without it the
 * kernel sends a chmod as the writer, which the server refuses a non-owner.
 * Not the writeback cache: the kernel here (6.18) would keep close-to-open
 * (FLUSH writes the dirty pages out first), but large sequential writes
 * measured slower with it (dd of 256 MiB: 1.1-2.4 s against 0.4-0.6 s
 * without, bench copy), and our client already delays writes up to FLUSH;
 * WRITE data arrives in buffers the reader thread gets back once committed
 * (session.ts), whole blocks sent without a copy.
 * With locking on (the default; not with nolock), POSIX and flock locks
 * are negotiated too and go to the server's NLM (locks.ts); local_lock=
 * keeps either kind in the kernel, as nfs(5)'s option of that name does.
 * Operations not listed get ENOSYS (the kernel remembers that for most).
 *
 * Each operation acts as its caller (callers.ts): the header's uid, gid
 * and the caller's groups; one on an open file or directory (READ, WRITE,
 * FLUSH, FSYNC, RELEASE, READDIR, a truncate through a file handle) as
 * that file's opener.
 */
import { constants } from 'node:os'
import type { nfstime3 } from '../../xdr/generated/nfs3.ts'
import { BodyReader, FATTR, FUSE_MINOR, FUSE_RELEASE_FLOCK_UNLOCK, INIT, OP, decodeInitIn, decodeLkIn, initOut } from './abi.ts'
import type { Caller, Callers } from './callers.ts'
import { errnoFor } from './convert.ts'
import type { FuseLocks } from './locks.ts'
import type { NfsFiles } from './nfs-files.ts'
import type { NfsFs, SetattrIn } from './nfs-fs.ts'
import type { FuseHandler, FuseLogger, FuseRequest, Reply } from './session.ts'

export interface OpsConfig {
  /** Largest WRITE the kernel may send (the client's wsize). */
  maxWrite: number
  /** Use READDIRPLUS (the client's readdirplus option). */
  readdirplus: boolean
  log: FuseLogger
  /** Called once INIT is answered (the mount is usable). */
  onInit?: (kernel: { major: number; minor: number }) => void
  /** Who each request acts as. */
  callers: Callers
  /** NLM locks through the mount; null: the kernel keeps every lock local (nolock). */
  locks: FuseLocks | null
  /** Which kinds go to the server: fcntl (posix) and flock; what is off stays in the kernel. */
  posixLocks: boolean
  flockLocks: boolean
}

const PAGE = 4096
const MAX_PAGES = 256
const { ENOSYS, EPROTO } = constants.errno

function time(r: BodyReader): { s: bigint } {
  return { s: r.u64() }
}

function decodeSetattr(body: Buffer): SetattrIn {
  const r = new BodyReader(body)
  const valid = r.u32()
  r.skip(4)
  const fh = r.u64()
  const size = r.u64()
  r.skip(8) // lock_owner
  const atime = time(r)
  const mtime = time(r)
  r.skip(8) // ctime
  const atimensec = r.u32()
  const mtimensec = r.u32()
  r.skip(4) // ctimensec
  const mode = r.u32()
  r.skip(4)
  const uid = r.u32()
  const gid = r.u32()
  const t = (s: bigint, ns: number): nfstime3 => ({ seconds: Number(BigInt.asUintN(32, s)), nseconds: ns })
  return { valid, fh, size, atime: t(atime.s, atimensec), mtime: t(mtime.s, mtimensec), mode, uid, gid }
}

export function initReply(body: Buffer, cfg: OpsConfig): Reply {
  const k = decodeInitIn(body)
  if (k.major !== 7 || k.minor < FUSE_MINOR) return { errno: EPROTO }
  let want: number = INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.AUTO_INVAL_DATA | INIT.PARALLEL_DIROPS | INIT.MAX_PAGES | INIT.CACHE_SYMLINKS | INIT.ASYNC_DIO | INIT.HANDLE_KILLPRIV
  if (cfg.readdirplus) want |= INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO
  if (cfg.locks !== null && cfg.posixLocks) want |= INIT.POSIX_LOCKS
  if (cfg.locks !== null && cfg.flockLocks) want |= INIT.FLOCK_LOCKS
  const maxPages = Math.min(MAX_PAGES, Math.max(1, Math.ceil(cfg.maxWrite / PAGE)))
  return {
    data: [initOut({ maxReadahead: k.maxReadahead, flags: k.flags & want, maxBackground: 64, congestionThreshold: 48, maxWrite: Math.min(cfg.maxWrite, maxPages * PAGE), maxPages })],
    sent: () => cfg.onInit?.({ major: k.major, minor: k.minor }),
  }
}

async function run(fs: NfsFs, files: NfsFiles, cfg: OpsConfig, req: FuseRequest): Promise<Reply | null> {
  const r = new BodyReader(req.body)
  const node = (): ReturnType<NfsFs['node']> => fs.node(req.nodeid)
  // Only operations that act on the server ask who the caller is (a /proc read for a new caller).
  const who = (): Caller => cfg.callers.of(req)
  switch (req.opcode) {
    case OP.INIT:
      return initReply(req.body, cfg)
    case OP.DESTROY:
      return {}
    case OP.FORGET:
      fs.forget(req.nodeid, r.u64())
      return null
    case OP.BATCH_FORGET: {
      const count = r.u32()
      r.skip(4)
      for (let i = 0; i < count; i++) fs.forget(r.u64(), r.u64())
      return null
    }
    case OP.LOOKUP:
      return fs.lookup(who(), node(), r.name())
    case OP.GETATTR:
      return fs.getattr(who(), node())
    case OP.SETATTR: {
      const s = decodeSetattr(req.body)
      // ftruncate and open(O_TRUNC) name the file: they act as its opener (nfs3_proc_setattr uses the file's credential).
      const opener = (s.valid & FATTR.FH) !== 0 ? files.openerOf(s.fh) : undefined
      return fs.setattr(opener ?? who(), node(), s)
    }
    case OP.READLINK:
      return fs.readlink(who(), node())
    case OP.SYMLINK: {
      const name = r.name()
      return fs.symlink(who(), node(), name, r.name())
    }
    case OP.MKNOD: {
      const mode = r.u32()
      const rdev = r.u32()
      r.skip(8)
      return fs.mknod(who(), node(), r.name(), mode, rdev)
    }
    case OP.MKDIR: {
      const mode = r.u32()
      r.skip(4)
      return fs.mkdir(who(), node(), r.name(), mode)
    }
    case OP.UNLINK:
      return fs.remove(who(), node(), r.name(), 'REMOVE')
    case OP.RMDIR:
      return fs.remove(who(), node(), r.name(), 'RMDIR')
    case OP.RENAME: {
      const newDir = fs.node(r.u64())
      const name = r.name()
      return fs.rename(who(), node(), name, newDir, r.name(), 0)
    }
    case OP.RENAME2: {
      const newDir = fs.node(r.u64())
      const flags = r.u32()
      r.skip(4)
      const name = r.name()
      return fs.rename(who(), node(), name, newDir, r.name(), flags)
    }
    case OP.LINK: {
      const target = fs.node(r.u64())
      return fs.link(who(), target, node(), r.name())
    }
    case OP.OPEN:
      return files.open(who(), node(), r.u32())
    case OP.CREATE: {
      const flags = r.u32()
      const mode = r.u32()
      r.skip(8)
      return files.create(who(), node(), r.name(), mode, flags)
    }
    case OP.READ: {
      const fh = r.u64()
      const offset = r.u64()
      return files.read(fh, offset, r.u32())
    }
    case OP.WRITE: {
      const fh = r.u64()
      const offset = r.u64()
      const size = r.u32()
      return files.write(fh, offset, req.body.subarray(40, 40 + size), req.keep())
    }
    case OP.FLUSH: {
      const fh = r.u64()
      r.skip(8)
      const owner = r.u64()
      const locks = cfg.locks
      if (locks === null) return files.sync(fh, true)
      // POSIX: any close drops the closing process's locks on the file, whatever the write-out says.
      const handle = files.handleOf(fh)
      try {
        return await files.sync(fh, true)
      } finally {
        await locks.dropOwner(handle, owner).catch((err: unknown) => { cfg.log.warn({ err }, 'fuse: unlock at close failed') })
      }
    }
    case OP.FSYNC:
      return files.sync(r.u64(), false)
    case OP.RELEASE: {
      const fh = r.u64()
      r.skip(4)
      const releaseFlags = r.u32()
      const owner = r.u64()
      if (cfg.locks !== null && (releaseFlags & FUSE_RELEASE_FLOCK_UNLOCK) !== 0) {
        await cfg.locks.dropOwner(files.handleOf(fh), owner).catch((err: unknown) => { cfg.log.warn({ err }, 'fuse: flock unlock at release failed') })
      }
      return files.release(fh)
    }
    case OP.GETLK:
    case OP.SETLK:
    case OP.SETLKW: {
      const locks = cfg.locks
      if (locks === null) return { errno: ENOSYS }
      const lk = decodeLkIn(req.body)
      const handle = files.handleOf(lk.fh)
      if (req.opcode === OP.GETLK) return locks.getlk(handle, lk)
      return locks.setlk(handle, lk, req.opcode === OP.SETLKW, req.signal())
    }
    case OP.STATFS:
      return fs.statfs(who())
    case OP.ACCESS:
      return fs.access(who(), node(), r.u32())
    case OP.OPENDIR:
      return files.opendir(who(), node())
    case OP.READDIR:
    case OP.READDIRPLUS: {
      const fh = r.u64()
      const offset = r.u64()
      return files.readdir(fh, offset, r.u32(), req.opcode === OP.READDIRPLUS)
    }
    case OP.RELEASEDIR:
      return files.releasedir(r.u64())
    case OP.FSYNCDIR:
      // NFSv3 directory operations are synchronous on the server (RFC 1813 §3.3.21: COMMIT is for file data).
      return {}
    default:
      return { errno: ENOSYS }
  }
}

export function createHandler(fs: NfsFs, files: NfsFiles, cfg: OpsConfig): FuseHandler {
  return async req => {
    try {
      return await run(fs, files, cfg, req)
    } catch (err) {
      const errno = errnoFor(err)
      if (errno === constants.errno.EIO) cfg.log.warn({ err, opcode: req.opcode }, 'fuse operation failed')
      return { errno }
    }
  }
}
