/*
 * Copies of small buffers that caches keep (file handles). Buffer.from() of
 * a few dozen bytes is a slice of Node's shared 8 KiB pool, and a cached
 * slice keeps that whole slab alive, with whatever else was cut from it and
 * has long been garbage: a mount that had cached tens of thousands of
 * handles (cp -a of a node_modules tree) held hundreds of MiB that way. An
 * allocation of its own costs a few dozen bytes of bookkeeping instead.
 *
 * A keyed copy is ours alone and never written to, so its key (the handle
 * in hex, what every client cache is keyed by) is made once and kept with
 * it: a mount's requests name files by the handles its inodes and open
 * files hold, and made the same hex string afresh ~33 times per copied file
 * (session 38), each then hashed anew by the Map it looked up. Only those
 * two keep theirs: counted over a cp -a, every kept key found was an
 * inode's (62,339) or an open file's (15,000), none the attribute or name
 * cache's copies, and each key kept costs a WeakMap entry. A buffer of
 * anyone else's may be rewritten between calls (a caller reusing one for
 * several handles), so its key is always made from its bytes.
 */
export function ownCopy(b: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length)
  b.copy(copy)
  return copy
}

const keys = new WeakMap<Buffer, string>()

/** A private copy of a handle that keeps its key (made by the caller from the same bytes). */
export function keyedCopy(fh: Buffer, key: string): Buffer {
  const copy = ownCopy(fh)
  keys.set(copy, key)
  return copy
}

/** The key of a handle: kept for a copy made by keyedCopy, else made from its bytes. */
export function keyOf(fh: Buffer): string {
  return keys.get(fh) ?? fh.toString('hex')
}
