/*
 * The seam between the NFSv3 program and the server that hosts it: handle
 * verification, export policy (squashing, read-only), handle minting, the
 * write verifier and the transfer sizes. The program never sees exports or
 * handle layouts; the server wiring implements this interface.
 */
import type { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import type { FileRef, Vfs } from '../../vfs/types.ts'
import type { CallContext } from '../rpc/program.ts'

/** The identity a request acts as, after squashing (root_squash, all_squash, AUTH_NONE → anon). */
export interface Nfs3User {
  uid: number
  gid: number
  gids: number[]
}

/** A handle that verified, and the caller's standing on its export. */
export interface Resolved {
  ok: true
  /** The export the handle belongs to; also reported as the fsid of every object in it. */
  exportId: number
  vfs: Vfs
  ref: FileRef
  user: Nfs3User
  readOnly: boolean
  /**
   * The export's `sync` (default) or `async` for this client: async replies to stable
   * WRITEs and COMMIT without waiting for stable storage (exports(5)).
   */
  sync: boolean
}

export interface ResolveFailure {
  ok: false
  status: Exclude<nfsstat3, 0>
}

/**
 * Transfer sizes for TCP. The program caps READ, WRITE and READDIR sizes
 * (and what FSINFO reports) at 32 KiB on UDP, so one datagram carries a reply.
 */
export interface Nfs3Limits {
  rtmax: number
  rtpref: number
  wtmax: number
  wtpref: number
  dtpref: number
  /** Upper bound applied to READDIR count and READDIRPLUS maxcount/dircount. */
  maxReaddirCount: number
}

export interface Nfs3Host {
  /**
   * Verify a handle and the caller's right to use its export (RFC 1813 P12):
   * malformed → NFS3ERR_BADHANDLE; unknown export / object gone → NFS3ERR_STALE;
   * client not allowed → NFS3ERR_ACCES.
   */
  resolve(fh: Buffer, call: CallContext): Promise<Resolved | ResolveFailure>
  /** The handle for an object of the same export. */
  handle(exportId: number, ref: FileRef): Buffer
  /** The same handle, possibly a shared buffer: only to be encoded into a reply at once, never modified or kept. */
  handleForReply(exportId: number, ref: FileRef): Buffer
  /**
   * The same handle written into `out` at `at`, which has room for NFS3_FHSIZE (64) bytes; returns
   * its length, always handleSize(exportId). READDIRPLUS mints ~200 handles a call straight into
   * its reply: no Buffer made for each.
   */
  writeHandle(exportId: number, ref: FileRef, out: Buffer, at: number): number
  /** The length of every handle of export `exportId` (READDIRPLUS sizes an entry before minting its handle). */
  handleSize(exportId: number): number
  /** 8 bytes, the same for every WRITE and COMMIT of this server instance (RFC 1813 §3.3.7). */
  writeVerifier(): Buffer
  /** Called when an unstable flush failed (COMMIT error): clients must resend what they wrote. */
  bumpWriteVerifier(): void
  readonly limits: Nfs3Limits
}
