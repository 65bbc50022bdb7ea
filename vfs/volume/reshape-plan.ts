import { VolumeError } from './layer.ts'
import { dataMember, parityMember } from './parity.ts'

/**
 * The arithmetic of a reshape (issue 14 item 3: a member added to a stripe or RAID-5, md's
 * `--grow --raid-devices=N+1`), pure so it can be table-tested. A *row* is one unit on every
 * member at the same member offset (row × unit); the layout keeps the same number of rows, each
 * holding one more data unit, so logical unit L moves from old row ⌊L / dOld⌋ to new row
 * ⌊L / dNew⌋ (dNew = dOld + 1), never to a later row.
 *
 * The copy goes in windows of new rows [a, b), in increasing order; below the checkpoint (row a)
 * the new layout holds. Writing rows [a, b) in place destroys old rows [a, b): that is safe when
 * everything they hold is already copied (units below a × dNew) and the window's own sources (old
 * rows from ⌊a·dNew / dOld⌋) lie past b — both say b·dOld ≤ a·dNew, i.e. (b − a) ≤ a / dOld
 * rows. A crash in the middle of such a window is redone from the untouched old rows. The first
 * dOld rows admit no such window (the row overwrites its own sources): each goes alone through a
 * backup copy first (md's "critical section").
 */

export type ReshapeKind = 'stripe' | 'raid5'

export interface ReshapeGeometry {
  readonly kind: ReshapeKind
  /** Members before the reshape (the new one is appended as member oldN). */
  readonly oldN: number
  readonly unit: number
  /** Rows (units per member) the volume uses, before and after. */
  readonly rows: number
}

export interface Window {
  /** New rows [from, to) this step writes. */
  readonly from: number
  readonly to: number
  /** Written through the backup area first (its rows overlap sources not yet copied). */
  readonly backup: boolean
}

/** Bytes before the backed-up data: a header block (reshape-state.ts encodes it). */
export const BACKUP_HEADER = 4096

/** Data units per row of a layout over n members. */
export function dataPerRow(kind: ReshapeKind, n: number): number {
  return kind === 'raid5' ? n - 1 : n
}

/** The window that starts at new row `from`: the largest safe in-place one (at most `maxRows`), or one row through the backup. */
export function windowAt(g: ReshapeGeometry, from: number, maxRows: number): Window {
  const dOld = dataPerRow(g.kind, g.oldN)
  const safe = Math.min(Math.floor(from / dOld), Math.max(1, maxRows), g.rows - from)
  if (safe >= 1) return { from, to: from + safe, backup: false }
  return { from, to: from + 1, backup: true }
}

/** Every window of a reshape from its start. */
export function windows(g: ReshapeGeometry, maxRows: number): Window[] {
  const out: Window[] = []
  for (let row = 0; row < g.rows; ) {
    const w = windowAt(g, row, maxRows)
    out.push(w)
    row = w.to
  }
  return out
}

/**
 * Where the backup lives: the new member's last rows, which the new layout writes only at the
 * very end (backup windows are the first dOld rows). Returns the member offset of the header.
 * Refused when the volume has too few rows for both.
 */
export function backupOffset(g: ReshapeGeometry): number {
  const dOld = dataPerRow(g.kind, g.oldN)
  const bytes = BACKUP_HEADER + dataPerRow(g.kind, g.oldN + 1) * g.unit
  const rows = Math.ceil(bytes / g.unit)
  if (g.rows - rows < dOld) {
    throw new VolumeError('VOLUME_LAYOUT', `a reshape to ${g.oldN + 1} members needs at least ${dOld + rows} units of ${g.unit} bytes per member (for its backup area), the volume uses ${g.rows}`)
  }
  return (g.rows - rows) * g.unit
}

/** Where logical unit `u` lives in a layout over n members: the member and the row. */
export function placeOf(kind: ReshapeKind, n: number, u: number): { member: number; row: number } {
  const d = dataPerRow(kind, n)
  const row = Math.floor(u / d)
  const i = u - row * d
  return { member: kind === 'raid5' ? dataMember(row, i, n) : i, row }
}

/** The member holding row `row`'s parity (RAID-5), or -1 (stripe). */
export function parityOf(kind: ReshapeKind, n: number, row: number): number {
  return kind === 'raid5' ? parityMember(row, n) : -1
}

/** Old rows holding the sources of new rows [from, to): [first, end), clipped to the volume's rows. */
export function sourceRows(g: ReshapeGeometry, from: number, to: number): { first: number; end: number } {
  const dOld = dataPerRow(g.kind, g.oldN)
  const dNew = dOld + 1
  const first = Math.min(g.rows, Math.floor((from * dNew) / dOld))
  const end = Math.min(g.rows, Math.ceil((to * dNew) / dOld))
  return { first, end: Math.max(first, end) }
}
