import type { BackendName, ExportClientOptions } from './schema.ts'
import { MAX_VOLUME_DISKS } from './schema.ts'
import { parseClusterConfig } from '../../vfs/cluster/clients/config.ts'

/** Option state while a client's option list is applied; later options win. */
export interface OptionState {
  rw: boolean
  rootSquash: boolean
  allSquash: boolean
  anonuid: number
  anongid: number
  secure: boolean
  sync: boolean
  crossmnt: boolean
}

/** Per-export settings that may be written in any client's options (`*(rw,fsid=0)`). */
export interface ExportLevel {
  fsid?: number | string
  backend?: BackendName
  /** backend=engine settings; checked against the backend when the line is finished. */
  image?: string
  volume?: string
  /** The colon-separated `disks=` list, split. */
  disks?: string[]
  errors?: 'remount-ro' | 'continue'
  cacheBytes?: number
  /** `metacache=`: backend=cluster's metadata caches (nodes, names, slice lists) together. */
  metaCacheBytes?: number
  /** `snapdir=visible`: a volume's `.snapshot` listed in the export root (hidden by default, found by name). */
  snapdir?: 'hidden' | 'visible'
  /** `rebuild_rate=`: a volume's rebuild pace in bytes per second (0: as fast as the disks go). */
  rebuildRate?: number
  /** backend=cluster settings (issue 17); checked against the backend when the line is finished. */
  meta?: string
  data?: string
  credentials?: string
}

/** Linux defaults (exports(5)): ro, root_squash, secure, sync, anonuid/anongid 65534. */
export function defaultOptionState(): OptionState {
  return {
    rw: false,
    rootSquash: true,
    allSquash: false,
    anonuid: 65534,
    anongid: 65534,
    secure: true,
    sync: true,
    crossmnt: false,
  }
}

export function finishOptions(s: OptionState): ExportClientOptions {
  return {
    rw: s.rw,
    squash: s.allSquash ? 'all' : s.rootSquash ? 'root' : 'none',
    anonuid: s.anonuid,
    anongid: s.anongid,
    secure: s.secure,
    sync: s.sync,
    crossmnt: s.crossmnt,
  }
}

const FLAGS = new Map<string, (s: OptionState) => void>([
  ['rw', (s) => { s.rw = true }],
  ['ro', (s) => { s.rw = false }],
  ['root_squash', (s) => { s.rootSquash = true }],
  ['no_root_squash', (s) => { s.rootSquash = false }],
  ['all_squash', (s) => { s.allSquash = true }],
  ['no_all_squash', (s) => { s.allSquash = false }],
  ['secure', (s) => { s.secure = true }],
  ['insecure', (s) => { s.secure = false }],
  ['sync', (s) => { s.sync = true }],
  ['async', (s) => { s.sync = false }],
  ['crossmnt', (s) => { s.crossmnt = true }],
  ['nocrossmnt', (s) => { s.crossmnt = false }],
])

/*
 * Accepted for compatibility with Linux export files, with no effect here:
 * subtree checking does not apply (our handles carry no path), write gathering
 * (wdelay) is the backend's business, and hide/nohide concern nested kernel
 * mounts, which an export of ours does not have.
 */
const NO_EFFECT = new Set(['subtree_check', 'no_subtree_check', 'wdelay', 'no_wdelay', 'hide', 'nohide'])

/**
 * Applies one comma-separated option list. Returns null, or the offset (within
 * `list`) and reason of the first bad option.
 */
export function applyOptions(
  list: string,
  s: OptionState,
  level: ExportLevel,
): { offset: number; reason: string } | null {
  let offset = 0
  for (const opt of list.split(',')) {
    const bad = applyOne(opt, s, level)
    if (bad !== null) return { offset, reason: bad }
    offset += opt.length + 1
  }
  return null
}

function applyOne(opt: string, s: OptionState, level: ExportLevel): string | null {
  if (opt === '') return 'empty option'
  const flag = FLAGS.get(opt)
  if (flag !== undefined) {
    flag(s)
    return null
  }
  if (NO_EFFECT.has(opt)) return null
  const eq = opt.indexOf('=')
  if (eq === -1) return `unknown option "${opt}"`
  const key = opt.slice(0, eq)
  const value = opt.slice(eq + 1)
  switch (key) {
    case 'anonuid':
    case 'anongid': {
      const id = parseId(value)
      if (id === null) return `${key} needs a number from -2147483648 to 4294967295, got "${value}"`
      s[key] = id
      return null
    }
    case 'fsid': {
      const fsid = parseFsid(value)
      if (fsid === null) return `fsid needs a number, "root" or a UUID, got "${value}"`
      return setLevel(level, 'fsid', fsid)
    }
    case 'backend':
      if (value !== 'memory' && value !== 'local' && value !== 'engine' && value !== 'cluster') return `unknown backend "${value}" (known: memory, local, engine, cluster)`
      return setLevel(level, 'backend', value)
    case 'image':
      if (!value.startsWith('/') || value.length > 4096) return `image needs an absolute path, got "${value}"`
      return setLevel(level, 'image', value)
    case 'volume':
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(value)) return `volume needs a volume name (1 to 64 of A-Z a-z 0-9 . _ -), got "${value}"`
      return setLevel(level, 'volume', value)
    case 'disks': {
      const disks = value.split(':')
      if (disks.length > MAX_VOLUME_DISKS) return `disks names ${disks.length} paths, at most ${MAX_VOLUME_DISKS}`
      const bad = disks.find((d) => !d.startsWith('/') || d.length > 4096)
      if (bad !== undefined) return `disks needs absolute paths or globs separated by ":", got "${bad}"`
      if (level.disks !== undefined && level.disks.join(':') !== value) return `conflicting disks for this export ("${level.disks.join(':')}" and "${value}")`
      level.disks = disks
      return null
    }
    case 'errors':
      if (value !== 'remount-ro' && value !== 'continue') return `errors needs remount-ro or continue, got "${value}"`
      return setLevel(level, 'errors', value)
    case 'cache': {
      const bytes = parseBytes(value)
      if (bytes === null || bytes < 1 << 20) return `cache needs a size of at least 1M (e.g. 256M), got "${value}"`
      return setLevel(level, 'cacheBytes', bytes)
    }
    case 'metacache': {
      const bytes = parseBytes(value)
      if (bytes === null || bytes < 1 << 20) return `metacache needs a size of at least 1M (e.g. 64M), got "${value}"`
      return setLevel(level, 'metaCacheBytes', bytes)
    }
    case 'snapdir':
      if (value !== 'hidden' && value !== 'visible') return `snapdir needs hidden or visible, got "${value}"`
      return setLevel(level, 'snapdir', value)
    case 'rebuild_rate': {
      // A rate, not a size: 0 is allowed (no limit), and the same suffixes as cache= (per second).
      const bytes = parseBytes(value)
      if (bytes === null || bytes > 2 ** 40) return `rebuild_rate needs bytes per second (e.g. 50M, 0 for no limit), got "${value}"`
      return setLevel(level, 'rebuildRate', bytes)
    }
    // The value is everything after the first "=": a URL keeps its own "=", "?", "&", ":" and "/".
    case 'meta': {
      const bad = checkMetaUrl(value)
      return bad ?? setLevel(level, 'meta', value)
    }
    case 'data': {
      const bad = checkDataUrl(value)
      return bad ?? setLevel(level, 'data', value)
    }
    case 'credentials':
      if (!value.startsWith('/') || value.length > 4096) return `credentials needs an absolute path, got "${value}"`
      return setLevel(level, 'credentials', value)
    default:
      return `unknown option "${opt}"`
  }
}

function setLevel<K extends keyof ExportLevel>(level: ExportLevel, key: K, value: NonNullable<ExportLevel[K]>): string | null {
  const old = level[key]
  if (old !== undefined && old !== value) return `conflicting ${key} for this export ("${String(old)}" and "${String(value)}")`
  level[key] = value
  return null
}

/** Longest meta=/data= URL accepted (a database URL with a few query parameters fits easily). */
export const MAX_CLUSTER_URL = 2048

/**
 * meta=postgres://user@host:port/db?...: a PostgreSQL-protocol URL. A password in it is refused:
 * export files are world-readable and show up in logs; it belongs in credentials= or PGPASSWORD.
 */
function checkMetaUrl(value: string): string | null {
  if (value.length > MAX_CLUSTER_URL) return `meta URL is longer than ${MAX_CLUSTER_URL} characters`
  const u = parseUrl(value)
  if (u === null || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || u.hostname === '') {
    return `meta needs a postgres://user@host:port/database URL, got "${value}"`
  }
  if (u.password !== '') return 'meta URL carries a password: put it in the credentials= file or PGPASSWORD'
  return clientsRefuse({ meta: value, data: 'postgres' })
}

/** data=postgres (blocks in the metadata database) or data=s3://bucket?endpoint=...&region=... */
function checkDataUrl(value: string): string | null {
  if (value === 'postgres') return null
  if (value.length > MAX_CLUSTER_URL) return `data URL is longer than ${MAX_CLUSTER_URL} characters`
  const u = parseUrl(value)
  if (u === null || u.protocol !== 's3:' || u.hostname === '') return `data needs postgres or an s3://bucket?endpoint=URL URL, got "${value}"`
  if (u.username !== '' || u.password !== '') return 'data URL carries credentials: put them in the credentials= file or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY'
  return clientsRefuse({ meta: 'postgres://check@localhost/db', data: value })
}

/** What the cluster clients' own parser (the one the backend opens with) says of a value: checked at load time, with a line and column. */
function clientsRefuse(input: { meta: string; data: string }): string | null {
  try {
    parseClusterConfig(input)
    return null
  } catch (err) {
    return (err as Error).message
  }
}

function parseUrl(value: string): URL | null {
  try {
    return new URL(value)
  } catch {
    return null
  }
}

/** `64M`, `1G`, `1048576`: a byte count with an optional binary suffix. */
function parseBytes(v: string): number | null {
  const m = /^(\d{1,15})([KMGT]?)$/i.exec(v)
  if (m === null) return null
  const shift = { '': 0, K: 10, M: 20, G: 30, T: 40 }[(m[2] ?? '').toUpperCase()] ?? 0
  const n = Number(m[1]) * 2 ** shift
  return Number.isSafeInteger(n) ? n : null
}

/** Linux parses anonuid/anongid as int: -2 means 4294967294. */
function parseId(v: string): number | null {
  if (!/^-?\d{1,10}$/.test(v)) return null
  const n = Number(v)
  if (n < -0x8000_0000 || n > 0xffff_ffff) return null
  return n < 0 ? n + 0x1_0000_0000 : n
}

function parseFsid(v: string): number | string | null {
  if (v === 'root') return 0
  if (/^\d{1,10}$/.test(v)) {
    const n = Number(v)
    return n <= 0xffff_ffff ? n : null
  }
  const hex = v.replace(/-/g, '').toLowerCase()
  return /^[0-9a-f]{32}$/.test(hex) ? hex : null
}
