/*
 * A control channel's listener: a Unix domain socket (mode 0600 from birth, so only the owner's
 * user talks to it) carrying one JSON object per line each way. The server's admin socket and
 * the backup manager's socket are both this. A socket file a dead process left is replaced; one
 * a live process answers on is refused. Each connection's request lines are answered in order, one
 * at a time; a line over the cap is answered (tooLong) and the connection ended, since the rest
 * of it cannot be told from the next request.
 */
import { chmod, lstat, unlink } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'

export interface LineConnection {
  /** Sends one object as a line; dropped once the peer is gone. */
  send(obj: object): void
  /** Aborted when the connection closes (a long request may stop early). */
  readonly signal: AbortSignal
}

export interface LineSocketOptions {
  /** Bytes of one request line at most (the newline excluded). */
  maxLine: number
  /** The reply to a line over maxLine, sent before the connection ends. */
  tooLong(): object
  /** Answers one non-blank request line; what it resolves with is sent back. It must not throw. */
  answer(line: string, conn: LineConnection): Promise<object>
  /** The error for something in the way at `path`: a file that is not a socket, or a socket a live process answers on. */
  refuse(path: string, why: 'not a socket' | 'answered'): Error
  /** The reply sent when a reply cannot be made JSON. */
  unserializable(err: unknown): object
  /** Requests queued on one connection before its reading pauses (a client pipelining without end holds no more). */
  maxQueued?: number
  /** How long close() lets replies being made go out before it ends the connections (0: at once). */
  closeGraceMs?: number
  /** Errors of the listening socket after it is up. */
  onError?(err: Error): void
}

export interface LineSocket {
  readonly path: string
  close(): Promise<void>
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code
}

/** Whether something accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => {
      resolve(false)
    })
  })
}

/** Clears the way for a new socket at `path`: nothing there, or a dead process's socket (removed). */
async function claim(path: string, o: LineSocketOptions): Promise<void> {
  let st
  try {
    st = await lstat(path)
  } catch (err) {
    if (isCode(err, 'ENOENT')) return
    throw err
  }
  if (!st.isSocket()) throw o.refuse(path, 'not a socket')
  if (await answers(path)) throw o.refuse(path, 'answered')
  await unlink(path)
}

interface Connection {
  socket: Socket
  /** Resolves once the requests read so far are answered. */
  idle(): Promise<void>
}

function serveConnection(socket: Socket, o: LineSocketOptions): Connection {
  const gone = new AbortController()
  const maxQueued = o.maxQueued ?? 16
  let pending = Buffer.alloc(0)
  let queue = Promise.resolve()
  let queued = 0
  let refused = false
  const conn: LineConnection = {
    send(obj: object): void {
      if (!socket.writable) return
      let text: string
      try {
        text = JSON.stringify(obj)
      } catch (err) {
        text = JSON.stringify(o.unserializable(err))
      }
      socket.write(`${text}\n`)
    },
    signal: gone.signal,
  }
  const tooLong = (): void => {
    refused = true
    pending = Buffer.alloc(0)
    queue = queue.then(() => {
      conn.send(o.tooLong())
      socket.end()
    })
  }
  socket.on('error', () => undefined)
  socket.on('close', () => {
    gone.abort()
  })
  socket.on('data', (chunk: Buffer) => {
    if (refused) return
    pending = Buffer.concat([pending, chunk])
    for (let nl = pending.indexOf(0x0a); nl >= 0; nl = pending.indexOf(0x0a)) {
      if (nl > o.maxLine) {
        tooLong()
        return
      }
      const line = pending.subarray(0, nl).toString('utf8').replace(/\r$/, '')
      pending = pending.subarray(nl + 1)
      if (line.trim() === '') continue
      queued++
      if (queued >= maxQueued) socket.pause()
      queue = queue
        .then(async () => {
          conn.send(await o.answer(line, conn))
        })
        .finally(() => {
          queued--
          if (queued < maxQueued && !refused) socket.resume()
        })
    }
    if (pending.length > o.maxLine) tooLong()
  })
  return { socket, idle: () => queue }
}

/** Listens on `path` until close(). */
export async function listenLineSocket(path: string, o: LineSocketOptions): Promise<LineSocket> {
  await claim(path, o)
  const connections = new Set<Connection>()
  const server: Server = createServer((socket) => {
    const c = serveConnection(socket, o)
    connections.add(c)
    socket.on('close', () => connections.delete(c))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // The socket is born 0600: the bind happens inside listen(), before any await.
    const mask = process.umask(0o177)
    try {
      server.listen(path, () => {
        server.off('error', reject)
        resolve()
      })
    } finally {
      process.umask(mask)
    }
  })
  await chmod(path, 0o600)
  server.on('error', (err) => o.onError?.(err))
  return {
    path,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => { resolve() }))
      const graceMs = o.closeGraceMs ?? 0
      if (graceMs > 0) {
        // Replies being made go out first (an abort that ends a foreground run is answered).
        const grace = new Promise((resolve) => setTimeout(resolve, graceMs).unref())
        await Promise.race([Promise.all([...connections].map((c) => c.idle())), grace])
        for (const c of connections) c.socket.destroySoon()
        await Promise.race([closed, grace])
      } else {
        for (const c of connections) c.socket.destroy()
        await closed
      }
      await unlink(path).catch(() => undefined)
    },
  }
}
