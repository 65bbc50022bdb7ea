/*
 * The manager's end of the control channel. A socket left by a dead manager is replaced; one a
 * live manager answers on is refused (DMA_BUSY): one manager per state directory.
 */
import { chmod, lstat, unlink } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { DmaError, isErrno } from '../errors.ts'
import type { DmaService } from '../jobs/service.ts'
import { parseExport } from '../schedule/export-spec.ts'
import { parseLevel } from '../schedule/levels.ts'
import { verifyAndRecord } from '../jobs/verify.ts'
import type { ControlReply, ControlRequest } from './protocol.ts'
import { controlPath, errorReply, MAX_LINE, parseControlRequest } from './protocol.ts'

export interface ControlServer {
  readonly path: string
  close(): Promise<void>
}

const MAX_SOCKET_PATH = 107

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

async function claim(path: string): Promise<void> {
  try {
    const st = await lstat(path)
    if (!st.isSocket()) throw new DmaError('DMA_BUSY', `${path}: a file that is not a socket is in the way`)
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return
    throw err
  }
  if (await answers(path)) throw new DmaError('DMA_BUSY', `${path}: another backup manager runs on this state directory`)
  await unlink(path)
}

async function handle(service: DmaService, req: ControlRequest): Promise<ControlReply> {
  const id = (): string => {
    if (req.id === undefined) throw new DmaError('DMA_CONTROL', `${req.op}: needs an id`)
    return req.id
  }
  switch (req.op) {
    case 'ping':
      return { ok: true, pid: process.pid }
    case 'run': {
      if (req.export === undefined || req.pool === undefined || req.level === undefined) throw new DmaError('DMA_CONTROL', 'run: needs export, pool and level')
      const level = parseLevel(String(req.level))
      // The CLI sends absolute paths: the manager's cwd is not the caller's.
      const job = await service.start({ name: 'manual', spec: parseExport(req.export, '/'), pool: req.pool, level, ...(req.exclude === undefined ? {} : { exclude: req.exclude }), ...(req.tape === undefined ? {} : { tapeAgent: req.tape }), ...(req.verify === undefined ? {} : { verify: req.verify }), ...(req.compress === undefined ? {} : { compress: req.compress }) })
      return { ok: true, job }
    }
    case 'list':
      return { ok: true, jobs: await service.list(), scheduled: service.scheduled() }
    case 'get':
      return { ok: true, job: await service.get(id()) }
    case 'abort':
      return { ok: true, job: await service.abort(id()) }
    case 'continue':
      return { ok: true, job: await service.continue(id()) }
    case 'wait':
      return { ok: true, job: await service.wait(id()) }
    case 'verify':
      return { ok: true, report: await verifyAndRecord(service.stateDir, { ...(req.id === undefined ? {} : { job: req.id }), ...(req.label === undefined ? {} : { label: req.label }), ...(req.pool === undefined ? {} : { pool: req.pool }) }) }
  }
}

/** One client's connection: `idle()` resolves once the requests read so far are answered. */
interface Connection {
  socket: Socket
  idle: () => Promise<void>
}

function serveConnection(socket: Socket, service: DmaService): Connection {
  let pending = ''
  let queue = Promise.resolve()
  socket.setEncoding('utf8')
  socket.on('error', () => undefined)
  socket.on('data', (chunk: string) => {
    pending += chunk
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl)
      pending = pending.slice(nl + 1)
      if (line.trim() === '') continue
      queue = queue.then(async () => {
        let reply: ControlReply
        try {
          reply = await handle(service, parseControlRequest(line))
        } catch (err) {
          reply = errorReply(err)
        }
        if (socket.writable) socket.write(`${JSON.stringify(reply)}\n`)
      })
    }
    // The rest of an overlong line cannot be told from the next request: answer and hang up.
    if (pending.length > MAX_LINE) {
      pending = ''
      socket.removeAllListeners('data')
      queue = queue.then(() => {
        socket.end(`${JSON.stringify({ ok: false, code: 'DMA_CONTROL', message: `a request line is at most ${MAX_LINE} bytes` })}\n`)
      })
    }
  })
  return { socket, idle: () => queue }
}

/** How long close() lets requests in progress finish (an abort answered as its job ends). */
const CLOSE_GRACE_MS = 2000

/** Listens on STATE/backup.sock for `service` until close(). */
export async function startControlServer(service: DmaService): Promise<ControlServer> {
  const path = controlPath(service.stateDir)
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new DmaError('DMA_CONTROL', `${path} is longer than a socket path may be`)
  await claim(path)
  const connections = new Set<Connection>()
  const server: Server = createServer((socket) => {
    const c = serveConnection(socket, service)
    connections.add(c)
    socket.on('close', () => connections.delete(c))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
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
  return {
    path,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => { resolve() }))
      // Replies being made are sent (the abort that ended a foreground run is answered), then each connection ends.
      const grace = new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())
      await Promise.race([Promise.all([...connections].map((c) => c.idle())), grace])
      for (const c of connections) c.socket.destroySoon()
      await Promise.race([closed, grace])
      await unlink(path).catch(() => undefined)
    },
  }
}
