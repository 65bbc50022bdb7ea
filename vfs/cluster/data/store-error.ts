/*
 * How the file data layer reports object store failures to its callers
 * (file-data.ts: reads and flushes).
 */
import { VfsError } from '../../errors.ts'
import { ObjectStoreUnavailable } from '../object-store.ts'
import { isMissing } from './block-cache.ts'

/**
 * Store failures as errno naming what failed; other errors pass through.
 * A missing block is EIO (the data is gone). An unreachable store is EAGAIN,
 * which the server sends as NFS3ERR_JUKEBOX (RFC 1813 §2.6: "temporarily
 * unable to complete"): the client retries later, as it does for an
 * unreachable database (server/cluster-errors.ts). Nothing was acknowledged:
 * a failed flush keeps its bytes staged, so the retried write or COMMIT
 * stores them once the store is back.
 */
export function storeError(err: unknown, what: string): unknown {
  if (isMissing(err)) return new VfsError('EIO', `${what}: block ${err.key} is missing from the object store`, { cause: err })
  if (err instanceof ObjectStoreUnavailable) return new VfsError('EAGAIN', `${what}: ${err.message}`, { cause: err })
  return err
}
