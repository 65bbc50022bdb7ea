/*
 * The barrier of a LISTEN connection (SqlDb.listen's Feed.barrier), and a
 * test hook that makes that connection slow.
 *
 * Why a round trip on the LISTEN connection closes the notification window:
 * a writer's transaction queues its NOTIFY before it commits and signals the
 * listening backends while committing, before its client gets the reply.
 * PostgreSQL sends a listening session its pending notifications while it
 * is idle, and at the latest just before the ReadyForQuery that ends a
 * command (docs: protocol "Asynchronous Operations": NotificationResponse
 * "might occur just before ReadyForQuery"; postgres.c processes a pending
 * notify interrupt right before sending ReadyForQuery). The connection is
 * one ordered byte stream and pg emits 'notification' as it parses, so when
 * a `SELECT 1` sent on it after some instant has been answered, every
 * notification committed before that instant has been handed to onPayload.
 *
 * Coalescing: one round is in flight at most, plus one queued. A caller that
 * arrives while a round is in flight waits for the queued one, never the
 * current one (the current one may have been sent before the caller's
 * request arrived, so it proves nothing about commits since). Every caller
 * arriving during one round shares the next, so under load it costs one
 * round trip per batch of requests, not one per request.
 */
import type { Socket } from 'node:net'

export class BarrierRounds {
  #current: Promise<boolean> | undefined
  #queued: Promise<boolean> | undefined
  readonly #roundTrip: () => Promise<boolean>

  /** `roundTrip`: one query on the LISTEN connection, false if it could not be made. */
  constructor(roundTrip: () => Promise<boolean>) {
    this.#roundTrip = roundTrip
  }

  /** Resolves once a round begun after this call has completed (true) or failed (false). */
  wait(): Promise<boolean> {
    const current = this.#current
    if (current === undefined) return this.#start()
    this.#queued ??= current.then(() => {
      this.#queued = undefined
      return this.#start()
    })
    return this.#queued
  }

  #start(): Promise<boolean> {
    const p = this.#roundTrip().catch(() => false)
    this.#current = p
    // Registered before any queued continuation on `p`, so it runs first: the queued round
    // then finds no round in flight and becomes the current one.
    void p.then(() => { if (this.#current === p) this.#current = undefined })
    return p
  }
}

/**
 * Tests: make everything `socket` receives reach its readers `holdMs()` later, in order (a
 * slow notification path: the NOTIFY is on its way but not yet read). With 0 and nothing
 * held, data passes straight through.
 */
export function holdReads(socket: Socket, holdMs: () => number): void {
  const readers = socket.listeners('data') as ((chunk: Buffer) => void)[]
  socket.removeAllListeners('data')
  const held: { due: number; chunk: Buffer }[] = []
  let timer: NodeJS.Timeout | undefined
  const pass = (chunk: Buffer): void => { for (const r of readers) r(chunk) }
  const drain = (): void => {
    timer = undefined
    const now = performance.now()
    while (held.length > 0 && (held[0]?.due ?? 0) <= now) pass(held.shift()?.chunk ?? Buffer.alloc(0))
    const next = held[0]
    if (next !== undefined) timer = setTimeout(drain, Math.max(0, next.due - now))
  }
  socket.on('data', (chunk: Buffer) => {
    const ms = holdMs()
    if (ms <= 0 && held.length === 0) {
      pass(chunk)
      return
    }
    const last = held[held.length - 1]?.due ?? 0
    held.push({ chunk, due: Math.max(performance.now() + ms, last) })
    timer ??= setTimeout(drain, ms)
  })
}
