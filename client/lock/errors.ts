/*
 * Why a lock call failed, with a stable code (STYLE.md §3.5) and the errno
 * an application would see: the Linux client's nlm_stat_to_errno
 * (fs/lockd/clntproc.c) for the server's answers.
 */
import { nlm4_stats } from '../../xdr/generated/nlm.ts'

export type LockErrorCode =
  /** A conflicting lock is held (a non-blocking request). */
  | 'NLM_DENIED'
  /** The server is out of lock resources. */
  | 'NLM_NOLOCKS'
  /** The server restarted and accepts only reclaims for now. */
  | 'NLM_GRACE'
  | 'NLM_DEADLOCK'
  | 'NLM_ROFS'
  | 'NLM_STALE'
  | 'NLM_FBIG'
  | 'NLM_FAILED'
  /** A blocked wait was abandoned (its signal aborted): CANCEL was sent. */
  | 'NLM_CANCELLED'
  /** The mount has locking off (nolock). */
  | 'NLM_DISABLED'
  /** A range that NLM cannot express (negative, or past 2^64). */
  | 'NLM_BAD_RANGE'

const ERRNO: Readonly<Record<LockErrorCode, string>> = {
  NLM_DENIED: 'EAGAIN',
  NLM_NOLOCKS: 'ENOLCK',
  NLM_GRACE: 'ENOLCK',
  NLM_DEADLOCK: 'EDEADLK',
  NLM_ROFS: 'EROFS',
  NLM_STALE: 'ESTALE',
  NLM_FBIG: 'EOVERFLOW',
  NLM_FAILED: 'ENOLCK',
  NLM_CANCELLED: 'EINTR',
  NLM_DISABLED: 'ENOLCK',
  NLM_BAD_RANGE: 'EINVAL',
}

const BY_STATUS: Readonly<Record<number, LockErrorCode>> = {
  [nlm4_stats.NLM4_DENIED]: 'NLM_DENIED',
  [nlm4_stats.NLM4_DENIED_NOLOCKS]: 'NLM_NOLOCKS',
  [nlm4_stats.NLM4_DENIED_GRACE_PERIOD]: 'NLM_GRACE',
  [nlm4_stats.NLM4_DEADLCK]: 'NLM_DEADLOCK',
  [nlm4_stats.NLM4_ROFS]: 'NLM_ROFS',
  [nlm4_stats.NLM4_STALE_FH]: 'NLM_STALE',
  [nlm4_stats.NLM4_FBIG]: 'NLM_FBIG',
  [nlm4_stats.NLM4_FAILED]: 'NLM_FAILED',
}

export class LockError extends Error {
  readonly code: LockErrorCode
  /** The errno name an application sees ('EAGAIN', 'ENOLCK', …). */
  readonly errno: string
  /** The nlm4_stats the server answered, when it did. */
  readonly status: number | undefined

  constructor(code: LockErrorCode, message: string, status?: number) {
    super(message)
    this.name = 'LockError'
    this.code = code
    this.errno = ERRNO[code]
    this.status = status
  }

  /** The error for a server's nlm4_stats (an unknown one is NLM_FAILED, as Linux makes it ENOLCK). */
  static fromStatus(status: number, what: string): LockError {
    const code = BY_STATUS[status] ?? 'NLM_FAILED'
    return new LockError(code, `${what}: ${code}`, status)
  }
}

export function isLockError(err: unknown, code?: LockErrorCode): err is LockError {
  return err instanceof LockError && (code === undefined || err.code === code)
}
