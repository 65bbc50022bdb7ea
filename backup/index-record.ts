/*
 * The stream's own index, so verify and direct access need no catalog: one line per regular file
 * (SHA-256, offset of its first header, size, changed-while-read flag, path), carried in the
 * `comment` record of pax global headers at the end of the stream. pax readers skip comments
 * (POSIX.1-2001 pax, "comment"), so GNU tar lists and extracts the stream unchanged.
 */
import { paxRecord } from './tar/pax.ts'

export interface IndexRow {
  path: string
  offset: bigint
  size: bigint
  sha256: string
  changed: boolean
}

const MAGIC = 'tsnfs-index 1\n'
/** Bytes of index text per global header: well under the reader's pax header limit. */
const PART = 1024 * 1024

export function encodeIndex(rows: readonly IndexRow[]): Buffer[] {
  const parts: Buffer[] = []
  let text = MAGIC
  for (const r of rows) {
    text += `${r.sha256} ${r.offset} ${r.size} ${r.changed ? 1 : 0} ${encodeURIComponent(r.path)}\n`
    if (text.length >= PART) {
      parts.push(paxRecord('comment', text))
      text = MAGIC
    }
  }
  if (text !== MAGIC || parts.length === 0) parts.push(paxRecord('comment', text))
  return parts
}

/** Rows of one comment; null when the comment is not our index (another writer's comment). */
export function decodeIndexPart(comment: Buffer): IndexRow[] | null {
  const text = comment.toString('utf8')
  if (!text.startsWith(MAGIC)) return null
  const rows: IndexRow[] = []
  for (const line of text.slice(MAGIC.length).split('\n')) {
    if (line === '') continue
    const m = /^([0-9a-f]{64}) (\d{1,20}) (\d{1,20}) ([01]) (\S+)$/.exec(line)
    if (m === null) return null
    let path: string
    try {
      path = decodeURIComponent(m[5] ?? '')
    } catch {
      return null
    }
    rows.push({ sha256: m[1] ?? '', offset: BigInt(m[2] ?? 0), size: BigInt(m[3] ?? 0), changed: m[4] === '1', path })
  }
  return rows
}
