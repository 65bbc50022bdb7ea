/*
 * Restore plans (issue 16 §6, §7) and the executor interface that carries them out. A plan lists,
 * per backup of the chain in force at T (in chain order: full first), the objects to take from
 * it with their tape label, tape file number and stream offset, sorted by offset, and where the
 * next object of that stream begins: a reader can seek to the offset and stop at the end, so one
 * file from a huge backup costs reading that file's records only (direct access restore). A full
 * restore is the chain itself: each stream whole, in order, deletions applied.
 */
import type { LogLevel, RestoreSummary } from '../types.ts'
import type { Catalog } from './catalog.ts'
import type { Chain } from './chain.ts'
import { chainAt } from './chain.ts'
import { joinPath, normalizePath, subtreeRange } from './paths.ts'
import type { BackupInfo, FileVersion, Row } from './rows.ts'
import { versionOf } from './rows.ts'
import { listingNames, versionAt } from './queries.ts'
import { CatalogError } from './schema.ts'

/** One object to restore and where its records are. */
export interface PlanFile extends FileVersion {
  /** Where the next object of the same stream begins (null: the object runs to the stream's end). */
  endOffset: bigint | null
}

export interface PlanStep {
  backup: BackupInfo
  /** Read the whole stream (a full restore); otherwise only `files`. */
  whole: boolean
  /** Sorted by streamOffset. Empty when `whole`. */
  files: PlanFile[]
}

export interface RestorePlan {
  filesystem: string
  atNs: bigint
  /** The selection as asked (normalized); ['/'] for a full restore. */
  selection: string[]
  full: boolean
  chain: Chain
  steps: PlanStep[]
  /** Selected paths the chain's listings have but no backup of the chain copied (a gap in the catalog). */
  missing: string[]
}

/** Builds the plan for restoring `selection` (paths; a directory brings its subtree) as it was at `atNs`. */
export function restorePlan(cat: Catalog, filesystem: string, selection: readonly string[], atNs: bigint): RestorePlan {
  const chain = chainAt(cat, filesystem, atNs)
  const head = chain.backups[chain.backups.length - 1]
  if (head === undefined) throw new CatalogError('CATALOG_NOT_FOUND', `no completed backup of ${chain.filesystem} at or before that date`)
  if (!chain.complete) throw new CatalogError('CATALOG_STATE', `backup ${head.id}'s chain has no full backup under it in the catalog (its base was deleted): it cannot be restored`)
  const sel = [...new Set(selection.map(normalizePath))].sort()
  if (sel.length === 0) throw new CatalogError('CATALOG_BAD_INPUT', 'nothing selected')
  if (sel.includes('/')) {
    return { filesystem: chain.filesystem, atNs, selection: ['/'], full: true, chain, steps: chain.backups.map(backup => ({ backup, whole: true, files: [] })), missing: [] }
  }
  const chosen = new Map<string, FileVersion>()
  const missing: string[] = []
  for (const p of sel) {
    if (chosen.has(p)) continue
    const { version, present } = versionAt(cat, chain, p)
    if (!present) throw new CatalogError('CATALOG_NOT_FOUND', `${p}: not in the backup of that date`)
    if (version === undefined) missing.push(p)
    else chosen.set(p, version)
    if (version?.type === 'dir') addSubtree(cat, chain, head.id, p, chosen, missing)
  }
  const steps: PlanStep[] = chain.backups.map(backup => ({ backup, whole: false, files: [] }))
  const byId = new Map(steps.map(s => [s.backup.id, s]))
  for (const v of chosen.values()) byId.get(v.backupId)?.files.push({ ...v, endOffset: null })
  for (const s of steps) {
    s.files.sort((a, b) => (a.streamOffset < b.streamOffset ? -1 : a.streamOffset > b.streamOffset ? 1 : 0))
    for (const f of s.files) f.endOffset = nextOffset(cat, s.backup.id, f.streamOffset)
  }
  return { filesystem: chain.filesystem, atNs, selection: sel, full: false, chain, steps: steps.filter(s => s.files.length > 0), missing }
}

/** Adds every object under directory `dir` that the head's listings hold, at its newest chain version. */
function addSubtree(cat: Catalog, chain: Chain, headId: number, dir: string, chosen: Map<string, FileVersion>, missing: string[]): void {
  const { lo, hi } = subtreeRange(dir)
  const ids = JSON.stringify(chain.backups.map(b => b.id))
  const rows = cat.stmt(`SELECT f.*, b.level, b.started_ns FROM files f JOIN backups b ON b.id = f.backup_id
    WHERE (f.dir = ? OR (f.dir >= ? AND f.dir < ?)) AND f.backup_id IN (SELECT value FROM json_each(?))
    ORDER BY b.started_ns, b.id`).all(dir, lo, hi, ids) as Row[]
  const newest = new Map<string, FileVersion>()
  for (const r of rows) {
    const v = versionOf(r)
    newest.set(v.path, v)
  }
  // Walk the head's listings from `dir` down: only what the tree held at T, renamed and deleted names gone.
  const stack = [dir]
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    for (const name of listingNames(cat, headId, d) ?? []) {
      const p = joinPath(d, name)
      const v = newest.get(p)
      if (v === undefined) {
        missing.push(p)
        continue
      }
      chosen.set(p, v)
      if (v.type === 'dir') stack.push(p)
    }
  }
}

function nextOffset(cat: Catalog, backupId: number, offset: bigint): bigint | null {
  const r = cat.stmt('SELECT min(stream_offset) FROM files WHERE backup_id = ? AND stream_offset > ?').pluck().get(backupId, offset) as bigint | null
  return r
}

export interface ExecuteOptions {
  /** Where to restore: an export path or a directory of this host (the executor says which it takes); null: the original place. */
  to: string | null
  overwrite: boolean
  onLog?: (level: LogLevel, message: string) => void
  signal?: AbortSignal
}

/**
 * Carries out a plan: the DMA's NDMP executor (recover through a data service, tapes through a
 * tape service) or a host-side reader of tape files. The catalog knows neither.
 */
export interface RestoreExecutor {
  /** A name for messages ('ndmp 10.0.0.5:10000', 'local tapes in /srv/tapes'). */
  readonly name: string
  execute(plan: RestorePlan, opts: ExecuteOptions): Promise<RestoreSummary>
}

/** The selection's objects in plan order (for printing). */
export function planFiles(plan: RestorePlan): PlanFile[] {
  return plan.steps.flatMap(s => s.files)
}
