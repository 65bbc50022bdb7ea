/*
 * A backup's NDMP file history (what a DMA kept of the FH posts, draft-skardal-ndmpv4-04 §3.12) as
 * catalog rows. Two forms arrive: dump's node form (FH_ADD_DIR: name, node, parent; FH_ADD_NODE:
 * stat, node, fh_info; the root is the entry "." whose node is its own parent) and tar's path form
 * (FH_ADD_FILE: the whole path, "/" the root). Either way each object becomes a FileHistoryEntry
 * with its stream offset (fh_info: where its first header is, so a restore reads its records only)
 * and each directory's names become its listing (an incremental's deletions are known by them).
 * The NDMP stat carries seconds only; what it lacks (SHA-256, link targets) stays empty.
 */
import type { FileType } from '../../vfs/types.ts'
import type { DirListing, FileHistoryEntry } from '../types.ts'
import type { Catalog } from './catalog.ts'
import { normalizePath } from './paths.ts'
import type { TapeFile } from './rows.ts'
import { CatalogError } from './schema.ts'

/** One line of a job's file history (the DMA's STATE/jobs/ID.fh), as dma/ndmp/posts.ts writes it. */
export interface NdmpHistoryLine {
  path: string
  /** A FileType, 'entry-of:PARENT' for a node-form dir entry, or 'other'/'registry'. */
  type?: string
  size?: string
  mtime?: number
  atime?: number
  ctime?: number
  mode?: number
  uid?: number
  gid?: number
  node?: string
  fhInfo?: string
}

const TYPES: ReadonlySet<string> = new Set<FileType>(['file', 'dir', 'symlink', 'char', 'block', 'fifo', 'socket'])
/** ndmp_u_quad's "no value". */
const INVALID = 0xffffffffffffffffn
/** Deepest directory nesting followed from a node to the root (a loop in bad history stops here). */
const MAX_DEPTH = 4096

function big(text: string | undefined): bigint | null {
  return text !== undefined && /^\d{1,20}$/.test(text) ? BigInt(text) : null
}

function sec(n: number | undefined): { sec: number; nsec: number } {
  return { sec: typeof n === 'number' && Number.isFinite(n) && n >= 0 ? Math.floor(n) : 0, nsec: 0 }
}

interface NodeStat {
  type: FileType
  line: NdmpHistoryLine
  fhInfo: bigint | null
}

function statOf(l: NdmpHistoryLine): NodeStat | null {
  if (l.type === undefined || !TYPES.has(l.type)) return null
  const fh = big(l.fhInfo)
  return { type: l.type as FileType, line: l, fhInfo: fh === INVALID ? null : fh }
}

function entryOf(path: string, node: bigint, s: NodeStat, hardLinkOf?: string): FileHistoryEntry {
  const l = s.line
  return {
    path,
    type: s.type,
    mode: (l.mode ?? 0) & 0o7777,
    uid: l.uid ?? 0,
    gid: l.gid ?? 0,
    size: s.type === 'file' || s.type === 'symlink' ? (big(l.size) ?? 0n) : 0n,
    atime: sec(l.atime),
    mtime: sec(l.mtime),
    ctime: sec(l.ctime),
    fileid: node,
    offset: s.fhInfo ?? 0n,
    ...(hardLinkOf === undefined ? {} : { hardLinkOf }),
  }
}

export interface HistoryRows {
  entries: FileHistoryEntry[]
  listing: DirListing
  /** Objects without an offset (no fh_info): a restore must read their stream whole. */
  withoutOffset: number
}

/** Turns history lines (either form, in the order they came) into catalog rows and listings. */
export function historyRows(lines: Iterable<NdmpHistoryLine>): HistoryRows {
  const dirEntries: Array<{ name: string; node: bigint; parent: bigint }> = []
  const nodes = new Map<bigint, NodeStat>()
  const files: Array<{ path: string; node: bigint; stat: NodeStat }> = []
  for (const l of lines) {
    const node = big(l.node) ?? 0n
    if (l.type?.startsWith('entry-of:') === true) {
      const parent = big(l.type.slice(9))
      if (parent !== null && l.path !== '' && !l.path.includes('/')) dirEntries.push({ name: l.path, node, parent })
      continue
    }
    const s = statOf(l)
    if (s === null) continue
    if (l.path === '') nodes.set(node, s)
    else files.push({ path: l.path, node, stat: s })
  }
  const entries: FileHistoryEntry[] = []
  const listing: DirListing = new Map()
  const list = (dir: string, name: string, fileid: bigint, type: FileType): void => {
    let l = listing.get(dir)
    if (l === undefined) listing.set(dir, (l = []))
    if (!l.some((e) => e.name === name)) l.push({ name, fileid, type })
  }
  if (files.length > 0) {
    // Path form: "/a/b" (or "a/b"); "/" the root.
    for (const f of files) {
      const parts = f.path.split('/').filter((p) => p !== '' && p !== '.')
      if (parts.includes('..')) throw new CatalogError('CATALOG_BAD_INPUT', `file history path ${f.path}: '..'`)
      const path = parts.join('/')
      entries.push(entryOf(path, f.node, f.stat))
      if (path !== '') list(parts.slice(0, -1).join('/'), parts[parts.length - 1] ?? '', f.node, f.stat.type)
    }
  } else {
    // Node form: paths from the dir entries, up to the root (the "." entry that is its own parent).
    const root = dirEntries.find((d) => d.name === '.' && d.node === d.parent)?.node ?? null
    const parentOf = new Map<bigint, { name: string; parent: bigint }>()
    const named: Array<{ name: string; node: bigint; parent: bigint }> = []
    for (const d of dirEntries) {
      if (d.name === '.' || d.name === '..') continue
      named.push(d)
      if (!parentOf.has(d.node)) parentOf.set(d.node, { name: d.name, parent: d.parent })
    }
    const paths = new Map<bigint, string | null>()
    if (root !== null) paths.set(root, '')
    const pathOf = (node: bigint): string | null => {
      const chain: Array<{ node: bigint; name: string }> = []
      let cur = node
      for (let i = 0; !paths.has(cur); i++) {
        const p = parentOf.get(cur)
        if (p === undefined || i > MAX_DEPTH) {
          for (const c of chain) paths.set(c.node, null)
          paths.set(cur, null)
          return null
        }
        chain.push({ node: cur, name: p.name })
        cur = p.parent
      }
      let base = paths.get(cur) ?? null
      for (const c of chain.reverse()) {
        base = base === null ? null : base === '' ? c.name : `${base}/${c.name}`
        paths.set(c.node, base)
      }
      return paths.get(node) ?? null
    }
    if (root !== null) {
      const s = nodes.get(root)
      if (s !== undefined) entries.push(entryOf('', root, s))
    }
    const firstName = new Map<bigint, string>()
    for (const d of named) {
      const dir = pathOf(d.parent)
      if (dir === null) continue
      const path = dir === '' ? d.name : `${dir}/${d.name}`
      const s = nodes.get(d.node)
      list(dir, d.name, d.node, s?.type ?? 'file')
      if (s === undefined) continue
      const first = firstName.get(d.node)
      if (first === undefined) {
        firstName.set(d.node, path)
        entries.push(entryOf(path, d.node, s))
      } else {
        // A second name of a hard-linked file.
        entries.push(entryOf(path, d.node, s, first))
      }
    }
  }
  // An empty directory has a listing too: no names.
  for (const e of entries) if (e.type === 'dir' && e.hardLinkOf === undefined && !listing.has(e.path)) listing.set(e.path, [])
  return { entries, listing, withoutOffset: entries.filter((e) => e.offset === 0n && e.path !== '').length }
}

export interface NdmpBackupRecord {
  filesystem: string
  level: number
  startedNs: bigint
  endedNs: bigint
  bytes: bigint
  tapes: TapeFile[]
  host?: string
  agent?: string
  jobId?: string
}

/** Records one completed NDMP backup and its file history; returns its catalog id. */
export function ingestNdmpBackup(cat: Catalog, rec: NdmpBackupRecord, lines: Iterable<NdmpHistoryLine>): number {
  const b = { ...rec, filesystem: normalizePath(rec.filesystem) }
  const rows = historyRows(lines)
  // dump's rule: a level N is relative to the newest earlier backup of a lower level (none: it is full).
  const base = b.level === 0 ? undefined : cat.listBackups({ filesystem: b.filesystem, status: 'done', toNs: b.startedNs }).filter((x) => x.level < b.level).at(-1)
  const id = cat.beginBackup({
    filesystem: b.filesystem,
    level: b.level,
    baseId: base?.id ?? null,
    startedNs: b.startedNs,
    ...(b.host === undefined ? {} : { host: b.host }),
    ...(b.agent === undefined ? {} : { agent: b.agent }),
    ...(b.jobId === undefined ? {} : { jobId: b.jobId }),
  })
  try {
    for (const t of b.tapes) cat.addTape(id, t)
    cat.ingestAll(id, rows.entries)
    cat.addListing(id, rows.listing)
    cat.finishBackup(id, { endedNs: b.endedNs, bytes: b.bytes })
  } catch (err) {
    cat.failBackup(id, b.endedNs, `file history ingest failed: ${err instanceof Error ? err.message : String(err)}`)
    throw err
  }
  return id
}
