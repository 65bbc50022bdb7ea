/*
 * Who a call acts as, for caches whose answers depend on it (the ACCESS
 * results and the name cache's "may this caller look here"): an AUTH_SYS
 * credential reduced to a string of uid, gid and supplementary groups (the
 * machine name and stamp do not change what a server permits). Two callers
 * with the same key get the same answers from an AUTH_SYS server.
 */
import type { CallCredential } from './rpc/auth.ts'

const keys = new WeakMap<object, string>()

/** 'uid:gid:g1,g2,…' (groups sorted), 'none' for AUTH_NONE, '-' for "the mount's own credential". */
export function identityKey(cred: CallCredential | undefined): string {
  if (cred === undefined) return '-'
  if (cred === 'none') return 'none'
  let k = keys.get(cred)
  if (k === undefined) {
    const groups = [...(cred.gids ?? [])].sort((a, b) => a - b)
    k = `${String(cred.uid)}:${String(cred.gid)}:${groups.join(',')}`
    keys.set(cred, k)
  }
  return k
}

/** Call options carrying cred when there is one (an absent cred means the transport's default). */
export function withCred(cred: CallCredential | undefined): { cred?: CallCredential } {
  return cred === undefined ? {} : { cred }
}
