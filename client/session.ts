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
  const q = { host, portmapPort: opts.portmapPort, protocol: opts.proto, policy: opts.policy, counts: stats.portmap }
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

/** null when MOUNT v3 answers a NULL call at host:port; else why not (a short, soft try: this is a probe). */
async function mountAnswers(host: string, port: number, opts: ResolvedOptions): Promise<unknown> {
  const policy = { ...opts.policy, hard: false, retrans: 0, timeoutMs: Math.min(opts.policy.timeoutMs, 2000) }
  try {
    const t = await connectTransport(host, port, { protocol: opts.proto, policy, cred: 'none' })
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
    const t = await connectTransport(ep.host, ep.mountport, { protocol: ep.opts.proto, policy: ep.opts.policy, cred: ep.opts.cred })
    return new MountClient(t, stats.mount)
  } catch (err) {
    throw atEndpoint('MOUNT', ep.host, ep.mountport, ep.opts.proto, err)
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

export interface Limits {
  fsinfo: FSINFO3resok
  /** READ and WRITE sizes: asked (or the server's preferred), capped by rtmax/wtmax. */
  rsize: number
  wsize: number
  /** READDIR(PLUS) reply size. */
  dirsize: number
}

/** Sizes as Linux picks them (nfs(5) rsize/wsize): the option, else the server's preference, never over its maximum. */
export function limitsOf(fsinfo: FSINFO3resok, opts: ResolvedOptions): Limits {
  const cap = (asked: number | undefined, pref: number, max: number): number => {
    const v = Math.min(asked ?? (pref > 0 ? pref : max), max > 0 ? max : Number.MAX_SAFE_INTEGER)
    return Math.max(v, 512)
  }
  return {
    fsinfo,
    rsize: cap(opts.rsize, fsinfo.rtpref, fsinfo.rtmax),
    wsize: cap(opts.wsize, fsinfo.wtpref, fsinfo.wtmax),
    dirsize: Math.max(opts.dirsize ?? (fsinfo.dtpref > 0 ? fsinfo.dtpref : 8192), 1024),
  }
}
