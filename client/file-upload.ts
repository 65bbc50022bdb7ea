/*
 * A whole file written from a source that can be read again (a local file,
 * for tsnfs cp), the way nfs-cp writes: each block read into a buffer of the
 * client's pool and sent as an UNSTABLE WRITE, several in flight, the buffer
 * back in the pool at its reply; of each acknowledged range only its offset,
 * length and verifier are kept. One COMMIT at the end; the ranges whose
 * WRITE verifier is not the COMMIT's (the server restarted and may have lost
 * them, RFC 1813 §3.3.7, §3.3.21) are read again from the source and sent
 * FILE_SYNC. Short WRITEs are continued.
 *
 * Through NfsFile.write each block stayed held until a COMMIT covered it (a
 * COMMIT behind every 8 MiB, so that it could be sent again): 13-60 fresh
 * 1 MiB slabs per upload, each costing ~4 ms of system time in page faults
 * on a paravirtualized machine, against 6-8 slabs this way
 * (bench/README.md, session 31).
 */
import { nfsstat3, stable_how } from '../xdr/generated/nfs3.ts'
import { NfsError } from './errors.ts'
import { withCred } from './identity.ts'
import type { Nfs3 } from './nfs3.ts'
import type { CallCredential } from './rpc/auth.ts'
import type { BufferPool } from './rpc/buffer-pool.ts'

/** Fill `buf` from the source at `pos`; the bytes read (0: the end of the source). */
export type SourceRead = (buf: Buffer, pos: number) => Promise<number>

/** A file's blocks moved to or from the server: whose, with which buffers, how many calls at once. */
export interface BlockTransfer {
  nfs: Nfs3
  fh: Buffer
  cred: CallCredential | undefined
  /** The client's pool: WRITE data is read into it, READ replies are received into it. */
  buffers: BufferPool
  blockSize: number
  /** Calls in flight at most. */
  slots: number
}

export type UploadTarget = BlockTransfer

/** A range the server acknowledged UNSTABLE, and the verifier it answered with. */
interface Acked {
  offset: number
  length: number
  verf: Buffer
}

/** COMMIT rounds whose verifier keeps changing before the upload fails with EIO (the re-sends are FILE_SYNC: one round should do). */
const MAX_ROUNDS = 3

/** Write the source from offset 0 to its end; returns the bytes written. onBlock: after each block is read. */
export async function uploadFrom(t: UploadTarget, read: SourceRead, onBlock?: (n: number) => void): Promise<number> {
  const acked: Acked[] = []
  const send = async (data: Buffer, pos: number, stable: stable_how): Promise<void> => {
    for (let off = 0; off < data.length; ) {
      const r = await t.nfs.call('WRITE', { file: { data: t.fh }, offset: BigInt(pos + off), count: data.length - off, stable, data: data.subarray(off) }, withCred(t.cred))
      // A server that accepts nothing and reports no error would loop forever.
      if (r.count === 0) throw NfsError.fromStatus(nfsstat3.NFS3ERR_IO, 'WRITE')
      const n = Math.min(r.count, data.length - off)
      if (r.committed !== stable_how.FILE_SYNC) acked.push({ offset: pos + off, length: n, verf: Buffer.from(r.verf) })
      off += n
    }
  }
  let inflight = 0
  // In an object: the WRITEs' callbacks set it, which narrowing of a plain local would not see.
  const first: { failure: Error | null } = { failure: null }
  let wake: (() => void) | null = null
  const settled = (): void => {
    inflight--
    const w = wake
    wake = null
    w?.()
  }
  let pos = 0
  try {
    for (;;) {
      while (inflight >= t.slots && first.failure === null) await new Promise<void>(resolve => (wake = resolve))
      if (first.failure !== null) break
      const buf = t.buffers.take(t.blockSize)
      let n: number
      try {
        n = await read(buf, pos)
      } catch (err) {
        t.buffers.give(buf)
        throw err
      }
      if (n === 0) {
        t.buffers.give(buf)
        break
      }
      inflight++
      // The transport settles a call only once the socket is done with its buffers: the block can go back then.
      send(buf.subarray(0, n), pos, stable_how.UNSTABLE)
        .catch((err: unknown) => {
          first.failure ??= err instanceof Error ? err : new Error(String(err))
        })
        .finally(() => {
          t.buffers.give(buf)
          settled()
        })
      pos += n
      onBlock?.(n)
    }
  } finally {
    while (inflight > 0) await new Promise<void>(resolve => (wake = resolve))
  }
  if (first.failure !== null) throw first.failure
  await commitAll(t, acked, read, send)
  return pos
}

/** COMMIT once; what the verifier does not cover is read again and re-sent FILE_SYNC, then COMMITted again if still unstable. */
async function commitAll(t: UploadTarget, acked: Acked[], read: SourceRead, send: (data: Buffer, pos: number, stable: stable_how) => Promise<void>): Promise<void> {
  for (let round = 0; acked.length > 0; round++) {
    if (round === MAX_ROUNDS) throw NfsError.fromStatus(nfsstat3.NFS3ERR_IO, 'COMMIT')
    // RFC 1813 §3.3.21: offset 0, count 0 flushes the whole file.
    const verf = Buffer.from((await t.nfs.call('COMMIT', { file: { data: t.fh }, offset: 0n, count: 0 }, withCred(t.cred))).verf)
    const lost = acked.splice(0).filter(a => !a.verf.equals(verf))
    if (lost.length === 0) return
    const buf = t.buffers.take(t.blockSize)
    try {
      for (const a of lost) {
        for (let off = 0; off < a.length; ) {
          const n = await read(buf.subarray(0, Math.min(buf.length, a.length - off)), a.offset + off)
          // The source shrank under us: what it no longer has cannot be sent again.
          if (n === 0) throw NfsError.fromStatus(nfsstat3.NFS3ERR_IO, 'WRITE')
          await send(buf.subarray(0, n), a.offset + off, stable_how.FILE_SYNC)
          off += n
        }
      }
    } finally {
      t.buffers.give(buf)
    }
  }
}
