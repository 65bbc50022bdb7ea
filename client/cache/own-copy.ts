/*
 * Copies of small buffers that caches keep (file handles). Buffer.from() of
 * a few dozen bytes is a slice of Node's shared 8 KiB pool, and a cached
 * slice keeps that whole slab alive, with whatever else was cut from it and
 * has long been garbage: a mount that had cached tens of thousands of
 * handles (cp -a of a node_modules tree) held hundreds of MiB that way. An
 * allocation of its own costs a few dozen bytes of bookkeeping instead.
 *
 * A copy made here is ours alone and never written to, so its key (the
 * handle in hex, what every client cache is keyed by) is made once and kept
 * with it: a mount's requests name files by the handles its inodes and
 * caches hold, and made the same hex string afresh ~33 times per copied
 * file (session 38), each then hashed anew by the Map it looked up. A
 * buffer of anyone else's may be rewritten between calls (a caller reusing
 * one for several handles), so its key is always made from its bytes.
 */
const keys = new WeakMap<Buffer, string>()

/** A private copy of b; key: b's handle key if the caller has made it already. */
export function ownCopy(b: Buffer, key?: string): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length)
  b.copy(copy)
  keys.set(copy, key ?? b.toString('hex'))
  return copy
}

/** The key of a handle: kept for a copy made by ownCopy, else made from its bytes. */
export function keyOf(fh: Buffer): string {
  return keys.get(fh) ?? fh.toString('hex')
}
