/*
 * The manager's end of the control channel (common/line-socket.ts). A socket left by a dead
 * manager is replaced; one a live manager answers on is refused (DMA_BUSY): one manager per state
 * directory.
 */
import { listenLineSocket } from '../../common/line-socket.ts'
import { DmaError } from '../errors.ts'
import type { DmaService } from '../jobs/service.ts'
import { verifyAndRecord } from '../jobs/verify.ts'
import { parseExport } from '../schedule/export-spec.ts'
import { parseLevel } from '../schedule/levels.ts'
import type { ControlReply, ControlRequest } from './protocol.ts'
import { controlPath, errorReply, MAX_LINE, parseControlRequest } from './protocol.ts'

export interface ControlServer {
  readonly path: string
  close(): Promise<void>
}

const MAX_SOCKET_PATH = 107
/** How long close() lets requests in progress finish (an abort answered as its job ends). */
const CLOSE_GRACE_MS = 2000

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
      return { ok: true, report: await verifyAndRecord(service.stateDir, { ...(req.id === undefined ? {} : { job: req.id }), ...(req.label === undefined ? {} : { label: req.label }), ...(req.pool === undefined ? {} : { pool: req.pool }), ...(req.tape === undefined ? {} : { tapeAgent: req.tape }) }) }
  }
}

/** Listens on STATE/backup.sock for `service` until close(). */
export async function startControlServer(service: DmaService): Promise<ControlServer> {
  const path = controlPath(service.stateDir)
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new DmaError('DMA_CONTROL', `${path} is longer than a socket path may be`)
  return listenLineSocket(path, {
    maxLine: MAX_LINE,
    tooLong: () => ({ ok: false, code: 'DMA_CONTROL', message: `a request line is at most ${MAX_LINE} bytes` }),
    async answer(line): Promise<ControlReply> {
      try {
        return await handle(service, parseControlRequest(line))
      } catch (err) {
        return errorReply(err)
      }
    },
    refuse: (p, why) => new DmaError('DMA_BUSY', why === 'not a socket' ? `${p}: a file that is not a socket is in the way` : `${p}: another backup manager runs on this state directory`),
    unserializable: (err) => errorReply(err),
    closeGraceMs: CLOSE_GRACE_MS,
  })
}
