/*
 * Reading an accepted connection into buffers we choose (net.Socket's
 * `onread`), so that a large record (a 1 MiB WRITE) is received by the
 * kernel straight into its pooled record buffer. Without it Node allocates a
 * fresh 64 KiB buffer for every read: external memory that, under a stream
 * of WRITEs, set off a mark-compact GC every ~40 ms, and a copy of every
 * byte to reassemble the record.
 *
 * Node takes `onread` only in the Socket constructor, and the sockets a
 * server accepts are made for us. So the listener accepts paused
 * (pauseOnConnect) and the accepted socket's handle is moved to a new Socket
 * built with `onread`, together with the server's connection accounting (so
 * server.close() still waits for it). That touches two private fields,
 * `_handle` and `_server`, of Node's net module (stable since Node 12; this
 * project runs Node 20). Where they are missing, the socket is left as it is
 * and read through 'data' events.
 */
import { Socket } from 'node:net'

export interface DirectReader {
  /** The buffer the next read goes into; called before every read. */
  buffer: () => Buffer
  /** `n` bytes were read into `buf` (the last buffer handed out). */
  onRead: (n: number, buf: Buffer) => void
}

/** What the move needs of an accepted socket; all private to Node's net module. */
interface Accepted {
  _handle?: unknown
  _server?: unknown
  server?: unknown
}

/** A Socket over `socket`'s connection that reads through `reader`, or null (then use `socket` as it is). */
export function withDirectReads(socket: Socket, reader: DirectReader): Socket | null {
  const old = socket as unknown as Accepted
  const handle = old._handle
  if (typeof handle !== 'object' || handle === null || !socket.isPaused()) return null
  const next = new Socket({
    // @ts-expect-error -- `handle` is the accepted connection's own libuv handle (not in the public options).
    handle,
    allowHalfOpen: socket.allowHalfOpen,
    readable: true,
    writable: true,
    onread: {
      buffer: reader.buffer,
      callback: (n: number, buf: Uint8Array): boolean => {
        reader.onRead(n, buf as Buffer)
        // Flow control is the connection's own pause()/resume().
        return true
      },
    },
  })
  const moved = next as unknown as Accepted
  moved._server = old._server
  moved.server = old.server
  // The old object must never close the handle or count the connection again.
  old._server = null
  old._handle = null
  return next
}
