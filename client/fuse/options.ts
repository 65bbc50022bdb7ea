/*
 * mount(8)-style option lists for `tsnfs mount -o …` (nfs(5) names): what
 * goes to the NFS client (transfer sizes, attribute cache times, ports,
 * transport, AUTH_SYS identity, hard/soft with timeo/retrans) and what to
 * the FUSE mount (ro, allow_other, suid/nosuid, dev/nodev, exec/noexec:
 * nosuid,nodev unless asked). Unknown options are an error, except the
 * generic ones mount(8) passes to every file system. uid= or gid= makes a
 * single-user mount: every request then acts as that identity, not as its
 * caller. Locks go to the server's NLM (lock, the default) unless nolock
 * (all kept in the kernel, as before) or local_lock=flock|posix|all|none
 * (nfs(5): the named kind stays local); clientaddr= is the local address
 * every socket is bound to (the server sees the mount's calls, and calls
 * its lock service back, there), callername= the NLM host name (default
 * the host name), lockport= and lockportmapport= where the lock service
 * listens and answers PORTMAP (lockaddr= on another address than
 * clientaddr), nlmport= the server's NLM port, lockstatedir= its NSM state.
 */
import type { ClientOptions } from '../options.ts'

export interface MountOptions {
  client: ClientOptions
  readOnly: boolean
  allowOther: boolean
  /** suid / dev: honour setuid bits and device nodes (default false: nosuid,nodev). */
  suid: boolean
  dev: boolean
  exec: boolean
  /** uid= or gid= was given: one identity for every caller. */
  fixedIdentity: boolean
  /** nfs(5) local_lock: which locks stay in the kernel rather than go to the server's NLM. */
  localLock: LocalLock
}

export type LocalLock = 'none' | 'all' | 'flock' | 'posix'

export class MountOptionError extends Error {
  readonly code = 'FUSE_BAD_OPTION'
}

/** Accepted and ignored: they have no meaning here. */
const IGNORED = new Set(['defaults', 'rw', 'auto', 'noauto', 'user', 'nouser', 'async', 'relatime', 'noatime', 'nofail', '_netdev', 'intr', 'nointr', 'cto', 'sharecache'])

function int(name: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) throw new MountOptionError(`option ${name} needs a number`)
  return Number(v)
}

/** A size in bytes: digits with an optional K, M or G suffix (powers of 1024). */
function size(name: string, v: string | undefined): number {
  const m = v === undefined ? null : /^(\d+)([KMG]?)$/i.exec(v)
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m?.[2] ?? '').toUpperCase()] ?? 1
  const n = m === null ? NaN : Number(m[1]) * unit
  if (!Number.isSafeInteger(n)) throw new MountOptionError(`option ${name} needs a size (bytes, or a number with K, M or G)`)
  return n
}

function text(name: string, v: string | undefined): string {
  if (v === undefined || v === '') throw new MountOptionError(`option ${name} needs a value`)
  return v
}

function num(name: string, v: string | undefined): number {
  if (v === undefined || !/^\d+(\.\d+)?$/.test(v)) throw new MountOptionError(`option ${name} needs a number`)
  return Number(v)
}

function apply(m: MountOptions, name: string, v: string | undefined): void {
  const c = m.client
  switch (name) {
    case 'ro': m.readOnly = true; return
    case 'allow_other': m.allowOther = true; return
    case 'suid': m.suid = true; return
    case 'nosuid': m.suid = false; return
    case 'dev': m.dev = true; return
    case 'nodev': m.dev = false; return
    case 'exec': m.exec = true; return
    case 'noexec': m.exec = false; return
    case 'rsize': c.rsize = int(name, v); return
    case 'wsize': c.wsize = int(name, v); return
    case 'actimeo': c.actimeo = num(name, v); return
    case 'acregmin': c.acregmin = num(name, v); return
    case 'acregmax': c.acregmax = num(name, v); return
    case 'acdirmin': c.acdirmin = num(name, v); return
    case 'acdirmax': c.acdirmax = num(name, v); return
    case 'noac': c.noac = true; return
    case 'ac': c.noac = false; return
    case 'port': c.nfsport = int(name, v); return
    case 'mountport': c.mountport = int(name, v); return
    case 'portmapport': c.portmapPort = int(name, v); return
    case 'proto':
      if (v !== 'tcp' && v !== 'udp') throw new MountOptionError(`option proto: '${v ?? ''}' is not tcp or udp`)
      c.proto = v
      return
    case 'tcp': c.proto = 'tcp'; return
    case 'udp': c.proto = 'udp'; return
    case 'uid': c.uid = int(name, v); m.fixedIdentity = true; return
    case 'gid': c.gid = int(name, v); m.fixedIdentity = true; return
    case 'hard': c.hard = true; return
    case 'soft': c.hard = false; return
    // nfs(5): timeo is in tenths of a second.
    case 'timeo': c.timeoutMs = int(name, v) * 100; return
    case 'retrans': c.retrans = int(name, v); return
    case 'lookupcache':
      if (v === 'all' || v === 'none' || v === 'positive') c.lookupcache = v
      else if (v === 'pos') c.lookupcache = 'positive'
      else throw new MountOptionError(`option lookupcache: '${v ?? ''}'`)
      return
    // Memory (README "Memory"): the clean block cache, the dirty limit, the idle trim (seconds; 0 off).
    case 'blockcache': c.blockCacheBytes = size(name, v); return
    case 'dirtylimit': c.dirtyLimitBytes = size(name, v); return
    case 'idletrim': c.idleTrimMs = num(name, v) * 1000; return
    case 'rdirplus': c.readdirplus = true; return
    case 'nordirplus': c.readdirplus = false; return
    case 'lock': c.lock = true; return
    case 'nolock': c.lock = false; return
    case 'local_lock':
      if (v !== 'none' && v !== 'all' && v !== 'flock' && v !== 'posix') throw new MountOptionError(`option local_lock: '${v ?? ''}' is not none, all, flock or posix`)
      m.localLock = v
      return
    case 'clientaddr': c.clientAddress = text(name, v); return
    case 'callername': c.callerName = text(name, v); return
    case 'nlmport': c.nlmport = int(name, v); return
    case 'lockaddr': c.lockAddress = text(name, v); return
    case 'lockport': c.lockPort = int(name, v); return
    case 'lockportmapport': c.lockPortmapPort = int(name, v); return
    case 'lockstatedir': c.lockStateDir = text(name, v); return
    case 'vers':
    case 'nfsvers':
      if (v !== '3') throw new MountOptionError(`only NFS version 3 is supported, not '${v ?? ''}'`)
      return
    default:
      if (IGNORED.has(name)) return
      throw new MountOptionError(`unknown mount option '${name}'`)
  }
}

/**
 * A mount's clean block cache: the kernel caches pages of its own, so ours holds little
 * more than read-ahead (two windows of 16 MiB).
 */
export const MOUNT_BLOCK_CACHE_BYTES = 32 * 1024 * 1024

/**
 * Parse one or more comma lists (`-o a,b=1 -o c`). Linux NFS mounts are hard by default, and so
 * are ours. The daemon is a process of its own: when idle it also collects garbage.
 */
export function parseMountOptions(lists: readonly string[]): MountOptions {
  const m: MountOptions = { client: { hard: true, blockCacheBytes: MOUNT_BLOCK_CACHE_BYTES, idleGc: true }, readOnly: false, allowOther: false, suid: false, dev: false, exec: true, fixedIdentity: false, localLock: 'none' }
  for (const list of lists) {
    for (const item of list.split(',')) {
      if (item === '') continue
      const eq = item.indexOf('=')
      apply(m, eq < 0 ? item : item.slice(0, eq), eq < 0 ? undefined : item.slice(eq + 1))
    }
  }
  return m
}

/** `host:/export/path`, `[v6addr]:/path`, or an nfs:// URL → an nfs:// URL for NfsClient.mount. */
export function sourceUrl(source: string): string {
  if (source.startsWith('nfs://')) return source
  const m = /^(\[[^\]]+\]|[^:/[\]]+):(\/.*)$/.exec(source)
  if (m === null) throw new MountOptionError(`'${source}' is not host:/path or an nfs:// URL`)
  const host = m[1] ?? ''
  const path = (m[2] ?? '/').split('/').map(encodeURIComponent).join('/')
  return `nfs://${host}${path}`
}
