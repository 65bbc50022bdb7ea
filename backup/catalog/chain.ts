/*
 * The chain of backups in force at a time T (dump(8)'s rule, issue 16 §5): the newest completed
 * backup started at or before T, then, walking back, the newest earlier backup of a lower level,
 * down to a full one. Restored in the returned order (full first, then rising levels), the chain
 * gives the tree as it was when its newest backup ran.
 */
import type { Catalog } from './catalog.ts'
import { normalizePath } from './paths.ts'
import type { BackupInfo, Row } from './rows.ts'
import { backupOf } from './rows.ts'

export interface Chain {
  filesystem: string
  atNs: bigint
  /** Oldest (the full backup) first. Empty: no completed backup of the filesystem at or before T. */
  backups: BackupInfo[]
  /** False when the walk found no full backup under the newest one (its base was deleted). */
  complete: boolean
}

export function chainAt(cat: Catalog, filesystem: string, atNs: bigint): Chain {
  const fs = normalizePath(filesystem)
  const newest = cat.stmt(`SELECT * FROM backups WHERE filesystem = ? AND status = 'done' AND started_ns <= ?
    ORDER BY started_ns DESC, id DESC LIMIT 1`).get(fs, atNs) as Row | undefined
  if (newest === undefined) return { filesystem: fs, atNs, backups: [], complete: false }
  const back: BackupInfo[] = [withTapes(cat, newest)]
  for (;;) {
    const cur = back[back.length - 1] as BackupInfo
    if (cur.full) return { filesystem: fs, atNs, backups: back.reverse(), complete: true }
    const prev = baseOf(cat, cur)
    if (prev === undefined) return { filesystem: fs, atNs, backups: back.reverse(), complete: false }
    back.push(prev)
  }
}

/** The recorded base when it is still in the catalog and completed; otherwise dump's rule. */
function baseOf(cat: Catalog, b: BackupInfo): BackupInfo | undefined {
  if (b.baseId !== null) {
    const r = cat.stmt("SELECT * FROM backups WHERE id = ? AND status = 'done'").get(b.baseId) as Row | undefined
    if (r !== undefined) return withTapes(cat, r)
  }
  const r = cat.stmt(`SELECT * FROM backups WHERE filesystem = ? AND status = 'done' AND level < ? AND started_ns < ?
    ORDER BY started_ns DESC, id DESC LIMIT 1`).get(b.filesystem, b.level, b.startedNs) as Row | undefined
  return r === undefined ? undefined : withTapes(cat, r)
}

function withTapes(cat: Catalog, r: Row): BackupInfo {
  return backupOf(r, cat.tapes(Number(r.id)))
}
