/*
 * The entries of a directory leaf with their hashes, kept for the next listing page. A page that
 * resumes mid-leaf parses and hashes that whole leaf again (the previous page read it too), so a
 * listing parsed and hashed each leaf about twice; the few leaves read last are kept here instead.
 * A hit needs the very bytes the entries came from (a private copy compared with the live block,
 * a memcmp), the same hash version and seed: a leaf changed in between is parsed anew. Bounded to
 * a few leaves, so a big listing holds no more than it did.
 *
 * Kept in position order, each with its position as a BigInt: a listing then merges leaves that
 * are already sorted and hands out cookies without making a BigInt per entry per page. The names
 * are views of the private copy (never written), not a Buffer each. Each entry also carries what a
 * listing page hands on (name, inode, type, and the cookie after it: the next entry's position in
 * this leaf), so a page hands out the kept entries themselves rather than an object made per entry
 * per page (htree-readdir.ts htreeListPage).
 */
import { parseDirBlock } from '../format/dirent.ts'
import type { DirEntry } from '../format/dirent.ts'

/** An entry of a leaf with its hash: position (hi, lo) = (major >> 1, minor). */
export interface HashedEntry {
  d: DirEntry
  /** d's name, inode and type, here so a listing reads one object an entry, not two. */
  name: Buffer
  ino: number
  fileType: number
  major: number
  minor: number
  hi: number
  lo: number
  /** (hi << 32) | lo: this entry's READDIR position. */
  pos: bigint
  /** The next entry's position in this leaf: where a listing resumes after this one; NO_NEXT for the leaf's last. */
  cookie: bigint
}

/** The cookie of a leaf's last entry, which only the next leaf can give (the listing finds it): none (-1). */
export const NO_NEXT = -1n

interface Kept {
  copy: Buffer
  hashVersion: number
  seed: Buffer
  entries: readonly HashedEntry[]
}

/**
 * Bytes kept, over all leaves (a leaf's copy and about ENTRY_BYTES an entry): a few listings going
 * on at once, each reading a leaf or a few a page, and a directory of 10,000 entries listed again
 * finds all of its leaves.
 */
const BYTES_MAX = 4 << 20
const ENTRY_BYTES = 256
/** Bytes in the leaves kept, as costOf counts them. */
let keptBytes = 0
const kept = new Map<Buffer, Kept>()

/**
 * The live entries of leaf `buf` (already checksum-verified by the caller) in position order
 * (hi, lo), each with its hash. Callers only read the result (it is shared with the next page).
 */
export function hashedLeaf(
  buf: Buffer, blockSize: number, hashVersion: number, seed: Buffer, where: string,
  hash: (name: Buffer) => { major: number; minor: number },
): readonly HashedEntry[] {
  const hit = kept.get(buf)
  if (hit !== undefined && hit.hashVersion === hashVersion && hit.seed.equals(seed) && hit.copy.equals(buf.subarray(0, blockSize))) return hit.entries
  const copy = Buffer.from(buf.subarray(0, blockSize))
  const entries: HashedEntry[] = []
  for (const d of parseDirBlock(copy, blockSize, where, false).entries) {
    const { major, minor } = hash(d.name)
    entries.push(hashedEntry(d, major, minor, NO_NEXT))
  }
  entries.sort((a, b) => a.hi - b.hi || a.lo - b.lo)
  for (let i = 0; i + 1 < entries.length; i++) (entries[i] as HashedEntry).cookie = (entries[i + 1] as HashedEntry).pos
  if (hit !== undefined) forget(buf, hit)
  // Oldest first (a Map iterates in insertion order); a leaf is always kept, if alone over the budget.
  for (const [old, k] of kept) {
    if (keptBytes + costOf(copy, entries) <= BYTES_MAX) break
    forget(old, k)
  }
  kept.set(buf, { copy, hashVersion, seed, entries })
  keptBytes += costOf(copy, entries)
  return entries
}

/** Entry d at hash (major, minor), resuming at `cookie`: every HashedEntry is made here (one object shape). */
export function hashedEntry(d: DirEntry, major: number, minor: number, cookie: bigint): HashedEntry {
  const hi = major >>> 1
  const lo = minor >>> 0
  return { d, name: d.name, ino: d.inode, fileType: d.fileType, major, minor, hi, lo, pos: (BigInt(hi) << 32n) | BigInt(lo), cookie }
}

/** g resuming at `cookie` instead (a leaf's last entry, or one whose neighbour in the page is not its neighbour in the leaf). */
export function withCookie(g: HashedEntry, cookie: bigint): HashedEntry {
  return { d: g.d, name: g.name, ino: g.ino, fileType: g.fileType, major: g.major, minor: g.minor, hi: g.hi, lo: g.lo, pos: g.pos, cookie }
}

function forget(buf: Buffer, k: Kept): void {
  kept.delete(buf)
  keptBytes -= costOf(k.copy, k.entries)
}

function costOf(copy: Buffer, entries: readonly HashedEntry[]): number {
  return copy.length + entries.length * ENTRY_BYTES
}
