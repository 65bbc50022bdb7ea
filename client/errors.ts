/*
 * Client errors with stable codes (STYLE.md §3.5). RpcError (client/rpc/errors.ts)
 * covers the RPC layer; NfsError an nfsstat3 from the server or a condition the
 * client finds itself (a symlink loop); MountError a mountstat3; UrlError a bad URL.
 */
import { nfsstat3Names } from '../xdr/generated/nfs3.ts'
import { mountstat3Names } from '../xdr/generated/mount.ts'
import { RpcError } from './rpc/errors.ts'

/** POSIX errno names, as Node's fs errors carry them. */
export type Errno =
  | 'EPERM' | 'ENOENT' | 'EIO' | 'ENXIO' | 'EACCES' | 'EEXIST' | 'EXDEV' | 'ENODEV' | 'ENOTDIR' | 'EISDIR'
  | 'EINVAL' | 'EFBIG' | 'ENOSPC' | 'EROFS' | 'EMLINK' | 'ENAMETOOLONG' | 'ENOTEMPTY' | 'EDQUOT' | 'ESTALE'
  | 'EREMOTE' | 'EBADF' | 'ENOTSUP' | 'EAGAIN' | 'ELOOP'

/** nfsstat3 → errno, as the Linux client reports them to applications (fs/nfs/nfs2xdr.c nfs_errtbl). */
const ERRNO: Readonly<Record<number, Errno>> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 6: 'ENXIO', 13: 'EACCES', 17: 'EEXIST', 18: 'EXDEV', 19: 'ENODEV',
  20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 27: 'EFBIG', 28: 'ENOSPC', 30: 'EROFS', 31: 'EMLINK',
  63: 'ENAMETOOLONG', 66: 'ENOTEMPTY', 69: 'EDQUOT', 70: 'ESTALE', 71: 'EREMOTE',
  // The kernel-internal codes (EBADHANDLE, ENOTSYNC, EBADCOOKIE, ENOTSUPP, ETOOSMALL, EREMOTEIO,
  // EBADTYPE, EJUKEBOX) have no POSIX name; these are the nearest ones.
  10001: 'EBADF', 10002: 'EIO', 10003: 'EIO', 10004: 'ENOTSUP', 10005: 'EINVAL', 10006: 'EIO',
  10007: 'EINVAL', 10008: 'EAGAIN',
}

export function errnoOf(status: number): Errno {
  return ERRNO[status] ?? 'EIO'
}

/** Conditions the client detects without a server status. */
export type ClientErrorCode = 'NFS_CLIENT_ELOOP' | 'NFS_CLIENT_ENOTDIR' | 'NFS_CLIENT_EINVAL' | 'NFS_CLIENT_EISDIR'

export interface NfsErrorDetails {
  /** The procedure short name ('LOOKUP') or client operation ('walk') that failed. */
  procedure: string
  path?: string
  cause?: unknown
}

export class NfsError extends Error {
  /** The nfsstat3 the server returned; undefined for client-detected conditions. */
  readonly status: number | undefined
  /** 'NFS3ERR_NOENT' (the RFC name) or a ClientErrorCode. */
  readonly code: string
  readonly errno: Errno
  readonly procedure: string
  readonly path: string | undefined

  constructor(status: number | undefined, code: string, errno: Errno, details: NfsErrorDetails) {
    const where = details.path === undefined ? '' : ` '${details.path}'`
    super(`${details.procedure}${where}: ${code} (${errno})`, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'NfsError'
    this.status = status
    this.code = code
    this.errno = errno
    this.procedure = details.procedure
    this.path = details.path
  }

  static fromStatus(status: number, procedure: string, path?: string): NfsError {
    return new NfsError(status, nfsstat3Names[status] ?? `NFS3ERR_${status}`, errnoOf(status), path === undefined ? { procedure } : { procedure, path })
  }

  static client(errno: 'ELOOP' | 'ENOTDIR' | 'EINVAL' | 'EISDIR', procedure: string, path?: string): NfsError {
    const code: ClientErrorCode = `NFS_CLIENT_${errno}`
    return new NfsError(undefined, code, errno, path === undefined ? { procedure } : { procedure, path })
  }

  /** The same error, naming a path (the walk knows paths, the call layer only handles). */
  withPath(path: string): NfsError {
    return new NfsError(this.status, this.code, this.errno, { procedure: this.procedure, path, cause: this })
  }
}

export function isNfsError(err: unknown, code?: string): err is NfsError {
  return err instanceof NfsError && (code === undefined || err.code === code)
}

export class MountError extends Error {
  /** mountstat3 from MNT. */
  readonly status: number
  /** 'MNT3ERR_NOENT' … */
  readonly code: string
  readonly errno: Errno
  readonly path: string

  constructor(status: number, path: string) {
    const code = mountstat3Names[status] ?? `MNT3ERR_${status}`
    super(`MNT '${path}': ${code}`)
    this.name = 'MountError'
    this.status = status
    this.code = code
    // mountstat3 values are errno numbers, as nfsstat3's are (RFC 1813 §5.1.5).
    this.errno = errnoOf(status)
    this.path = path
  }
}

export type UrlErrorCode = 'NFS_URL_INVALID' | 'NFS_URL_BAD_OPTION'

export class UrlError extends Error {
  readonly code: UrlErrorCode
  constructor(code: UrlErrorCode, message: string) {
    super(message)
    this.name = 'UrlError'
    this.code = code
  }
}

/** The RPC program names people know (rpcinfo's), for messages. */
const PROGRAM_NAMES: Readonly<Record<number, string>> = { 100000: 'portmapper', 100003: 'NFS', 100005: 'MOUNT' }

export function programName(prog: number): string {
  return PROGRAM_NAMES[prog] ?? `program ${String(prog)}`
}

/** `127.0.0.1:111`, `[::1]:111`. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${String(port)}`
}

/** Why a socket-level failure happened, in words (the errno of the cause, else the message). */
function reasonOf(err: RpcError): string {
  if (err.code === 'RPC_TIMEOUT') return 'no reply'
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused'
    case 'ECONNRESET': return 'connection reset'
    case 'EHOSTUNREACH': return 'host unreachable'
    case 'ENETUNREACH': return 'network unreachable'
    case 'ETIMEDOUT': return 'connection timed out'
    case 'ENOTFOUND': case 'EAI_AGAIN': case 'EAI_NONAME': return 'unknown host'
    default: return err.message
  }
}

/**
 * An RPC failure restated with where it was tried: `portmapper at
 * 127.0.0.1:111: connection refused` (`(udp)` after the port over UDP).
 * The code and cause are kept; anything but an RpcError passes unchanged
 * (a MountError or NfsError is the server's answer, not a place it failed).
 */
export function atEndpoint(service: string, host: string, port: number, protocol: 'tcp' | 'udp', err: unknown, note = ''): unknown {
  if (!(err instanceof RpcError)) return err
  const where = `${service} at ${hostPort(host, port)}${protocol === 'udp' ? ' (udp)' : ''}${note === '' ? '' : ` (${note})`}`
  return new RpcError(err.code, `${where}: ${reasonOf(err)}`, {
    cause: err,
    ...(err.xid === undefined ? {} : { xid: err.xid }),
    ...(err.low === undefined ? {} : { low: err.low }),
    ...(err.high === undefined ? {} : { high: err.high }),
    ...(err.authStat === undefined ? {} : { authStat: err.authStat }),
  })
}
