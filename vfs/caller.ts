/*
 * Who a VFS call acts for, where the Vfs interface carries no credentials
 * (WRITE, LINK, RENAME): the NFS layer runs the call inside asCaller(user,
 * fn) with the identity after squashing; a backend that decides by identity
 * (the engine's root reserve, as ext4's s_r_blocks_count) reads
 * currentCaller(). Outside any asCaller there is no caller, and a backend
 * treats the call as unprivileged.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

export interface Caller {
  uid: number
  gid: number
  gids?: readonly number[]
}

const store = new AsyncLocalStorage<Caller>()

export function asCaller<T>(caller: Caller, fn: () => Promise<T>): Promise<T> {
  return store.run(caller, fn)
}

export function currentCaller(): Caller | undefined {
  return store.getStore()
}
