/*
 * The client side of the admin channel (tsnfs volume ... online, and the tests): one request,
 * its progress lines, its reply.
 */
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { defaultStateDir } from '../state.ts'
import type { AdminReply, AdminRequest } from './protocol.ts'
import type { OperationProgress } from '../volume-registry.ts'

export const ADMIN_SOCKET_NAME = 'admin.sock'

/** Where `tsnfs serve` with state directory `stateDir` listens unless told otherwise. */
export function defaultAdminPath(stateDir: string = defaultStateDir()): string {
  return join(stateDir, ADMIN_SOCKET_NAME)
}

/** A reply line is ours, but still bounded: a status of 64 members is a few KiB. */
const MAX_REPLY_LINE = 16 * 1024 * 1024

/** No server listens on the socket (absent, or its server died): distinct from a server's refusal. */
export class AdminUnreachable extends Error {
  readonly code: string
  constructor(path: string, cause: unknown) {
    const code = typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string' ? cause.code : 'EIO'
    super(`no server answers on ${path} (${code})`, { cause })
    this.name = 'AdminUnreachable'
    this.code = code
  }
}

/** Sends `request` on the socket at `path`; progress lines go to `onProgress`; resolves with the reply. */
export function adminRequest(path: string, request: AdminRequest, onProgress: (p: OperationProgress) => void = () => undefined): Promise<AdminReply> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    let connected = false
    let pending = ''
    let done = false
    const finish = (err: Error | null, reply?: AdminReply): void => {
      if (done) return
      done = true
      socket.destroy()
      if (err !== null) reject(err)
      else if (reply !== undefined) resolve(reply)
    }
    socket.setEncoding('utf8')
    socket.once('connect', () => {
      connected = true
      socket.write(`${JSON.stringify(request)}\n`)
    })
    socket.on('error', (err) => {
      finish(connected ? err : new AdminUnreachable(path, err))
    })
    socket.on('close', () => {
      finish(new Error(`the server at ${path} closed the connection without a reply`))
    })
    socket.on('data', (chunk: string) => {
      pending += chunk
      if (pending.length > MAX_REPLY_LINE) {
        finish(new Error(`a reply line from ${path} is longer than ${MAX_REPLY_LINE} bytes`))
        return
      }
      for (let nl = pending.indexOf('\n'); nl >= 0 && !done; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        let msg: unknown
        try {
          msg = JSON.parse(line)
        } catch {
          msg = null
        }
        if (typeof msg !== 'object' || msg === null) finish(new Error(`not a reply from ${path}: ${line.slice(0, 200)}`))
        else if ('progress' in msg) onProgress(msg.progress as OperationProgress)
        else if ('ok' in msg) finish(null, msg as AdminReply)
      }
    })
  })
}
