/*
 * Listing a hashed directory in hash order, with the positions ext4 hands
 * knfsd as READDIR cookies (fs/ext4/dir.c, 64-bit API): an entry's position
 * is (major >> 1) << 32 | minor (hash2pos), the end is 2^63 - 1, and a
 * listing resumed at position p yields the entries whose position is >= p.
 * As with getdents' d_off and NFS cookies, the cookie given with an entry is
 * where the listing continues *after* it: the next entry's position. Since
 * positions come from the names alone, a cookie stays valid whatever other
 * names are added or removed in between, and across restarts.
 */
import { parseDirBlock } from '../format/dirent.ts'
import type { DirEntry } from '../format/dirent.ts'
import { dxHashAt, dxProbe, dxNextLeaf, hashName, readRoot } from './htree-lookup.ts'
import { hashedEntry, hashedLeaf, NO_NEXT, withCookie } from './leaf-cache.ts'
import type { HashedEntry } from './leaf-cache.ts'
import type { DxDir, DxPath } from './htree-lookup.ts'

/** EXT4_HTREE_EOF_64BIT: the position after the last entry. */
export const HTREE_EOF_64BIT = 0x7fffffffffffffffn
/** The start of a listing. */
export const HTREE_START = 0n

export function hash2pos(major: number, minor: number): bigint {
  return (BigInt(major >>> 1) << 32n) | BigInt(minor >>> 0)
}

export function pos2majHash(pos: bigint): number {
  return Number(((pos >> 32n) << 1n) & 0xffffffffn)
}

export function pos2minHash(pos: bigint): number {
  return Number(pos & 0xffffffffn)
}

export interface HtreeDirent extends DirEntry {
  major: number
  minor: number
  /** This entry's own position. */
  pos: bigint
  /** Where to resume to get the entries after this one (the next entry's position, or HTREE_EOF_64BIT). */
  cookie: bigint
}

export interface HtreeListing {
  entries: HtreeDirent[]
  /** No entries after the last one returned. */
  eof: boolean
}

/** The lowest hash the leaf after path's can hold (its dx entry's hash, collision bit cleared), or undefined at the end. */
function nextLeafStart(path: DxPath): number | undefined {
  for (let level = path.frames.length - 1; level >= 0; level--) {
    const f = path.frames[level]
    if (f !== undefined && f.at + 1 < f.count) return (dxHashAt(f, f.at + 1) & ~1) >>> 0
  }
  return undefined
}

/**
 * Up to max entries of an indexed directory ("." and ".." first, as the
 * kernel puts them at hashes 0 and 2) whose position is >= cookie, in
 * position order. Reads the root, the index path and only the leaves the
 * answer needs. Entries with the very same position are never split across
 * two answers (a resume could not tell them apart), so more than max may
 * come back in that rare case.
 */
export async function htreeReadDir(dir: DxDir, cookie: bigint, max: number): Promise<HtreeListing> {
  const { got, cut, eof } = await collectPage(dir, cookie, max)
  const entries: HtreeDirent[] = []
  for (let i = 0; i < cut; i++) {
    const g = got[i] as Listed
    const following = got[i + 1]
    // Spelt out: a spread of the parsed record cost more than the rest of the listing.
    const d = g.d
    entries.push({ inode: d.inode, recLen: d.recLen, fileType: d.fileType, name: d.name, offset: d.offset, major: g.major, minor: g.minor, pos: g.pos, cookie: following === undefined ? HTREE_EOF_64BIT : following.pos })
  }
  return { entries, eof }
}

/** An entry as a listing page hands it on: the name, its inode and type, and where to resume after it. */
export interface HtreeListed {
  name: Buffer
  ino: number
  fileType: number
  cookie: bigint
}

/**
 * htreeReadDir's page with only what a listing hands on. Mostly the leaf cache's own entries
 * (leaf-cache.ts): an entry whose successor in the page is its successor in its leaf already
 * carries the right cookie, so only a leaf's last entry (and the page's) is made anew. Callers
 * only read the entries.
 */
export async function htreeListPage(dir: DxDir, cookie: bigint, max: number): Promise<{ entries: HtreeListed[]; eof: boolean }> {
  const { got, cut, eof } = await collectPage(dir, cookie, max)
  const entries: HtreeListed[] = new Array<HtreeListed>(cut)
  for (let i = 0; i < cut; i++) {
    const g = got[i] as Listed
    const following = got[i + 1]
    const next = following === undefined ? HTREE_EOF_64BIT : following.pos
    entries[i] = g.cookie === next ? g : withCookie(g, next)
  }
  return { entries, eof }
}

/**
 * The entries read for a page, in position order: the page is got[0 .. cut), and got[cut] (when
 * there) is the entry after it, whose position is the last one's cookie.
 */
async function collectPage(dir: DxDir, cookie: bigint, max: number): Promise<{ got: Listed[]; cut: number; eof: boolean }> {
  if (max < 1) throw new RangeError(`max ${max}`)
  if (cookie >= HTREE_EOF_64BIT || cookie < 0n) return { got: [], cut: 0, eof: true }
  // Positions as two numbers (major >> 1, minor): a BigInt per entry was most of a listing's cost.
  const fromHi = Number(cookie >> 32n)
  const fromLo = Number(cookie & 0xffffffffn)
  const top = await readRoot(dir)
  const got: Listed[] = []
  // "." and ".." sit at positions 0 and 1 << 32: a page resuming past them need not parse the root's records.
  if (fromHi <= 1) {
    const dots = parseDirBlock(top.frame.buf, dir.blockSize, `directory ${dir.ino} htree root`).entries
    for (const [i, d] of dots.slice(0, 2).entries()) {
      const major = i === 0 ? 0 : 2
      if (atOrAfter(major >>> 1, 0, fromHi, fromLo)) got.push(hashedEntry(d, major, 0, NO_NEXT))
    }
  }
  const path = await dxProbe(dir, pos2majHash(cookie), top)
  let more = true
  // got[0 .. counted) all lie before the next leaf's start (a prefix: never more than that).
  let counted = 0
  for (;;) {
    const buf = await dir.block(path.leaf, 'dir-block')
    const leaf = hashedLeaf(buf, dir.blockSize, top.hashVersion, dir.hashSeed, `directory ${dir.ino} block ${path.leaf}`, (name) => hashName(dir, top.hashVersion, name))
    for (const g of leaf) if (atOrAfter(g.hi, g.lo, fromHi, fromLo)) got.push(g)
    const next = nextLeafStart(path)
    if (next === undefined) {
      more = false
      break
    }
    // Everything not yet read sits at or after the next leaf's start: stop once more than max
    // entries read come before it (what a sorted got[max] < start asks, without sorting per leaf).
    // Leaves come in hash order, each sorted, so got is sorted but for damage: counting its
    // prefix below the start (next starts only grow) can only undercount, which reads on.
    const nextHi = next >>> 1
    while (counted < got.length && (got[counted] as Listed).hi < nextHi) counted++
    if (counted > max) break
    await dxNextLeaf(dir, path)
  }
  if (!sorted(got)) got.sort((a, b) => a.hi - b.hi || a.lo - b.lo)
  const same = (a: Listed | undefined, b: Listed | undefined): boolean => a !== undefined && b !== undefined && a.hi === b.hi && a.lo === b.lo
  let cut = Math.min(max, got.length)
  while (cut > 0 && cut < got.length && same(got[cut - 1], got[cut])) cut--
  if (cut === 0) {
    const first = got[0]
    cut = got.findIndex((g) => !same(g, first))
    if (cut < 0) cut = got.length
  }
  return { got, cut, eof: !more && cut === got.length }
}

/** An entry with its position's high and low words: (major >> 1, minor). */
type Listed = HashedEntry

function atOrAfter(hi: number, lo: number, fromHi: number, fromLo: number): boolean {
  return hi > fromHi || (hi === fromHi && lo >= fromLo)
}

function sorted(got: readonly Listed[]): boolean {
  for (let i = 1; i < got.length; i++) {
    const a = got[i - 1] as Listed
    const b = got[i] as Listed
    if (a.hi > b.hi || (a.hi === b.hi && a.lo > b.lo)) return false
  }
  return true
}
