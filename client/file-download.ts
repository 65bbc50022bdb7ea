/*
 * A whole file read out to a sink that takes each piece at once (a local
 * file, for tsnfs cp), the way nfs-cp reads: READs of a block each, several
 * in flight, each reply's data handed to the sink from the buffer the reply
 * was received into (a slab of the client's pool) and that slab given back
 * as soon as the sink returns. The counterpart of file-upload.ts.
 *
 * Through NfsFile.readBlock each block went through the block cache's
 * lookups, the pending-READ map, the read slots and a promise per layer;
 * here a block is one READ call and one sink call: tsnfs cp of 256 MiB to
 * /dev/null spent 151 ms of user time against 171 (bench/README.md,
 * session 32).
 *
 * READs past the size the file had at the start are not sent ahead: the
 * size is asked again (the attributes every READ reply carries, RFC 1813
 * §3.3.6) once the window is drained, so a file that grew is read on to its
 * new end and an empty file costs no READ. A reply shorter than asked
 * without eof is continued from where it stopped (RFC 1813 §3.3.6: the
 * server may return less than asked); one with eof, or with no data, ends
 * the file there.
 */
import type { BlockTransfer } from './file-upload.ts'
import { withCred } from './identity.ts'

/** Take `data` (the file's bytes at `pos`) before returning: the buffer is reused afterwards. */
export type SinkWrite = (data: Buffer, pos: number) => void

/** slots: READs in flight at most (the window opens from 2 as the sink finds its next block still on the way). */
export interface DownloadSource extends BlockTransfer {
  /** The file's size as last known (the READ replies keep it current). */
  size: () => number
}

interface Pending {
  offset: number
  count: number
  ready: boolean
  reply: Promise<{ data: Buffer; eof: boolean }>
}

/** Read the file from offset 0 to its end into `write`, in order; returns the bytes read. onData: after each piece is written. */
export async function downloadTo(t: DownloadSource, write: SinkWrite, onData?: (n: number) => void): Promise<number> {
  const max = Math.max(1, t.slots)
  let window = Math.min(2, max)
  const ahead: Pending[] = []
  let next = 0
  let pos = 0
  let taken = 0
  const read = (offset: number, count: number): Pending['reply'] => t.nfs.call('READ', { file: { data: t.fh }, offset: BigInt(offset), count }, withCred(t.cred))
  const fill = (): void => {
    while (ahead.length < window && next < t.size()) {
      // A whole block even at the end, as NfsFile.readBlock asks: the server answers what there is, with eof (RFC 1813 §3.3.6).
      const count = t.blockSize
      const p: Pending = { offset: next, count, ready: false, reply: read(next, count) }
      const settled = (): void => {
        p.ready = true
      }
      p.reply.then(settled, settled)
      ahead.push(p)
      next += count
    }
  }
  /** The sink's turn for one reply's data; the slab goes back to the pool whatever the sink does. */
  const deliver = (data: Buffer, at: number): void => {
    try {
      if (data.length > 0) write(data, at)
    } finally {
      t.buffers.give(data)
    }
    if (data.length > 0) onData?.(data.length)
  }
  try {
    for (;;) {
      fill()
      const head = ahead.shift()
      if (head === undefined) return pos
      // The first block is always on the way: only later waits say the READs fall behind the sink.
      if (!head.ready && taken > 0) window = Math.min(window * 2, max)
      taken++
      let r = await head.reply
      let at = head.offset
      let want = head.count
      for (;;) {
        const n = r.data.length
        deliver(r.data, at)
        at += n
        want -= n
        pos = at
        // The file ends here (its last block, or sooner if it shrank since its size was known): what is still ahead is past it.
        if (r.eof || n === 0) return pos
        if (want <= 0) break
        // Short without eof: the rest of this block, before anything after it is written.
        r = await read(at, want)
      }
    }
  } finally {
    // Stopped early (the end, an error): the READs still out give their slabs back when they arrive.
    for (const p of ahead.splice(0)) {
      p.reply.then(
        r => {
          t.buffers.give(r.data)
        },
        () => undefined,
      )
    }
  }
}
