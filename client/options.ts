/*
 * Client options (the knobs of nfs(5) and libnfs URLs) and their defaults.
 * Attribute cache times are in seconds as in nfs(5); RPC times in ms.
 */
import { homedir, hostname } from 'node:os'
import { join } from 'node:path'
import type { CallCredential } from './rpc/auth.ts'
import type { Protocol } from './rpc/connect.ts'
import { defaultPolicy } from './rpc/connect.ts'
import { STDERR_LOG } from './rpc/transport.ts'
import type { RetryPolicy, RpcLog } from './rpc/transport.ts'
import type { AttrCacheOptions } from './cache/attr-cache.ts'
import type { LookupCacheMode, NameCacheOptions } from './cache/name-cache.ts'
import type { FileDataOptions } from './file-options.ts'

/** The data path's knobs (block cache, read-ahead, write-back) are client options too. */
export interface ClientOptions extends FileDataOptions {
  /** Transport for MOUNT and NFS (and the portmapper query). Default tcp. */
  proto?: Protocol
  /** NFS port; asked from the portmapper when absent. */
  nfsport?: number
  /** MOUNT port; asked from the portmapper when absent. */
  mountport?: number
  /** The portmapper's port (default 111). */
  portmapPort?: number
  /** 'sys' (AUTH_SYS, default) or 'none' (AUTH_NONE). */
  auth?: 'sys' | 'none'
  /** AUTH_SYS identity; default the current process's uid and gid. */
  uid?: number
  gid?: number
  gids?: number[]
  machinename?: string
  /** Per-try RPC timeout (ms); default 60 s on TCP, 1.1 s on UDP (nfs(5) timeo). */
  timeoutMs?: number
  /** Retransmissions before a soft call fails with RPC_TIMEOUT (default 2 TCP, 3 UDP). */
  retrans?: number
  /** Retry forever (Linux hard mount). Default false (soft, as libnfs). */
  hard?: boolean
  maxTimeoutMs?: number
  maxReconnectDelayMs?: number
  /** Sets acregmin, acregmax, acdirmin and acdirmax (seconds); the individual options win. */
  actimeo?: number
  /** Seconds: files 3..60, directories 30..60 (nfs(5)). */
  acregmin?: number
  acregmax?: number
  acdirmin?: number
  acdirmax?: number
  /** No attribute caching: every getattr asks the server. */
  noac?: boolean
  /** nfs(5) lookupcache: 'all' (default), 'positive', 'none'. */
  lookupcache?: LookupCacheMode
  /** READ/WRITE sizes asked for (default: the server's rtpref/wtpref); never above its rtmax/wtmax nor 1 MiB (session.ts limitsOf). */
  rsize?: number
  wsize?: number
  /** READDIR(PLUS) size asked for (default the server's dtpref); between 1 KiB and min(rsize, 256 KiB). */
  dirsize?: number
  /** Use READDIRPLUS (default true; falls back to READDIR once the server says NOTSUPP). */
  readdirplus?: boolean
  /** Attribute cache entries (default 65,536; a few hundred bytes each). */
  attrCacheEntries?: number
  /** Lookup cache: directories (default 4,096) and names over all of them (default 262,144; ~200 bytes each). */
  nameCacheDirs?: number
  nameCacheEntries?: number
  /** NFS3ERR_JUKEBOX retry delay (ms; default 5000) and count (default: forever if hard, else retrans). */
  jukeboxDelayMs?: number
  jukeboxRetries?: number
  /** No RPC for this long: drop the clean cached blocks (ms; default 30 s; 0: never). */
  idleTrimMs?: number
  /** Also run a full garbage collection then (for a process that is all client, as the mount daemon; default false). */
  idleGc?: boolean
  /** Where a hard mount logs "nfs: server HOST not responding, still trying" and "nfs: server HOST OK" (default stderr; a pino logger fits). */
  log?: RpcLog
  /** The local address every NFS, MOUNT, portmapper and NLM socket is bound to (nfs(5) clientaddr); default: the system's choice. */
  clientAddress?: string
  /** File locking over NLM (default true); false (nolock): lock() fails with NLM_DISABLED and a FUSE mount keeps locks in the kernel. */
  lock?: boolean
  /** The NLM caller_name and NSM mon_name this host goes by (default os.hostname()). */
  callerName?: string
  /** The server's NLM port; asked from its portmapper when absent (see lock/endpoint.ts). */
  nlmport?: number
  /** Where the lock service (GRANTED and SM_NOTIFY callbacks) listens: default clientAddress, else '0.0.0.0'; port 0 = any. */
  lockAddress?: string
  lockPort?: number
  /**
   * Answer PORTMAP for the lock service's own programs on this port of lockAddress, so a server
   * that asks (lockAddress, this port) finds our NLM and NSM. Absent: register NLM v4 and NSM v1
   * with the system rpcbind on 127.0.0.1:111 when one answers and nothing else holds them.
   * 0: PORTMAP on the lock service's own port only, no rpcbind.
   */
  lockPortmapPort?: number
  /** The NSM state directory (state number, servers locked on); default $XDG_STATE_HOME/tsnfs, or /var/lib/tsnfs/client as root. */
  lockStateDir?: string
  /** Re-send a blocked LOCK this often in case a GRANTED callback is lost (ms; default 30 s, Linux's NLMCLNT_POLL_TIMEOUT). */
  lockPollMs?: number
  /** Wait between tries while the server is in its grace period (ms; default 5 s, Linux's NLMCLNT_GRACE_WAIT). */
  lockGraceWaitMs?: number
}

export interface ResolvedOptions {
  proto: Protocol
  nfsport: number | undefined
  mountport: number | undefined
  portmapPort: number
  cred: CallCredential
  policy: RetryPolicy
  attrCache: AttrCacheOptions
  nameCache: NameCacheOptions
  rsize: number | undefined
  wsize: number | undefined
  dirsize: number | undefined
  readdirplus: boolean
  jukeboxDelayMs: number
  jukeboxRetries: number
  files: FileDataOptions
  idle: { ms: number; gc: boolean }
  log: RpcLog
  clientAddress: string | undefined
  lock: LockOptions
}

/** The lock layer's settings (client/lock/). */
export interface LockOptions {
  enabled: boolean
  callerName: string
  nlmport: number | undefined
  address: string
  port: number
  portmapPort: number | undefined
  stateDir: string
  pollMs: number
  graceWaitMs: number
}

/** $XDG_STATE_HOME/tsnfs (~/.local/state/tsnfs), or /var/lib/tsnfs/client for root: where statd keeps its own under /var/lib/nfs. */
export function defaultLockStateDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/tsnfs/client'
  const xdg = process.env.XDG_STATE_HOME
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.local', 'state'), 'tsnfs')
}

export function resolveOptions(o: ClientOptions = {}): ResolvedOptions {
  const proto = o.proto ?? 'tcp'
  const base = defaultPolicy(proto)
  const policy: RetryPolicy = {
    timeoutMs: o.timeoutMs ?? base.timeoutMs,
    retrans: o.retrans ?? base.retrans,
    hard: o.hard ?? base.hard,
    maxTimeoutMs: o.maxTimeoutMs ?? base.maxTimeoutMs,
    maxReconnectDelayMs: o.maxReconnectDelayMs ?? base.maxReconnectDelayMs,
  }
  const s = (v: number | undefined, dflt: number): number => Math.round((v ?? o.actimeo ?? dflt) * 1000)
  const cred: CallCredential =
    o.auth === 'none'
      ? 'none'
      : {
          uid: o.uid ?? process.getuid?.() ?? 0,
          gid: o.gid ?? process.getgid?.() ?? 0,
          gids: o.gids ?? [],
          ...(o.machinename === undefined ? {} : { machinename: o.machinename }),
        }
  return {
    proto,
    nfsport: o.nfsport,
    mountport: o.mountport,
    portmapPort: o.portmapPort ?? 111,
    cred,
    policy,
    attrCache: {
      acregminMs: s(o.acregmin, 3),
      acregmaxMs: s(o.acregmax, 60),
      acdirminMs: s(o.acdirmin, 30),
      acdirmaxMs: s(o.acdirmax, 60),
      noac: o.noac ?? false,
      maxEntries: o.attrCacheEntries ?? 65_536,
    },
    nameCache: { mode: o.lookupcache ?? 'all', maxDirs: o.nameCacheDirs ?? 4096, maxNamesPerDir: 16_384, maxNames: o.nameCacheEntries ?? 262_144 },
    rsize: o.rsize,
    wsize: o.wsize,
    dirsize: o.dirsize,
    readdirplus: o.readdirplus ?? true,
    jukeboxDelayMs: o.jukeboxDelayMs ?? 5000,
    jukeboxRetries: o.jukeboxRetries ?? (policy.hard ? Number.POSITIVE_INFINITY : policy.retrans),
    files: pickFileOptions(o),
    idle: { ms: Math.max(0, o.idleTrimMs ?? 30_000), gc: o.idleGc ?? false },
    log: o.log ?? STDERR_LOG,
    clientAddress: o.clientAddress,
    lock: {
      enabled: o.lock ?? true,
      callerName: o.callerName ?? hostname(),
      nlmport: o.nlmport,
      address: o.lockAddress ?? o.clientAddress ?? '0.0.0.0',
      port: o.lockPort ?? 0,
      portmapPort: o.lockPortmapPort,
      stateDir: o.lockStateDir ?? defaultLockStateDir(),
      pollMs: o.lockPollMs ?? 30_000,
      graceWaitMs: o.lockGraceWaitMs ?? 5_000,
    },
  }
}

function pickFileOptions(o: FileDataOptions): FileDataOptions {
  const out: FileDataOptions = {}
  if (o.blockCacheBytes !== undefined) out.blockCacheBytes = o.blockCacheBytes
  if (o.readahead !== undefined) out.readahead = o.readahead
  if (o.dirtyLimitBytes !== undefined) out.dirtyLimitBytes = o.dirtyLimitBytes
  if (o.writeSlots !== undefined) out.writeSlots = o.writeSlots
  if (o.readSlots !== undefined) out.readSlots = o.readSlots
  if (o.writebackDelayMs !== undefined) out.writebackDelayMs = o.writebackDelayMs
  return out
}
