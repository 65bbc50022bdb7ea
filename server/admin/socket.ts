/*
 * The admin channel's listener: a Unix domain socket (mode 0600, in the state directory by
 * default, so only the server's user talks to it). A socket file left by a server that died is
 * replaced; one a live server answers on is refused. Each connection's request lines are
 * answered in order, one at a time.
 */
import { createConnection, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { chmod, lstat, unlink } from 'node:fs/promises'
import type { Logger } from '../logger.ts'
import type { AdminCommands } from './commands.ts'
import type { AdminReply } from './protocol.ts'
import { AdminError, errorReply, MAX_REQUEST_LINE, parseRequest } from './protocol.ts'

export interface AdminSocket {
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

/** Clears the way for a new socket at `path`: nothing there, or a dead server's socket (removed). */
async function claim(path: string): Promise<void> {
  let st
  try {
    st = await lstat(path)
  } catch (err) {
    if (isCode(err, 'ENOENT')) return
    throw err
  }
  if (!st.isSocket()) throw new Error(`admin socket ${path}: a file that is not a socket is in the way`)
  if (await answers(path)) throw new Error(`admin socket ${path}: another server answers on it (give this one its own --admin PATH or --state-dir)`)
  await unlink(path)
}

function send(socket: Socket, line: object): void {
  if (!socket.writable) return
  let text: string
  try {
    text = JSON.stringify(line)
  } catch (err) {
    text = JSON.stringify(errorReply(err))
  }
  socket.write(`${text}\n`)
}

async function answer(line: string, commands: AdminCommands, socket: Socket, signal: AbortSignal, log: Logger): Promise<void> {
  let reply: AdminReply
  try {
    const req = parseRequest(line)
    const handler = commands.get(req.command)
    const result = await handler(req, { progress: (p) => { send(socket, { progress: p }) }, signal })
    reply = { ...result, ok: true }
  } catch (err) {
    reply = errorReply(err)
    if (!(err instanceof AdminError)) log.warn({ err }, 'admin command failed')
  }
  send(socket, reply)
}

/** Requests queued on one connection before its reading pauses: a client pipelining without end holds no more. */
const MAX_QUEUED = 16

function serveConnection(socket: Socket, commands: AdminCommands, log: Logger): void {
  const gone = new AbortController()
  let pending = Buffer.alloc(0)
  let queue = Promise.resolve()
  let queued = 0
  let refused = false
  socket.on('error', () => undefined)
  socket.on('close', () => {
    gone.abort()
  })
  socket.on('data', (chunk: Buffer) => {
    if (refused) return
    pending = Buffer.concat([pending, chunk])
    for (let nl = pending.indexOf(0x0a); nl >= 0; nl = pending.indexOf(0x0a)) {
      const line = pending.subarray(0, nl).toString('utf8').replace(/\r$/, '')
      pending = pending.subarray(nl + 1)
      if (nl > MAX_REQUEST_LINE) {
        tooLong()
        return
      }
      if (line.trim() === '') continue
      queued++
      if (queued >= MAX_QUEUED) socket.pause()
      queue = queue.then(() => answer(line, commands, socket, gone.signal, log)).finally(() => {
        queued--
        if (queued < MAX_QUEUED && !refused) socket.resume()
      })
    }
    if (pending.length > MAX_REQUEST_LINE) tooLong()
  })
  // The rest of an overlong line cannot be told from the next request: answer and hang up.
  const tooLong = (): void => {
    refused = true
    pending = Buffer.alloc(0)
    queue = queue.then(() => {
      send(socket, { ok: false, code: 'ADMIN_TOO_LONG', message: `a request line is at most ${MAX_REQUEST_LINE} bytes` })
      socket.end()
    })
  }
}

/** Listens on `path` and answers with `commands` until close(). */
export async function startAdminSocket(path: string, commands: AdminCommands, log: Logger): Promise<AdminSocket> {
  await claim(path)
  const connections = new Set<Socket>()
  const server: Server = createServer((socket) => {
    connections.add(socket)
    socket.on('close', () => connections.delete(socket))
    serveConnection(socket, commands, log)
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
  }).catch((err: unknown) => {
    throw new Error(`admin socket ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  })
  await chmod(path, 0o600)
  server.on('error', (err) => {
    log.warn({ err }, 'admin socket error')
  })
  log.info({ path }, 'admin socket listening')
  return {
    path,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => { resolve() }))
      for (const c of connections) c.destroy()
      await closed
      await unlink(path).catch(() => undefined)
    },
  }
}
