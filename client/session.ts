/*
 * What mounting takes, in the order mount.nfs does it: find the MOUNT and
 * NFS ports (given, or from the portmapper), split a URL path into export and
 * path inside it (EXPORT list), MNT for the root handle, connect to NFS and
 * ask FSINFO for the transfer sizes.
 */
import { MOUNT_PROGRAM } from '../xdr/generated/mount.ts'
import { NFS_PROGRAM } from '../xdr/generated/nfs3.ts'
import type { FSINFO3resok } from '../xdr/generated/nfs3.ts'
import { MountClient, splitExportPath } from './mount.ts'
import type { ExportEntry } from './mount.ts'
import type { ClientOptions, ResolvedOptions } from './options.ts'
import { resolveOptions } from './options.ts'
import { getPort } from './portmap.ts'
import { connectTransport } from './rpc/connect.ts'
import { RpcError } from './rpc/errors.ts'
import { atEndpoint } from './errors.ts'
import type { BufferPool } from './rpc/buffer-pool.ts'
import type { RpcTransport } from './rpc/transport.ts'
import type { ClientStats } from './stats.ts'
import { parseNfsUrl } from './url.ts'

export interface MountTarget {
  host: string
  /** The export to MNT, exactly. */
  exportPath: string
  /** A path inside the export (default '/'); NfsClient.path holds it. */
  path?: string
}

export interface Endpoint {
  host: string
  opts: ResolvedOptions
  mountport: number
  nfsport: number
}

/** URL or MountTarget plus options → host, resolved options, and the parts still to split. */
export function targetOf(target: string | MountTarget, o: ClientOptions): { host: string; opts: ResolvedOptions; exportPath: string | null; path: string } {
  if (typeof target !== 'string') return { host: target.host, opts: resolveOptions(o), exportPath: target.exportPath, path: target.path ?? '/' }
  const u = parseNfsUrl(target)
  // The URL's own options are the more specific: they win over the caller's.
  return { host: u.host, opts: resolveOptions({ ...o, ...u.options }), exportPath: null, path: u.path }
}

/**
 * The MOUNT and NFS ports: given, else from the portmapper. An NFS port
 * (the URL's `host:PORT`, as libnfs reads it, or nfsport=) without a MOUNT
 * port: MOUNT is asked at that port first, since a server like this one
 * serves MOUNT beside NFS, and a portmapper may map MOUNT to another server
 * on the host (whose handles the server at PORT would not know); the
 * portmapper only if nothing answers MOUNT there. Failures name each place
 * tried.
 */
export async function findPorts(host: string, opts: ResolvedOptions, stats: ClientStats): Promise<Endpoint> {
  const q = { host, portmapPort: opts.portmapPort, protocol: opts.proto, policy: opts.policy, counts: stats.portmap, ...local(opts) }
  let nfsport = opts.nfsport
  let mountport = opts.mountport
  if (mountport === undefined && nfsport !== undefined) {
    const here = await mountAnswers(host, nfsport, opts)
    if (here === null) {
      mountport = nfsport
    } else {
      try {
        mountport = await getPort(q, MOUNT_PROGRAM.prog, MOUNT_PROGRAM.versions.MOUNT_V3.vers)
      } catch (err) {
        const first = atEndpoint('MOUNT', host, nfsport, opts.proto, here, "the URL's port")
        throw err instanceof RpcError && first instanceof RpcError ? new RpcError(err.code, `${first.message}; ${err.message}`, { cause: err }) : err
      }
    }
  }
  mountport ??= await getPort(q, MOUNT_PROGRAM.prog, MOUNT_PROGRAM.versions.MOUNT_V3.vers)
  nfsport ??= await getPort(q, NFS_PROGRAM.prog, NFS_PROGRAM.versions.NFS_V3.vers)
  return { host, opts, mountport, nfsport }
}

/** The clientAddress as connect options: every socket of a mount leaves from it. */
export function local(opts: ResolvedOptions): { localAddress?: string } {
  return opts.clientAddress === undefined ? {} : { localAddress: opts.clientAddress }
}

/** null when MOUNT v3 answers a NULL call at host:port; else why not (a short, soft try: this is a probe). */
async function mountAnswers(host: string, port: number, opts: ResolvedOptions): Promise<unknown> {
  const policy = { ...opts.policy, hard: false, retrans: 0, timeoutMs: Math.min(opts.policy.timeoutMs, 2000) }
  try {
    const t = await connectTransport(host, port, { protocol: opts.proto, policy, cred: 'none', ...local(opts) })
    try {
      await t.call(MOUNT_PROGRAM.prog, MOUNT_PROGRAM.versions.MOUNT_V3.vers, MOUNT_PROGRAM.versions.MOUNT_V3.procs.MOUNTPROC3_NULL, undefined)
      return null
    } finally {
      await t.close()
    }
  } catch (err) {
    return err
  }
}

export async function openMount(ep: Endpoint, stats: ClientStats): Promise<MountClient> {
  try {
    const t = await connectTransport(ep.host, ep.mountport, { protocol: ep.opts.proto, policy: ep.opts.policy, cred: ep.opts.cred, log: ep.opts.log, ...local(ep.opts) })
    return new MountClient(t, stats.mount)
  } catch (err) {
    throw atEndpoint('MOUNT', ep.host, ep.mountport, ep.opts.proto, err)
  }
}

/**
 * EXPORT and MNT on a MOUNT connection while the NFS connection is made:
 * the NFS connect no longer waits for MOUNT's calls and close (a mount's
 * start-up, and so every short tsnfs command's, one wait shorter). A MOUNT
 * failure is still the one reported, and closes the NFS connection made for
 * nothing; an NFS connection that fails names NFS's endpoint, as before.
 */
export async function mountAndConnect(ep: Endpoint, stats: ClientStats, t: { exportPath: string | null; path: string }, pool: BufferPool): Promise<{ exportPath: string; path: string; root: Buffer; transport: RpcTransport }> {
  const connecting = connectTransport(ep.host, ep.nfsport, { protocol: ep.opts.proto, policy: ep.opts.policy, cred: ep.opts.cred, log: ep.opts.log, pool, ...local(ep.opts) }).catch((err: unknown) => {
    throw atEndpoint('NFS', ep.host, ep.nfsport, ep.opts.proto, err)
  })
  // Settled by whichever path below awaits it; this only keeps an early rejection from being unhandled.
  connecting.catch(() => undefined)
  let exportPath: string
  let path: string
  let root: Buffer
  try {
    const m = await openMount(ep, stats)
    try {
      const split = t.exportPath === null ? await chooseExport(m, t.path) : { exportPath: t.exportPath, rest: t.path }
      exportPath = split.exportPath
      path = split.rest
      root = (await m.mnt(exportPath)).fh
    } finally {
      await m.close()
    }
  } catch (err) {
    await connecting.then(c => c.close(), () => undefined)
    throw err
  }
  return { exportPath, path, root, transport: await connecting }
}

/** UMNT on a connection of its own (best effort: RFC 1813 §5.2.3, UMNT only updates the server's list; nothing depends on it). */
export async function umountEndpoint(ep: Endpoint, stats: ClientStats, exportPath: string): Promise<void> {
  try {
    const m = await openMount(ep, stats)
    try {
      await m.umnt(exportPath)
    } finally {
      await m.close()
    }
  } catch {
    // the server's mount list only
  }
}

/** The export holding `path`, from the server's EXPORT list; the whole path when the list says nothing. */
export async function chooseExport(m: MountClient, path: string): Promise<{ exportPath: string; rest: string }> {
  let list: ExportEntry[] = []
  try {
    list = await m.exports()
  } catch {
    // Some servers refuse EXPORT; then the URL's path is the export (libnfs's rule).
  }
  return splitExportPath(path, list.map(e => e.dir)) ?? { exportPath: path, rest: '/' }
}

/** The Linux client never moves more than this in one READ or WRITE (NFS_MAX_FILE_IO_SIZE); larger costs memory and gains nothing. */
export const MAX_IO_SIZE = 1024 * 1024
/** Over UDP a READ reply and its headers must fit one datagram (at most 64 KiB). */
export const MAX_UDP_IO_SIZE = 32 * 1024
/** READDIR(PLUS) size ceiling: its READDIRPLUS reply (4 × this) stays within MAX_IO_SIZE. */
export const MAX_DIR_SIZE = 256 * 1024
/** Room for the RPC and NFS headers (and post-op attributes) around a reply's data. */
export const REPLY_HEADROOM = 64 * 1024

export interface Limits {
  fsinfo: FSINFO3resok
  /** READ and WRITE sizes: see limitsOf. */
  rsize: number
  wsize: number
  /** READDIR(PLUS) size (READDIR count, READDIRPLUS dircount). */
  dirsize: number
  /** The largest reply this mount can draw: a full READ, or a READDIRPLUS of readdirplusMax(dirsize), plus headers. */
  maxReply: number
}

/** READDIRPLUS maxcount for a dirsize: room for the attributes and handles of the entries dircount names. */
export function readdirplusMax(dirsize: number): number {
  return Math.max(dirsize * 4, 32_768)
}

/**
 * Sizes as Linux picks them (nfs(5) rsize/wsize, fs/nfs/client.c
 * nfs_server_set_fsinfo): the option, else the server's preference, never
 * over its maximum nor over 1 MiB (32 KiB on UDP), a multiple of 4 KiB.
 * Ganesha prefers 64 MiB: asking that much would make every READ reply a
 * 64 MiB record. The directory size is the option, else dtpref, within
 * 1 KiB and min(rsize, MAX_DIR_SIZE).
 */
export function limitsOf(fsinfo: FSINFO3resok, opts: ResolvedOptions): Limits {
  const ceiling = opts.proto === 'udp' ? MAX_UDP_IO_SIZE : MAX_IO_SIZE
  const cap = (asked: number | undefined, pref: number, max: number): number => {
    let v = Math.min(asked ?? (pref > 0 ? pref : ceiling), ceiling)
    if (max > 0) v = Math.min(v, max)
    if (v >= 4096) v -= v % 4096
    // Below 512 only when the server's own maximum is.
    return Math.max(v, max > 0 ? Math.min(512, max) : 512)
  }
  const rsize = cap(opts.rsize, fsinfo.rtpref, fsinfo.rtmax)
  const wsize = cap(opts.wsize, fsinfo.wtpref, fsinfo.wtmax)
  const dirsize = Math.max(Math.min(opts.dirsize ?? (fsinfo.dtpref > 0 ? fsinfo.dtpref : 8192), rsize, MAX_DIR_SIZE), 1024)
  return { fsinfo, rsize, wsize, dirsize, maxReply: Math.max(rsize, readdirplusMax(dirsize)) + REPLY_HEADROOM }
}

/** Let the transport receive every reply the limits can draw, and nothing much larger. */
export function applyLimits(transport: RpcTransport, limits: Limits): void {
  if (transport.maxReplySize !== undefined) transport.maxReplySize = limits.maxReply
}
