/*
 * Copies of small buffers the tree keeps (symlink targets, create
 * verifiers). Buffer.from() of a few bytes is a slice of Node's shared
 * buffer pool, and a kept slice keeps the whole slab alive with whatever
 * else was cut from it: an allocation of its own costs a few dozen bytes
 * of bookkeeping instead.
 */
export function ownCopy(b: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length)
  b.copy(copy)
  return copy
}
