/*
 * The catalog's questions (issue 16 §6): which backups hold a path, what a directory held at a
 * time, files by name pattern, the newest version of a path before a time.
 */
import type { Catalog } from './catalog.ts'
import type { Chain } from './chain.ts'
import { chainAt } from './chain.ts'
import { normalizePath, splitPath, subtreeRange } from './paths.ts'
import type { FileVersion, Row } from './rows.ts'
import { versionOf } from './rows.ts'
import { CatalogError } from './schema.ts'

const VERSION_COLUMNS = 'f.*, b.level, b.started_ns'

/** Every completed backup of `filesystem` that copied `path`, oldest first. */
export function backupsContaining(cat: Catalog, filesystem: string, path: string): FileVersion[] {
  const { dir, name } = splitPath(path)
  const rows = cat.stmt(`SELECT ${VERSION_COLUMNS} FROM files f JOIN backups b ON b.id = f.backup_id
    WHERE f.dir = ? AND f.name = ? AND b.filesystem = ? AND b.status = 'done' ORDER BY b.started_ns, b.id`).all(dir, name, normalizePath(filesystem)) as Row[]
  return rows.map(versionOf)
}

/** The newest version of `path` in a completed backup started at or before `atNs`; undefined if none. */
export function newestBefore(cat: Catalog, filesystem: string, path: string, atNs: bigint): FileVersion | undefined {
  const { dir, name } = splitPath(path)
  const r = cat.stmt(`SELECT ${VERSION_COLUMNS} FROM files f JOIN backups b ON b.id = f.backup_id
    WHERE f.dir = ? AND f.name = ? AND b.filesystem = ? AND b.status = 'done' AND b.started_ns <= ?
    ORDER BY b.started_ns DESC, b.id DESC LIMIT 1`).get(dir, name, normalizePath(filesystem), atNs) as Row | undefined
  return r === undefined ? undefined : versionOf(r)
}

/** One name of a directory at a time: its version in force (null when no backup of the chain copied it). */
export interface DirEntryAt {
  name: string
  version: FileVersion | null
}

export interface DirAt {
  chain: Chain
  dir: string
  entries: DirEntryAt[]
}

/** What directory `dir` held at `atNs`: the names of the chain's newest listing, each at its newest version in the chain. */
export function dirAt(cat: Catalog, filesystem: string, dir: string, atNs: bigint): DirAt {
  const chain = chainAt(cat, filesystem, atNs)
  const d = normalizePath(dir)
  const head = chain.backups[chain.backups.length - 1]
  if (head === undefined) throw new CatalogError('CATALOG_NOT_FOUND', `no completed backup of ${chain.filesystem} at or before that date`)
  const names = listingNames(cat, head.id, d)
  const versions = versionsIn(cat, chain, d)
  if (names === undefined) {
    if (hasListings(cat, head.id)) throw notADir(cat, chain, d)
    // A backup recorded without listings: the union of what the chain copied (deletions unseen).
    return { chain, dir: d, entries: [...versions.values()].map(v => ({ name: nameOf(v.path), version: v })) }
  }
  return { chain, dir: d, entries: names.map(name => ({ name, version: versions.get(name) ?? null })) }
}

function notADir(cat: Catalog, chain: Chain, d: string): CatalogError {
  if (d !== '/') {
    const { version, present } = versionAt(cat, chain, d)
    if (version !== undefined && version.type !== 'dir' && present) return new CatalogError('CATALOG_NOT_FOUND', `${d}: not a directory`)
  }
  return new CatalogError('CATALOG_NOT_FOUND', `${d}: no such directory in the backup of that date`)
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** The names `dir` held in backup `backupId`; undefined when the backup has no listing of it. */
export function listingNames(cat: Catalog, backupId: number, dir: string): string[] | undefined {
  const names = cat.stmt('SELECT names FROM listings WHERE backup_id = ? AND dir = ?').pluck().get(backupId, dir) as string | undefined
  if (names === undefined) return undefined
  return names === '' ? [] : names.split('/')
}

export function hasListings(cat: Catalog, backupId: number): boolean {
  return cat.stmt('SELECT 1 FROM listings WHERE backup_id = ? LIMIT 1').pluck().get(backupId) !== undefined
}

/** The newest version in the chain of each name copied in directory `dir`. */
function versionsIn(cat: Catalog, chain: Chain, dir: string): Map<string, FileVersion> {
  const ids = JSON.stringify(chain.backups.map(b => b.id))
  const rows = cat.stmt(`SELECT ${VERSION_COLUMNS} FROM files f JOIN backups b ON b.id = f.backup_id
    WHERE f.dir = ? AND f.backup_id IN (SELECT value FROM json_each(?)) ORDER BY b.started_ns, b.id`).all(dir, ids) as Row[]
  const out = new Map<string, FileVersion>()
  for (const r of rows) out.set(r.name as string, versionOf(r))
  return out
}

/** The newest version in the chain of `path`, and whether the chain's newest listing has it. */
export function versionAt(cat: Catalog, chain: Chain, path: string): { version: FileVersion | undefined; present: boolean } {
  const p = normalizePath(path)
  const head = chain.backups[chain.backups.length - 1]
  if (head === undefined) return { version: undefined, present: false }
  const { dir, name } = splitPath(p)
  const version = p === '/' ? versionsIn(cat, chain, '').get('') : versionsIn(cat, chain, dir).get(name)
  if (p === '/') return { version, present: true }
  const names = listingNames(cat, head.id, dir)
  const present = names === undefined ? !hasListings(cat, head.id) && version !== undefined : names.includes(name)
  return { version, present }
}

export interface FindOptions {
  /** Only under this directory (at any depth). */
  under?: string
  /** Only versions from backups started at or before. */
  beforeNs?: bigint
  limit?: number
}

/**
 * Versions whose name matches a shell glob (*, ?, [...], as SQLite's GLOB reads them; case
 * matters). A pattern with a '/' matches the whole path; without a leading '/' at any depth.
 * Sorted by path, then oldest first.
 */
export function findFiles(cat: Catalog, filesystem: string, pattern: string, opts: FindOptions = {}): FileVersion[] {
  if (pattern === '') throw new CatalogError('CATALOG_BAD_INPUT', 'empty pattern')
  const byPath = pattern.includes('/')
  const glob = byPath && !pattern.startsWith('/') ? `*/${pattern}` : pattern
  const under = opts.under === undefined ? null : normalizePath(opts.under)
  const range = under === null ? null : subtreeRange(under)
  const path = "(CASE WHEN f.dir = '/' THEN '/' || f.name ELSE f.dir || '/' || f.name END)"
  // Under a directory its range is the narrower index walk: '+' keeps the planner off the name index.
  const subject = byPath ? path : under === null ? 'f.name' : '+f.name'
  // Two texts rather than '@under IS NULL OR …': with the OR the planner cannot take the dir range to the index.
  const where = under === null ? '' : 'AND (f.dir = @under OR (f.dir >= @lo AND f.dir < @hi))'
  // CROSS JOIN keeps files the outer loop, so the name prefix or the dir range picks its index;
  // left to itself the planner starts from backups and reads every row of each.
  const rows = cat.stmt(`SELECT ${VERSION_COLUMNS} FROM files f CROSS JOIN backups b ON b.id = f.backup_id
    WHERE ${subject} GLOB @glob AND f.name <> '' AND b.filesystem = @fs AND b.status = 'done'
    AND (@before IS NULL OR b.started_ns <= @before) ${where}
    ORDER BY ${path}, b.started_ns LIMIT @limit`).all({
    glob,
    fs: normalizePath(filesystem),
    before: opts.beforeNs ?? null,
    limit: opts.limit ?? 1000,
    ...(under === null || range === null ? {} : { under, lo: range.lo, hi: range.hi }),
  }) as Row[]
  return rows.map(versionOf)
}
