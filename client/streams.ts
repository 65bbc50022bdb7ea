/*
 * Node streams over NfsFile. The read stream reads positioned chunks (so the
 * file's read-ahead sees a sequential reader); the write stream's 'finish'
 * comes after close, that is after the COMMIT, so a finished stream is on
 * the server's stable storage. Errors (a deferred write error included) are
 * emitted as 'error'.
 */
import { Readable, Writable } from 'node:stream'
import type { NfsFile } from './file.ts'
import type { FileClient, FileData } from './file-data.ts'

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
  return new Readable({
    highWaterMark: opts.highWaterMark ?? data.opts.blockSize,
    construct(cb) {
      settle(
        data.open(path, 'r', undefined, via).then(f => {
          file = f
        }),
        cb,
      )
    },
    read(size) {
      const want = Math.min(size, stop - pos)
      if (file === null || want <= 0) {
        this.push(null)
        return
      }
      file.read(want, pos).then(
        buf => {
          if (buf.length === 0) {
            this.push(null)
            return
          }
          pos += buf.length
          this.push(buf)
        },
        (err: unknown) => {
          this.destroy(err instanceof Error ? err : new Error(String(err)))
        },
      )
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
      settle(open().write(chunk), cb)
    },
    writev(chunks, cb) {
      const f = open()
      settle(
        (async () => {
          for (const c of chunks) await f.write(c.chunk as Buffer)
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
