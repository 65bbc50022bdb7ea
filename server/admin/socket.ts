/*
 * The admin channel's listener: a Unix domain socket (mode 0600, in the state directory by
 * default, so only the server's user talks to it), one JSON object per line each way
 * (common/line-socket.ts). A socket file left by a server that died is replaced; one a live
 * server answers on is refused. Each connection's request lines are answered in order, one at a
 * time; a long command sends progress lines before its reply.
 */
import { listenLineSocket } from '../../common/line-socket.ts'
import type { Logger } from '../logger.ts'
import type { AdminCommands } from './commands.ts'
import type { AdminReply } from './protocol.ts'
import { AdminError, errorReply, MAX_REQUEST_LINE, parseRequest } from './protocol.ts'

export interface AdminSocket {
  readonly path: string
  close(): Promise<void>
}

/** Listens on `path` and answers with `commands` until close(). */
export async function startAdminSocket(path: string, commands: AdminCommands, log: Logger): Promise<AdminSocket> {
  let socket
  try {
    socket = await listenLineSocket(path, {
      maxLine: MAX_REQUEST_LINE,
      tooLong: () => ({ ok: false, code: 'ADMIN_TOO_LONG', message: `a request line is at most ${MAX_REQUEST_LINE} bytes` }),
      async answer(line, conn): Promise<AdminReply> {
        try {
          const req = parseRequest(line)
          const handler = commands.get(req.command)
          const result = await handler(req, { progress: (p) => { conn.send({ progress: p }) }, signal: conn.signal })
          return { ...result, ok: true }
        } catch (err) {
          if (!(err instanceof AdminError)) log.warn({ err }, 'admin command failed')
          return errorReply(err)
        }
      },
      refuse: (p, why) =>
        new Error(why === 'not a socket' ? `admin socket ${p}: a file that is not a socket is in the way` : `admin socket ${p}: another server answers on it (give this one its own --admin PATH or --state-dir)`),
      unserializable: (err) => errorReply(err),
      onError: (err) => {
        log.warn({ err }, 'admin socket error')
      },
    })
  } catch (err) {
    if (err instanceof Error && err.message.startsWith(`admin socket ${path}:`)) throw err
    throw new Error(`admin socket ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  log.info({ path }, 'admin socket listening')
  return socket
}
