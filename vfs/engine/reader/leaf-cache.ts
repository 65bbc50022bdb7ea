/*
 * The entries of a directory leaf with their hashes, kept for the next listing page. A page that
 * resumes mid-leaf parses and hashes that whole leaf again (the previous page read it too), so a
 * listing parsed and hashed each leaf about twice; the few leaves read last are kept here instead.
 * A hit needs the very bytes the entries came from (a private copy compared with the live block,
 * a memcmp), the same hash version and seed: a leaf changed in between is parsed anew. Bounded to
 * a few leaves, so a big listing holds no more than it did.
 */
import { parseDirBlock } from '../format/dirent.ts'
import type { DirEntry } from '../format/dirent.ts'

/** An entry of a leaf with its hash: position (hi, lo) = (major >> 1, minor). */
export interface HashedEntry {
  d: DirEntry
  major: number
  minor: number
  hi: number
  lo: number
}

interface Kept {
  copy: Buffer
  hashVersion: number
  seed: Buffer
  entries: readonly HashedEntry[]
}

/** Leaves kept: a few listings going on at once, each reading one or two leaves a page. */
const KEPT_MAX = 16
const kept = new Map<Buffer, Kept>()

/**
 * The live entries of leaf `buf` (already checksum-verified by the caller) in block order, each
 * with its hash. Callers only read the result (it may be shared with the next page).
 */
export function hashedLeaf(
  buf: Buffer, blockSize: number, hashVersion: number, seed: Buffer, where: string,
  hash: (name: Buffer) => { major: number; minor: number },
): readonly HashedEntry[] {
  const hit = kept.get(buf)
  if (hit !== undefined && hit.hashVersion === hashVersion && hit.seed.equals(seed) && hit.copy.equals(buf.subarray(0, blockSize))) return hit.entries
  const entries: HashedEntry[] = []
  for (const d of parseDirBlock(buf, blockSize, where).entries) {
    const { major, minor } = hash(d.name)
    entries.push({ d, major, minor, hi: major >>> 1, lo: minor >>> 0 })
  }
  if (hit !== undefined) kept.delete(buf)
  else if (kept.size >= KEPT_MAX) {
    const oldest = kept.keys().next().value
    if (oldest !== undefined) kept.delete(oldest)
  }
  kept.set(buf, { copy: Buffer.from(buf.subarray(0, blockSize)), hashVersion, seed, entries })
  return entries
}
