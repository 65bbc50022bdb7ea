/*
 * The CLI's end of the control channel: one request, one reply. No manager answering is
 * `null` (the CLI then works on the state directory itself), distinct from a manager's refusal.
 */
import { createConnection } from 'node:net'
import { DmaError } from '../errors.ts'
import type { ControlReply, ControlRequest } from './protocol.ts'
import { controlPath, MAX_REPLY_LINE } from './protocol.ts'

/** Sends `req` to the manager of `stateDir`; null when none answers. */
export function controlRequest(stateDir: string, req: ControlRequest): Promise<ControlReply | null> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(controlPath(stateDir))
    let connected = false
    let pending = ''
    let done = false
    const finish = (err: Error | null, reply: ControlReply | null): void => {
      if (done) return
      done = true
      socket.destroy()
      if (err === null) resolve(reply)
      else reject(err)
    }
    socket.setEncoding('utf8')
    socket.on('connect', () => {
      connected = true
      socket.write(`${JSON.stringify(req)}\n`)
    })
    socket.on('error', (err) => {
      finish(connected ? err : null, null)
    })
    socket.on('data', (chunk: string) => {
      pending += chunk
      const nl = pending.indexOf('\n')
      if (nl < 0) {
        if (pending.length > MAX_REPLY_LINE) finish(new DmaError('DMA_CONTROL', 'a reply line over the limit'), null)
        return
      }
      try {
        finish(null, JSON.parse(pending.slice(0, nl)) as ControlReply)
      } catch {
        finish(new DmaError('DMA_CONTROL', 'a reply that is not JSON'), null)
      }
    })
    socket.on('close', () => {
      finish(new DmaError('DMA_CONTROL', 'the manager closed the connection without a reply'), null)
    })
  })
}
