/*
 * READDIR paging over a Directory (RFC 1813 §3.3.16). Cookies: 1 is `.`,
 * 2 is `..`, an entry's cookie is its sequence number (>= 3), so a cookie
 * stays meaningful however the directory changes and is never 0.
 */
import type { DirEntry, DirPage } from '../types.ts'
import { FIRST_ENTRY_SEQ } from './directory.ts'
import type { DirInode } from './inode.ts'
import { attrOf } from './inode.ts'
import type { InodeTable } from './inode-table.ts'

const DOT = Buffer.from('.')
const DOTDOT = Buffer.from('..')

export function readdirPage(table: InodeTable, d: DirInode, cookie: bigint, max: number): DirPage {
  // A page always holds at least one entry, or a client looping on empty non-eof pages never ends.
  const limit = Math.max(1, Math.floor(max))
  const entries: DirEntry[] = []
  if (cookie === 0n) {
    entries.push({ name: Buffer.from(DOT), fileid: d.id, cookie: 1n, ref: { id: d.id, gen: d.gen } })
  }
  if (cookie <= 1n) {
    if (entries.length === limit) return { entries, eof: false }
    const parent = table.byId(d.parent)
    entries.push({ name: Buffer.from(DOTDOT), fileid: parent.id, cookie: 2n, ref: { id: parent.id, gen: parent.gen } })
  }
  const afterSeq =
    cookie < BigInt(FIRST_ENTRY_SEQ)
      ? FIRST_ENTRY_SEQ - 1
      : cookie > BigInt(Number.MAX_SAFE_INTEGER)
        ? Number.MAX_SAFE_INTEGER
        : Number(cookie)
  const { slots, more } = d.dir.after(afterSeq, limit - entries.length)
  for (const slot of slots) {
    const ino = table.byId(slot.id)
    // The slot's own name buffer (never modified): a copy per entry is measurable at 200 entries a page.
    entries.push({ name: Buffer.from(slot.key, 'latin1'), fileid: ino.id, cookie: BigInt(slot.seq), ref: { id: ino.id, gen: ino.gen }, attr: attrOf(ino) })
  }
  return { entries, eof: !more }
}
