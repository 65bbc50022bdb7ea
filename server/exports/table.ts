import { createHash } from 'node:crypto'
import { ExportsError } from './errors.ts'
import { ClientMatcher, type ClientCheck, type Peer } from './match.ts'
import { CachingResolver, systemResolver, type HostResolver } from './resolver.ts'
import type { BackendName, ClientSpec, ExportEntry, ExportList } from './schema.ts'

/** One export as the server uses it. */
export interface Export {
  /** Stable 32-bit id carried in every file handle (see exportId). */
  readonly id: number
  readonly path: string
  readonly backend: BackendName
  readonly clients: readonly ClientSpec[]
  readonly entry: ExportEntry
}

/** One MOUNT EXPORT entry (RFC 1813 §5.2.5): the path and its clients as written. */
export interface ExportInfo {
  path: string
  groups: string[]
}

export interface ExportTableOptions {
  /** Name service for host name and wildcard clients; defaults to the system's, cached 60 s. */
  resolver?: HostResolver
}

interface Snapshot {
  readonly exports: readonly Export[]
  readonly byId: ReadonlyMap<number, Export>
  readonly matchers: ReadonlyMap<Export, ClientMatcher>
}

/**
 * The id of an export: its `fsid=` number when given, else the first 4 bytes
 * of SHA-256 over its path (or over the UUID, for `fsid=<uuid>`). It depends
 * only on the export line, so it is the same across restarts and reloads and
 * handles stay valid; `fsid=` keeps it fixed when the path changes.
 */
export function exportId(entry: ExportEntry): number {
  if (typeof entry.fsid === 'number') return entry.fsid
  const key = entry.fsid === undefined ? `path:${entry.path}` : `uuid:${entry.fsid}`
  return createHash('sha256').update(key).digest().readUInt32BE(0)
}

/**
 * The exports the server serves and who may use them. `replace` swaps in a new
 * list atomically (SIGHUP reload): the new table is fully built first, so a bad
 * list throws and leaves the running one untouched.
 */
export class ExportTable {
  private snap: Snapshot
  private readonly resolver: HostResolver

  constructor(list: ExportList, options: ExportTableOptions = {}) {
    this.resolver = new CachingResolver(options.resolver ?? systemResolver)
    this.snap = build(list)
  }

  replace(list: ExportList): void {
    this.snap = build(list)
    this.version++
  }

  /** Changes whenever the list is replaced, so callers may cache decisions per version. */
  version = 0

  all(): readonly Export[] {
    return this.snap.exports
  }

  byId(id: number): Export | undefined {
    return this.snap.byId.get(id)
  }

  /**
   * The export for a MNT path: the export itself, or the deepest export above
   * a subdirectory (`subpath` is then the rest, without a leading `/`; '' for
   * the export itself). Repeated and trailing `/` are ignored; `.`/`..`
   * components or a relative path find nothing.
   */
  byPath(dirpath: Buffer | string): { export: Export; subpath: string } | null {
    const raw = typeof dirpath === 'string' ? dirpath : dirpath.toString('utf8')
    if (typeof dirpath !== 'string' && !Buffer.from(raw, 'utf8').equals(dirpath)) return null
    if (!raw.startsWith('/')) return null
    const parts = raw.split('/').filter((p) => p !== '')
    if (parts.some((p) => p === '.' || p === '..' || p.includes('\0'))) return null
    const path = '/' + parts.join('/')
    let best: Export | null = null
    for (const e of this.snap.exports) {
      const under = e.path === '/' || path === e.path || path.startsWith(e.path + '/')
      if (under && (best === null || e.path.length > best.path.length)) best = e
    }
    if (best === null) return null
    const subpath = best.path === '/' ? path.slice(1) : path.slice(best.path.length + 1)
    return { export: best, subpath }
  }

  /** For MOUNT EXPORT. */
  list(): ExportInfo[] {
    return this.snap.exports.map((e) => ({ path: e.path, groups: e.clients.map((c) => c.name) }))
  }

  /**
   * Whether `peer` may use `exp`, and with which options. The caller maps a
   * refusal to MNT3ERR_ACCES / NFS3ERR_ACCES and may log `reason`. Exports
   * not in the current table (removed by a reload) refuse everyone.
   */
  async clientOptions(exp: Export, peer: Peer): Promise<ClientCheck> {
    const matcher = this.snap.matchers.get(exp) ?? this.matcherFor(exp)
    if (matcher === undefined) return { ok: false, reason: 'not-allowed' }
    return matcher.check(peer, this.resolver)
  }

  /** An Export object from before a reload: use the current export with the same id and path. */
  private matcherFor(exp: Export): ClientMatcher | undefined {
    const now = this.snap.byId.get(exp.id)
    return now?.path === exp.path ? this.snap.matchers.get(now) : undefined
  }
}

function build(list: ExportList): Snapshot {
  const exports: Export[] = []
  const byId = new Map<number, Export>()
  const matchers = new Map<Export, ClientMatcher>()
  for (const entry of list.exports) {
    const e: Export = { id: exportId(entry), path: entry.path, backend: entry.backend, clients: entry.clients, entry }
    const other = byId.get(e.id)
    if (other !== undefined) {
      throw new ExportsError(
        list.file,
        entry.line,
        1,
        `export id ${e.id} of "${e.path}" is also the id of "${other.path}" (line ${other.entry.line}); give one a distinct fsid=`,
      )
    }
    byId.set(e.id, e)
    matchers.set(e, new ClientMatcher(e.clients))
    exports.push(e)
  }
  return { exports, byId, matchers }
}
