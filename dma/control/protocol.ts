/*
 * The control channel between `tsnfs backup` and a running manager (the server's scheduler, or
 * a foreground `tsnfs backup run`): a Unix socket STATE/backup.sock of mode 0600, one JSON object
 * per line each way. A request is {"op":"list"} (ops below); the reply {"ok":true,...} or
 * {"ok":false,"code":"DMA_...","message":"..."}. Lines are capped (a longer one closes the connection).
 */
import { join } from 'node:path'
import { DmaError } from '../errors.ts'

export const CONTROL_SOCKET = 'backup.sock'
export const MAX_LINE = 64 * 1024
/** Replies carry job lists: bounded, but larger. */
export const MAX_REPLY_LINE = 16 * 1024 * 1024

export type ControlOp = 'ping' | 'run' | 'list' | 'get' | 'abort' | 'continue' | 'wait' | 'verify'
export const OPS: ReadonlySet<string> = new Set<ControlOp>(['ping', 'run', 'list', 'get', 'abort', 'continue', 'wait', 'verify'])

export interface ControlRequest {
  op: ControlOp
  id?: string
  export?: string
  pool?: string
  level?: number
  exclude?: string[]
  tape?: string
  /** verify: a tape label (the newest backup on it) instead of a job id. */
  label?: string
  /** run: verify the backup once it is done (read or restore). */
  verify?: 'read' | 'restore'
  /** run: the data agent compresses the stream. */
  compress?: 'gzip' | 'brotli'
}

export type ControlReply = { ok: true; [field: string]: unknown } | { ok: false; code: string; message: string }

export function controlPath(stateDir: string): string {
  return join(stateDir, CONTROL_SOCKET)
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string')
}

/** A request line as a ControlRequest, or DMA_CONTROL saying what is wrong. */
export function parseControlRequest(line: string): ControlRequest {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    throw new DmaError('DMA_CONTROL', 'a request is one JSON object per line')
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new DmaError('DMA_CONTROL', 'a request is a JSON object')
  const o = v as Record<string, unknown>
  if (typeof o.op !== 'string' || !OPS.has(o.op)) throw new DmaError('DMA_CONTROL', `no such op: ${JSON.stringify(o.op)}`)
  const req: ControlRequest = { op: o.op as ControlOp }
  for (const k of ['id', 'export', 'pool', 'tape', 'label'] as const) {
    const x = o[k]
    if (x === undefined) continue
    if (typeof x !== 'string') throw new DmaError('DMA_CONTROL', `${k}: a string`)
    req[k] = x
  }
  if (o.level !== undefined) {
    if (typeof o.level !== 'number' || !Number.isInteger(o.level)) throw new DmaError('DMA_CONTROL', 'level: an integer')
    req.level = o.level
  }
  if (o.verify !== undefined) {
    if (o.verify !== 'read' && o.verify !== 'restore') throw new DmaError('DMA_CONTROL', 'verify: read or restore')
    req.verify = o.verify
  }
  if (o.compress !== undefined) {
    if (o.compress !== 'gzip' && o.compress !== 'brotli') throw new DmaError('DMA_CONTROL', 'compress: gzip or brotli')
    req.compress = o.compress
  }
  if (o.exclude !== undefined) {
    if (!isStringArray(o.exclude)) throw new DmaError('DMA_CONTROL', 'exclude: a list of strings')
    req.exclude = o.exclude
  }
  return req
}

export function errorReply(err: unknown): ControlReply {
  if (err instanceof DmaError) return { ok: false, code: err.code, message: err.message }
  return { ok: false, code: 'DMA_FAILED', message: err instanceof Error ? err.message : String(err) }
}
