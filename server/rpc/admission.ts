/*
 * Admission of TCP connections: a cap in total and one per client address.
 * A refused connection is accepted and destroyed at once (the kernel already
 * completed the handshake), counted, and logged at most once per address per
 * interval, so a client retrying in a loop cannot flood the log.
 */
import type { Logger } from '../logger.ts'

export interface AdmissionLimits {
  maxConnections: number
  maxConnectionsPerClient: number
}

/** How often a refusal of the same address is logged. */
const LOG_INTERVAL_MS = 60_000
/** Beyond this many remembered addresses, forget the ones logged longer ago than the interval. */
const LOG_MEMORY = 1024

export type Refusal = 'total' | 'per-client'

export class ConnectionAdmission {
  private readonly limits: AdmissionLimits
  private readonly log: Logger
  private readonly perAddress = new Map<string, number>()
  private readonly lastLogged = new Map<string, number>()
  private total = 0

  constructor(limits: AdmissionLimits, log: Logger) {
    this.limits = limits
    this.log = log
  }

  /** Take a place for a connection from `address`, or say why there is none. */
  admit(address: string): Refusal | null {
    const mine = this.perAddress.get(address) ?? 0
    const why: Refusal | null = this.total >= this.limits.maxConnections ? 'total' : mine >= this.limits.maxConnectionsPerClient ? 'per-client' : null
    if (why !== null) {
      this.logRefusal(address, why, mine)
      return why
    }
    this.total++
    this.perAddress.set(address, mine + 1)
    return null
  }

  release(address: string): void {
    this.total--
    const left = (this.perAddress.get(address) ?? 1) - 1
    if (left <= 0) this.perAddress.delete(address)
    else this.perAddress.set(address, left)
  }

  private logRefusal(address: string, why: Refusal, mine: number): void {
    const now = Date.now()
    const last = this.lastLogged.get(address)
    if (last !== undefined && now - last < LOG_INTERVAL_MS) return
    if (this.lastLogged.size >= LOG_MEMORY) {
      for (const [a, at] of this.lastLogged) if (now - at >= LOG_INTERVAL_MS) this.lastLogged.delete(a)
      // Still full: this many addresses refused within one interval is a flood; the counter tells it.
      if (this.lastLogged.size >= LOG_MEMORY) return
    }
    this.lastLogged.set(address, now)
    const limit = why === 'total' ? this.limits.maxConnections : this.limits.maxConnectionsPerClient
    this.log.warn({ address, why, limit, open: why === 'total' ? this.total : mine }, 'connection refused: too many connections')
  }
}
