/*
 * Owner identity. Every request brings a fresh owner object, so the table keys
 * owners by their fields, and keeps its own copy of what it stores.
 */
import type { LockOwner } from './types.ts'

/**
 * One string per owner, for map keys. svid and the hex of oh hold no ':', so
 * the client name can follow unescaped and two owners never share a key.
 */
export function ownerKey(o: LockOwner): string {
  return `${o.svid}:${o.oh.toString('hex')}:${o.client}`
}

/**
 * A copy safe to keep: a decoded oh is a view into the request's record, and
 * keeping the view would keep the whole record alive and let a reused buffer
 * change the owner under the table.
 */
export function keepOwner(o: LockOwner): LockOwner {
  return { client: o.client, svid: o.svid, oh: Buffer.from(o.oh) }
}
