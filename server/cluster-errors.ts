/*
 * What a cluster backend's failure means to an NFS client. The backend speaks
 * errno (VfsError) for file system answers; what escapes it besides is the
 * database or the object store failing underneath. Those must become a clean
 * status, never NFS3ERR_SERVERFAULT (which says "bug"):
 * - the database or the store cannot be reached (restarting, network cut,
 *   connection dropped mid-request): EAGAIN → NFS3ERR_JUKEBOX, RFC 1813 §2.6's
 *   "temporarily unable to complete": clients retry after a delay, which is
 *   what a database restart wants. Nothing was acknowledged, so a retry is safe;
 *   every operation is one transaction that either committed or did not.
 * - any other database error (a constraint, a bad statement, a missing block):
 *   EIO → NFS3ERR_IO, logged by the server.
 */
import { VfsError } from '../vfs/errors.ts'
import { ObjectMissing, ObjectStoreUnavailable } from '../vfs/cluster/object-store.ts'

/** Socket-level errors of a lost or refused connection. */
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTCONN', 'ECONNABORTED', 'EAI_AGAIN'])

/**
 * SQLSTATEs that mean "the server is going away or not there": class 08
 * (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown,
 * 57P03 cannot_connect_now (starting up), 53300 too_many_connections.
 */
function unavailableState(state: string): boolean {
  return state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03' || state === '53300'
}

/** A driver message for a connection that ended, when the error carries no code at all. */
const LOST = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|terminating connection/i

export function clusterError(err: unknown): Error {
  if (err instanceof VfsError) return err
  // Only Errors are thrown in this code base; anything else is a bug, reported as one.
  if (!(err instanceof Error)) return new Error(`non-Error thrown: ${String(err)}`)
  if (err instanceof ObjectStoreUnavailable) return new VfsError('EAGAIN', err.message, { cause: err })
  if (err instanceof ObjectMissing) return new VfsError('EIO', err.message, { cause: err })
  const code = (err as { code?: unknown }).code
  // PgDb's DatabaseUnavailable (vfs/cluster/clients/pg-db.ts): its retries on fresh connections ran out.
  if (code === 'DB_UNAVAILABLE') return new VfsError('EAGAIN', err.message, { cause: err })
  if (typeof code === 'string') {
    if (NETWORK.has(code)) return new VfsError('EAGAIN', `database unreachable: ${err.message}`, { cause: err })
    if (/^[0-9A-Z]{5}$/.test(code) && !code.startsWith('E')) {
      return new VfsError(unavailableState(code) ? 'EAGAIN' : 'EIO', `database: ${err.message} (SQLSTATE ${code})`, { cause: err })
    }
    return err
  }
  if (LOST.test(err.message)) return new VfsError('EAGAIN', `database connection lost: ${err.message}`, { cause: err })
  return err
}
