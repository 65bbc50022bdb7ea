/*
 * A backup's stream read back through an NDMP tape agent, for verify (issue 16 §7), when the
 * pool's tape files sit on the tape agent's host rather than this one. The DMA is the data side
 * itself (draft-skardal-ndmpv4-04 §3.9): TAPE_OPEN read-only and rewind the backup's first tape,
 * MOVER_LISTEN in WRITE mode on TCP with the window over the whole stream, connect to it, and
 * MOVER_READ the whole stream. A mover pausing at the end of a tape's data (EOF, EOM, SEEK past it)
 * gets the backup's next tape with the window from its seek position on; after the last tape
 * MOVER_CLOSE halts it and the connection ends, which is the end of the stream. Each backup starts
 * on a tape of its own (dma/pool/pool.ts), so its stream is the first file of each tape.
 * A damaged record is the tape agent's MEDIA_ERROR pause: the read ends with an error naming the
 * tape and the stream position (the agent's own LOG_MESSAGE, if it sent one, says more). A pause or
 * halt whose post never came is read from the mover's state after a quiet spell (lost-posts.ts).
 */
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import type { ByteSource } from '../../backup/types.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { decodeBody } from '../../xdr/ndmp/message.ts'
import type { NdmpAuth, NdmpPost } from '../../client/ndmp/connection.ts'
import { M, NdmpAgent } from '../ndmp/agent.ts'
import { eventsFromState } from '../ndmp/lost-posts.ts'
import type { NdmpVersion } from '../ndmp/v3.ts'
import type { TapeDamage } from './tape-reader.ts'

const WHOLE = 0xffffffffffffffffn
const QUIET = Symbol('quiet')
const P = v4.ndmp4_mover_pause_reason

function ipv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

export interface NdmpTapeSourceOptions {
  host: string
  port: number
  auth: NdmpAuth | null
  /** The protocol version to open (absent: the agent's offer). */
  version?: NdmpVersion
  /** The tape devices (the pool's tape files as the tape agent names them), in stream order. */
  devices: readonly string[]
  /** Per NDMP call (default: the connection's, 30 s). */
  timeoutMs?: number
}

export class NdmpTapeSource implements ByteSource {
  readonly #o: NdmpTapeSourceOptions
  #agent: NdmpAgent | null = null
  #sock: Socket | null = null
  #iter: AsyncIterator<Buffer> | null = null
  #pending: Buffer | null = null
  #current = 0
  /** Why the stream ended early (a halt that was not ours, a media error), or null. */
  #failure: string | null = null
  #lastLog = ''
  #events: Promise<void> = Promise.resolve()
  /** Posts taken so far (a quiet spell is one with none). */
  #posts = 0
  /** Bytes of stream handed out. */
  bytes = 0n
  /** Always empty here: the agent reports damage as a MEDIA_ERROR pause, which ends the read. */
  readonly damage: TapeDamage[] = []

  constructor(o: NdmpTapeSourceOptions) {
    this.#o = o
  }

  get name(): string {
    return `${this.#o.host}:${this.#o.port}`
  }

  async read(max: number): Promise<Buffer | null> {
    const it = this.#iter ?? (await this.#start())
    let b = this.#pending
    this.#pending = null
    if (b === null) {
      const next = it.next().catch((err: unknown) => {
        throw new Error(this.#failure ?? `tape agent ${this.name}: the data connection failed: ${err instanceof Error ? err.message : String(err)}`)
      })
      // Handled: a look at the state below may fail first, and then nobody awaits it.
      next.catch(() => undefined)
      // No data and no post for a while: a pause or halt whose post was lost (lost-posts.ts).
      let r = await this.#quietOr(next)
      while (r === QUIET) {
        await this.#look()
        r = await this.#quietOr(next)
      }
      if (r.done === true) {
        // Let the pause and halt handling finish: a halt other than ours makes the stream short.
        await this.#events
        if (this.#failure !== null) throw new Error(this.#failure)
        return null
      }
      b = r.value
    }
    if (b.length > max) {
      this.#pending = b.subarray(max)
      b = b.subarray(0, max)
    }
    this.bytes += BigInt(b.length)
    return b
  }

  async close(): Promise<void> {
    this.#sock?.destroy()
    const agent = this.#agent
    this.#agent = null
    if (agent === null) return
    await agent.moverAbort().catch(() => undefined)
    await agent.moverStop().catch(() => undefined)
    await agent.tapeClose().catch(() => undefined)
    await agent.close().catch(() => undefined)
  }

  async #start(): Promise<AsyncIterator<Buffer>> {
    const o = this.#o
    if (o.devices.length === 0) throw new Error('no tape to read')
    const agent = await NdmpAgent.open(o.host, o.port, o.auth, o.version, o.timeoutMs)
    this.#agent = agent
    agent.onPost((p) => {
      this.#posts++
      // Posts are handled one after another: each may call the agent (load the next tape).
      this.#events = this.#events.then(() => this.#post(agent, p)).catch((err: unknown) => {
        this.#fail(`tape agent ${this.name}: ${err instanceof Error ? err.message : String(err)}`)
      })
    })
    await this.#load(agent, 0)
    const c = agent.conn
    const addr = await agent.listen(v4.ndmp4_mover_mode.NDMP4_MOVER_MODE_WRITE, 'tcp', { offset: 0n, length: WHOLE })
    const a = addr.addr_type === v4.ndmp4_addr_type.NDMP4_ADDR_TCP ? addr.tcp_addr[0] : undefined
    if (a === undefined) throw new Error(`tape agent ${this.name}: the mover did not listen on TCP`)
    // ndmp4_tcp_addr's port is a u_long on the wire: one no TCP port can be is the agent's error (net.connect would throw a RangeError).
    if (a.port < 1 || a.port > 65535) throw new Error(`tape agent ${this.name}: the mover listens at port ${a.port}, which is no TCP port`)
    const host = a.ip_addr === 0 ? o.host : ipv4(a.ip_addr)
    const sock = connect({ host, port: a.port })
    this.#sock = sock
    // The address is the agent's word: one nobody answers at fails in the call timeout, not the
    // system's (minutes), and says which it was, as a failed data connection does in read().
    await new Promise<void>((resolve, reject) => {
      const fail = (why: string): void => {
        clearTimeout(timer)
        sock.destroy()
        reject(new Error(`tape agent ${this.name}: no data connection to the mover at ${host}:${a.port}: ${why}`))
      }
      const timer = setTimeout(() => { fail(`not connected in ${c.timeoutMs} ms`) }, c.timeoutMs)
      sock.once('connect', () => {
        clearTimeout(timer)
        resolve()
      })
      sock.once('error', (err) => { fail(err.message) })
    })
    const iter = (sock as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
    this.#iter = iter
    await c.call(M.NDMP4_MOVER_READ, v4.ndmp4_mover_read_request, { offset: 0n, length: WHOLE }, v4.ndmp4_mover_read_reply)
    return iter
  }

  /** Opens tape `i` read-only at its start (a drive may keep its position across opens). */
  async #load(agent: NdmpAgent, i: number): Promise<void> {
    const device = this.#o.devices[i] as string
    await agent.conn.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device, mode: v4.ndmp4_tape_open_mode.NDMP4_TAPE_READ_MODE }, v4.ndmp4_tape_open_reply)
    await agent.conn.call(M.NDMP4_TAPE_MTIO, v4.ndmp4_tape_mtio_request, { tape_op: v4.ndmp4_tape_mtio_op.NDMP4_MTIO_REW, count: 1 }, v4.ndmp4_tape_mtio_reply)
    this.#current = i
  }

  /** `next`'s result, or QUIET after the connection's call timeout with neither data nor a post. */
  async #quietOr(next: Promise<IteratorResult<Buffer>>): Promise<IteratorResult<Buffer> | typeof QUIET> {
    const agent = this.#agent
    if (agent === null) return next
    const posts = this.#posts
    let timer: NodeJS.Timeout | undefined
    const quiet = new Promise<typeof QUIET>((resolve) => { timer = setTimeout(() => { resolve(QUIET) }, agent.conn.timeoutMs) })
    try {
      const r = await Promise.race([next, quiet])
      // A post came meanwhile (it is being handled, or was): not quiet.
      return r === QUIET && this.#posts !== posts ? await this.#quietOr(next) : r
    } finally {
      clearTimeout(timer)
    }
  }

  /** The mover's state, after a quiet spell: a pause or halt with no post is handled as its post would be. */
  async #look(): Promise<void> {
    const agent = this.#agent
    if (agent === null) return
    await this.#events
    const { events } = await eventsFromState(agent, null, { moved: null, processed: null })
    for (const e of events) {
      if (e.kind === 'mover-halted') this.#halted(e.reason)
      else if (e.kind === 'mover-paused') await this.#paused(agent, e.reason, e.seek)
    }
  }

  async #post(agent: NdmpAgent, post: NdmpPost): Promise<void> {
    if (post.code === M.NDMP4_LOG_MESSAGE) {
      this.#lastLog = agent.logMessage(post).entry
      return
    }
    if (post.code === M.NDMP4_NOTIFY_MOVER_HALTED) {
      this.#halted(agent.haltReason(post))
      return
    }
    if (post.code !== M.NDMP4_NOTIFY_MOVER_PAUSED) return
    const p = decodeBody(v4.ndmp4_notify_mover_paused_post, post.body)
    await this.#paused(agent, p.reason, p.seek_position)
  }

  #halted(reason: number): void {
    if (reason !== v4.ndmp4_mover_halt_reason.NDMP4_MOVER_HALT_CONNECT_CLOSED) this.#fail(`tape agent ${this.name}: the mover halted (${v4.ndmp4_mover_halt_reasonNames[reason] ?? reason})${this.#detail()}`)
  }

  async #paused(agent: NdmpAgent, reason: number, seek: bigint): Promise<void> {
    const device = this.#o.devices[this.#current] ?? ''
    if (reason !== P.NDMP4_MOVER_PAUSE_EOF && reason !== P.NDMP4_MOVER_PAUSE_EOM && reason !== P.NDMP4_MOVER_PAUSE_SEEK) {
      this.#fail(`tape agent ${this.name}: ${device}: the mover paused (${v4.ndmp4_mover_pause_reasonNames[reason] ?? reason}) at stream byte ${seek}${this.#detail()}`)
      await agent.moverAbort().catch(() => undefined)
      return
    }
    const next = this.#current + 1
    if (next >= this.#o.devices.length) {
      // The last tape's data is read: closing halts the mover and ends the connection.
      await agent.conn.call(M.NDMP4_MOVER_CLOSE, null, undefined, v4.ndmp4_mover_close_reply)
      return
    }
    await agent.tapeClose()
    await this.#load(agent, next)
    await agent.conn.call(M.NDMP4_MOVER_SET_WINDOW, v4.ndmp4_mover_set_window_request, { offset: seek, length: WHOLE }, v4.ndmp4_mover_set_window_reply)
    await agent.moverContinue()
  }

  #detail(): string {
    return this.#lastLog === '' ? '' : `: ${this.#lastLog}`
  }

  #fail(message: string): void {
    this.#failure ??= message
    this.#sock?.destroy()
  }
}
