/*
 * Copies of small buffers that caches keep (file handles). Buffer.from() of
 * a few dozen bytes is a slice of Node's shared 8 KiB pool, and a cached
 * slice keeps that whole slab alive, with whatever else was cut from it and
 * has long been garbage: a mount that had cached tens of thousands of
 * handles (cp -a of a node_modules tree) held hundreds of MiB that way. An
 * allocation of its own costs a few dozen bytes of bookkeeping instead.
 */
export function ownCopy(b: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length)
  b.copy(copy)
  return copy
}
