/*
 * Who each FUSE request acts as on the server. As the kernel NFS client
 * sends every caller's own uid, gid and groups, a request's AUTH_SYS
 * credential is built from fuse_in_header (uid, gid: the caller's fsuid and
 * fsgid) and the caller's supplementary groups, read from the `Groups:`
 * line of /proc/PID/status (the header's pid is the calling thread's id,
 * which /proc resolves too). With `-o uid=,gid=` (a single-user mount)
 * every request acts as that one identity instead.
 *
 * Groups: AUTH_SYS carries at most 16 (RFC 5531 Appendix A). The primary
 * gid travels in its own field, so it is left out of the list, and of the
 * rest the 16 lowest are sent: the kernel keeps a process's groups sorted
 * and its NFS client sends the first 16 of them (net/sunrpc/auth_unix.c).
 * A caller in more groups may be refused by the server what the kernel
 * would allow locally (the server never sees the others).
 *
 * Cache: reading /proc for every request would cost a file read each; the
 * groups are kept per (pid, uid, gid) for TTL_MS, in a bounded LRU. A
 * process that changes its groups without changing uid or gid (setgroups,
 * rare outside login) is seen after at most TTL_MS; a pid reused within
 * TTL_MS by a process with the same uid and gid but other groups would be
 * given the old groups, which needs the pid space to wrap in under a
 * second. A process that has already exited (its /proc entry is gone) acts
 * with its uid and gid alone, and that answer is not cached.
 *
 * Requests the kernel makes for itself (pid 0: FORGET, RELEASE, DESTROY,
 * writes from the page cache) act as the mount's own identity; those on an
 * open file are sent with the opener's credential anyway (nfs-files.ts).
 */
import { readFileSync } from 'node:fs'
import { LRUCache } from 'lru-cache'
import type { NfsClient } from '../nfs-client.ts'
import type { AuthSys, CallCredential } from '../rpc/auth.ts'

/** RFC 5531 Appendix A: gids<16>. */
export const AUTH_SYS_MAX_GROUPS = 16
const TTL_MS = 1000
const MAX_CALLERS = 1024

/** One identity acting on the mount: its credential and a client view that calls as it. */
export interface Caller {
  readonly cred: CallCredential | undefined
  readonly client: NfsClient
}

/** The supplementary groups of a thread (the `Groups:` line of /proc/PID/status), null if it is gone. */
export function procGroups(pid: number): number[] | null {
  let text: string
  try {
    text = readFileSync(`/proc/${String(pid)}/status`, 'latin1')
  } catch {
    return null
  }
  const m = /^Groups:[ \t]*([0-9 \t]*)$/m.exec(text)
  if (m === null) return []
  return (m[1] ?? '').split(/[ \t]+/).filter(s => s !== '').map(Number).filter(n => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff)
}

/** The groups AUTH_SYS carries for a caller: without the primary gid, no repeats, the 16 lowest. */
export function authSysGroups(gid: number, groups: readonly number[]): number[] {
  const set = [...new Set(groups)].filter(g => g !== gid).sort((a, b) => a - b)
  return set.slice(0, AUTH_SYS_MAX_GROUPS)
}

export interface CallersOptions {
  /** `-o uid=,gid=`: every request acts as the client's own credential. */
  fixed: boolean
  /** For tests: where groups come from (default /proc). */
  groupsOf?: (pid: number) => number[] | null
}

export class Callers {
  /** The mount's own identity (the mounting user, or the forced uid/gid). */
  readonly own: Caller
  private readonly base: NfsClient
  private readonly fixed: boolean
  private readonly groupsOf: (pid: number) => number[] | null
  private readonly cache = new LRUCache<string, Caller>({ max: MAX_CALLERS, ttl: TTL_MS })
  /** /proc reads done (for tests and stats). */
  reads = 0
  /**
   * The last caller answered, until its cache entry expires: a copy's
   * requests nearly all come from one process, and this spares each the
   * key string and the LRU's bookkeeping (about 2 % of the daemon's CPU in
   * a cp -a profile). Same answers as the LRU: it expires with the entry.
   */
  private last: { pid: number; uid: number; gid: number; caller: Caller; until: number } | null = null

  constructor(client: NfsClient, opts: CallersOptions) {
    this.base = client
    this.own = { cred: client.cred, client }
    this.fixed = opts.fixed
    this.groupsOf = opts.groupsOf ?? procGroups
  }

  /** The caller of a request, from its header. */
  of(h: { uid: number; gid: number; pid: number }): Caller {
    if (this.fixed || h.pid === 0) return this.own
    const last = this.last
    const now = performance.now()
    if (last !== null && last.pid === h.pid && last.uid === h.uid && last.gid === h.gid && now < last.until) return last.caller
    const key = `${String(h.pid)}:${String(h.uid)}:${String(h.gid)}`
    const hit = this.cache.get(key)
    if (hit !== undefined) {
      this.last = { pid: h.pid, uid: h.uid, gid: h.gid, caller: hit, until: now + this.cache.getRemainingTTL(key) }
      return hit
    }
    this.reads++
    const groups = this.groupsOf(h.pid)
    const cred = this.credFor(h.uid, h.gid, groups ?? [])
    const caller: Caller = { cred, client: this.base.as(cred) }
    if (groups !== null) {
      this.cache.set(key, caller)
      this.last = { pid: h.pid, uid: h.uid, gid: h.gid, caller, until: now + TTL_MS }
    }
    return caller
  }

  private credFor(uid: number, gid: number, groups: readonly number[]): AuthSys {
    const own = this.base.cred
    const machinename = own !== undefined && own !== 'none' ? own.machinename : undefined
    return { uid, gid, gids: authSysGroups(gid, groups), ...(machinename === undefined ? {} : { machinename }) }
  }
}
