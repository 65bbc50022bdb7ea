import type { ExportClientOptions } from './schema.ts'

/** RPC credentials as the RPC layer decodes them (structurally the same as its type). */
export type RpcCredentials =
  | { flavor: 'none' }
  | { flavor: 'sys'; uid: number; gid: number; gids: readonly number[]; machinename: string }

/** The identity a request acts as, after squashing. */
export interface Identity {
  uid: number
  gid: number
  gids: number[]
}

/** Linux's INVALID_UID/INVALID_GID ((u32)-1): never used as an identity, squashed to anon. */
const INVALID_ID = 0xffff_ffff

/**
 * Maps credentials to the identity used for access checks and new owners,
 * exactly as knfsd's nfsd_setuser (fs/nfsd/auth.c):
 * - AUTH_NONE: anonuid/anongid, no supplementary groups;
 * - all_squash: anonuid/anongid, supplementary groups dropped;
 * - root_squash: uid 0 -> anonuid, gid 0 -> anongid, and every supplementary gid 0 -> anongid;
 * - no_root_squash: unchanged.
 * A uid or gid of (u32)-1 becomes anonuid/anongid in every mode, as in knfsd.
 */
export function squash(cred: RpcCredentials, opts: Pick<ExportClientOptions, 'squash' | 'anonuid' | 'anongid'>): Identity {
  if (cred.flavor === 'none' || opts.squash === 'all') {
    return { uid: opts.anonuid, gid: opts.anongid, gids: [] }
  }
  let { uid, gid } = cred
  let gids = [...cred.gids]
  if (opts.squash === 'root') {
    if (uid === 0) uid = opts.anonuid
    if (gid === 0) gid = opts.anongid
    gids = gids.map((g) => (g === 0 ? opts.anongid : g))
  }
  if (uid === INVALID_ID) uid = opts.anonuid
  if (gid === INVALID_ID) gid = opts.anongid
  return { uid, gid, gids }
}
