/*
 * Node streams over NfsFile. The read stream fetches whole blocks ahead of
 * its consumer (as many as the read-ahead window) and pushes each in the
 * buffer its READ filled, which is the consumer's alone: no copy, and no
 * block of it stays in the cache. Past the size it found at open, and with
 * a highWaterMark of its own, it reads positioned chunks through
 * NfsFile.read (and its read-ahead) instead. The write stream's 'finish'
 * comes after close, that is after the COMMIT, so a finished stream is on
 * the server's stable storage. Errors (a deferred write error included) are
 * emitted as 'error'.
 */
import { Readable, Writable } from 'node:stream'
import type { NfsFile } from './file.ts'
import type { FileClient, FileData } from './file-data.ts'
import { BlockPrefetch } from './readahead.ts'

export interface ReadStreamOptions {
  /** First byte (default 0). */
  start?: number
  /** Last byte, inclusive as in fs.createReadStream (default: to EOF). */
  end?: number
  /** Bytes per read (default one block). */
  highWaterMark?: number
}

export interface WriteStreamOptions {
  flags?: 'w' | 'a' | 'wx'
  mode?: number
  /**
   * The chunks written are never changed afterwards (true of fs and socket
   * streams, which make a new buffer for every chunk): whole blocks are
   * then sent from them without a copy (NfsFile.write transfer). Default false.
   */
  transfer?: boolean
}

function settle(p: Promise<unknown>, cb: (err?: Error | null) => void): void {
  p.then(
    () => {
      cb()
    },
    (err: unknown) => {
      cb(err instanceof Error ? err : new Error(String(err)))
    },
  )
}

/** via: the client (or view) whose identity opens and reads (default the mount's). */
export function createReadStream(data: FileData, path: string, opts: ReadStreamOptions = {}, via: FileClient = data.client): Readable {
  let file: NfsFile | null = null
  let pos = opts.start ?? 0
  const stop = opts.end === undefined ? Number.POSITIVE_INFINITY : opts.end + 1
  const bs = data.opts.blockSize
  // Whole blocks are fetched ahead (up to the read-ahead window), each into a buffer the consumer then owns.
  let blocks: BlockPrefetch | null = null
  let index = Math.floor(pos / bs)
  let tail = false
  const fail = (stream: Readable, err: unknown): void => {
    stream.destroy(err instanceof Error ? err : new Error(String(err)))
  }
  const readTail = (stream: Readable, f: NfsFile, want: number): void => {
    f.read(want, pos).then(
      buf => {
        if (buf.length === 0) {
          stream.push(null)
          return
        }
        pos += buf.length
        stream.push(buf)
      },
      (err: unknown) => {
        fail(stream, err)
      },
    )
  }
  return new Readable({
    highWaterMark: opts.highWaterMark ?? bs,
    construct(cb) {
      settle(
        data.open(path, 'r', undefined, via).then(f => {
          file = f
        }),
        cb,
      )
    },
    read(size) {
      const f = file
      const want = Math.min(size, stop - pos)
      if (f === null || want <= 0) {
        this.push(null)
        return
      }
      if (!tail && opts.highWaterMark === undefined) {
        blocks ??= new BlockPrefetch(f, index, Math.ceil(Math.min(stop, f.localSize) / bs), data.opts.readaheadBlocks)
        const block = blocks.take()
        if (block !== null) {
          const at = index++
          block.then(
            buf => {
              const from = pos - at * bs
              const to = Math.min(buf.length, stop - at * bs)
              if (to <= from) {
                // Shorter than the size said (truncated meanwhile): the rest goes the careful way.
                blocks?.stop()
                tail = true
                readTail(this, f, want)
                return
              }
              pos += to - from
              this.push(from === 0 && to === buf.length ? buf : buf.subarray(from, to))
            },
            (err: unknown) => {
              fail(this, err)
            },
          )
          return
        }
        // Past the size known at the start: what follows (a file that grew) is read as it comes.
        tail = true
      }
      readTail(this, f, want)
    },
    destroy(err, cb) {
      if (file === null) {
        cb(err)
        return
      }
      file.close().then(
        () => {
          cb(err)
        },
        (e: unknown) => {
          cb(err ?? (e instanceof Error ? e : new Error(String(e))))
        },
      )
    },
  })
}

/** via: the client (or view) whose identity opens and writes (default the mount's). */
export function createWriteStream(data: FileData, path: string, opts: WriteStreamOptions = {}, via: FileClient = data.client): Writable {
  let file: NfsFile | null = null
  let closed = false
  const wopts = { transfer: opts.transfer === true }
  const open = (): NfsFile => {
    if (file === null) throw new Error('write stream used before open')
    return file
  }
  return new Writable({
    construct(cb) {
      settle(
        data.open(path, opts.flags ?? 'w', opts.mode, via).then(f => {
          file = f
        }),
        cb,
      )
    },
    write(chunk: Buffer, _enc, cb) {
      settle(open().write(chunk, undefined, wopts), cb)
    },
    writev(chunks, cb) {
      const f = open()
      settle(
        (async () => {
          for (const c of chunks) await f.write(c.chunk as Buffer, undefined, wopts)
        })(),
        cb,
      )
    },
    final(cb) {
      closed = true
      settle(open().close(), cb)
    },
    destroy(err, cb) {
      if (file === null || closed) {
        cb(err)
        return
      }
      closed = true
      file.close().then(
        () => {
          cb(err)
        },
        (e: unknown) => {
          cb(err ?? (e instanceof Error ? e : new Error(String(e))))
        },
      )
    },
  })
}
