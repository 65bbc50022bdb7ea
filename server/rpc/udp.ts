/*
 * RPC over UDP (RFC 5531 §5; specs/README.md §6): one message per datagram,
 * no record mark; the reply goes from the receiving socket to the sender's
 * address and port. Lost or repeated datagrams are the client's retransmission
 * and the duplicate request cache's business; so are the calls this endpoint
 * drops when the server-wide in-flight cap is reached (UDP has no backpressure).
 */
import type { RemoteInfo, Socket } from 'node:dgram'
import type { Logger } from '../logger.ts'
import type { InFlightBudget } from './budget.ts'
import { dispatch } from './dispatch.ts'
import type { DispatchEnv } from './dispatch.ts'
import { peerOf } from './peer.ts'

export class RpcUdpEndpoint {
  readonly socket: Socket
  private readonly env: DispatchEnv
  private readonly maxDatagram: number
  private readonly log: Logger
  private readonly signal: AbortSignal
  private readonly budget: InFlightBudget

  constructor(socket: Socket, env: DispatchEnv, maxDatagram: number, log: Logger, signal: AbortSignal, budget: InFlightBudget) {
    this.socket = socket
    this.budget = budget
    this.env = env
    this.maxDatagram = maxDatagram
    this.log = log.child({ transport: 'udp' })
    this.signal = signal
    socket.on('message', this.onMessage)
    socket.on('error', (err: Error) => {
      this.log.warn({ err }, 'udp socket error')
    })
  }

  private readonly onMessage = (msg: Buffer, rinfo: RemoteInfo): void => {
    this.env.stats.bytesIn += msg.length
    if (msg.length > this.maxDatagram) {
      this.env.stats.udpDatagramsDropped++
      return
    }
    if (!this.budget.tryTake()) {
      this.env.stats.udpOverloadDrops++
      return
    }
    const peer = peerOf(rinfo.address, rinfo.port, rinfo.family)
    dispatch(this.env, msg, { peer, transport: 'udp', signal: this.signal, log: this.log }).then(
      reply => {
        this.budget.give()
        if (reply === null || this.signal.aborted) return
        let bytes = 0
        for (const c of reply) bytes += c.length
        this.env.stats.bytesOut += bytes
        // The list form sends the chunks as one datagram without joining them first.
        this.socket.send(reply, rinfo.port, rinfo.address, (err: Error | null) => {
          if (err) this.log.debug({ err }, 'udp send failed')
        })
      },
      (err: unknown) => {
        this.budget.give()
        this.log.error({ err }, 'dispatch failed')
      },
    )
  }
}
