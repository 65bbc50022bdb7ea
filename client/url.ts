/*
 * libnfs-style URLs: nfs://[user@]host[:port]/path?opt=value&…
 *   host     name, IPv4, or [IPv6]
 *   :port    the NFS port, as libnfs reads it (the same setting as
 *            nfsport=). Without mountport=, MOUNT is asked first at that
 *            port (tsnfs, like other single-port servers, serves it there;
 *            a portmapper might name another server's MOUNT), then at the
 *            portmapper (portmapport=, default 111). Errors name each
 *            service, host and port tried (client/errors.ts atEndpoint).
 *   path     export path plus path inside it; the split is made by asking
 *            the server's EXPORT list (see splitExportPath in mount.ts)
 *   user@    a numeric user is the uid; anything else is ignored
 * Options: nfsport, mountport, portmapport, uid, gid, gids (comma list),
 * proto=tcp|udp, timeo (deciseconds, nfs(5)), retrans, hard, soft, actimeo,
 * acregmin, acregmax, acdirmin, acdirmax (seconds), noac, lookupcache,
 * rsize, wsize, dirsize, readdirplus=0|1, auth=sys|none, version=3;
 * locking (client/lock/): clientaddr (the local address to call from, as
 * nfs(5) names it), lock=0|1 and nolock, callername, nlmport, lockaddr,
 * lockport, lockportmapport, lockstatedir.
 * A flag without a value (`?noac`) means 1.
 */
import { UrlError } from './errors.ts'
import type { ClientOptions } from './options.ts'

export interface NfsUrl {
  host: string
  /** The URL's path, decoded, always starting with '/'. */
  path: string
  options: ClientOptions
}

function num(name: string, v: string): number {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UrlError('NFS_URL_BAD_OPTION', `option ${name}: '${v}' is not a number`)
  return Number(v)
}

function int(name: string, v: string): number {
  const n = num(name, v)
  if (!Number.isInteger(n)) throw new UrlError('NFS_URL_BAD_OPTION', `option ${name}: '${v}' is not an integer`)
  return n
}

function flag(name: string, v: string): boolean {
  if (v === '' || v === '1' || v === 'true') return true
  if (v === '0' || v === 'false') return false
  throw new UrlError('NFS_URL_BAD_OPTION', `option ${name}: '${v}' is not 0 or 1`)
}

function applyOption(o: ClientOptions, name: string, v: string): void {
  switch (name) {
    case 'nfsport': o.nfsport = int(name, v); break
    case 'mountport': o.mountport = int(name, v); break
    case 'portmapport': o.portmapPort = int(name, v); break
    case 'uid': o.uid = int(name, v); break
    case 'gid': o.gid = int(name, v); break
    case 'gids': o.gids = v === '' ? [] : v.split(',').map(g => int(name, g)); break
    case 'proto':
      if (v !== 'tcp' && v !== 'udp') throw new UrlError('NFS_URL_BAD_OPTION', `option proto: '${v}' is not tcp or udp`)
      o.proto = v
      break
    case 'timeo': o.timeoutMs = int(name, v) * 100; break
    case 'retrans': o.retrans = int(name, v); break
    case 'hard': o.hard = flag(name, v); break
    case 'soft': o.hard = !flag(name, v); break
    case 'actimeo': o.actimeo = num(name, v); break
    case 'acregmin': o.acregmin = num(name, v); break
    case 'acregmax': o.acregmax = num(name, v); break
    case 'acdirmin': o.acdirmin = num(name, v); break
    case 'acdirmax': o.acdirmax = num(name, v); break
    case 'noac': o.noac = flag(name, v); break
    case 'lookupcache':
      if (v === 'pos') o.lookupcache = 'positive'
      else if (v === 'all' || v === 'positive' || v === 'none') o.lookupcache = v
      else throw new UrlError('NFS_URL_BAD_OPTION', `option lookupcache: '${v}'`)
      break
    case 'rsize': o.rsize = int(name, v); break
    case 'wsize': o.wsize = int(name, v); break
    case 'dirsize': o.dirsize = int(name, v); break
    case 'readdirplus': o.readdirplus = flag(name, v); break
    case 'auth':
      if (v !== 'sys' && v !== 'none') throw new UrlError('NFS_URL_BAD_OPTION', `option auth: '${v}' is not sys or none`)
      o.auth = v
      break
    case 'clientaddr': o.clientAddress = v; break
    case 'lock': o.lock = flag(name, v); break
    case 'nolock': o.lock = !flag(name, v); break
    case 'callername': o.callerName = v; break
    case 'nlmport': o.nlmport = int(name, v); break
    case 'lockaddr': o.lockAddress = v; break
    case 'lockport': o.lockPort = int(name, v); break
    case 'lockportmapport': o.lockPortmapPort = int(name, v); break
    case 'lockstatedir': o.lockStateDir = v; break
    case 'version':
      if (v !== '3') throw new UrlError('NFS_URL_BAD_OPTION', `only NFS version 3 is supported, not '${v}'`)
      break
    default:
      throw new UrlError('NFS_URL_BAD_OPTION', `unknown option '${name}'`)
  }
}

export function parseNfsUrl(url: string): NfsUrl {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new UrlError('NFS_URL_INVALID', `not a URL: ${url}`)
  }
  if (u.protocol !== 'nfs:') throw new UrlError('NFS_URL_INVALID', `not an nfs:// URL: ${url}`)
  if (u.hostname === '') throw new UrlError('NFS_URL_INVALID', `no host in ${url}`)
  const host = u.hostname.startsWith('[') && u.hostname.endsWith(']') ? u.hostname.slice(1, -1) : u.hostname
  const options: ClientOptions = {}
  if (u.port !== '') options.nfsport = Number(u.port)
  if (/^\d+$/.test(u.username)) options.uid = Number(u.username)
  for (const [k, v] of u.searchParams) applyOption(options, k, v)
  let path: string
  try {
    path = decodeURIComponent(u.pathname)
  } catch {
    throw new UrlError('NFS_URL_INVALID', `bad percent-encoding in ${url}`)
  }
  return { host, path: path === '' ? '/' : path, options }
}
