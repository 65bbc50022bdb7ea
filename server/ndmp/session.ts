/*
 * One NDMP control connection, server side: framing (record marking, capped before allocation),
 * the header, our own sequence numbers, version choice, the authorization gate and dispatch to
 * the registered handlers (draft-skardal-ndmpv4-04 §3: the message header and its rules).
 *
 * Failures of a message itself go in the reply header's error_code with no body, as NDMP
 * implementations do: NDMP_NOT_SUPPORTED_ERR (no handler for the code in this version),
 * NDMP_NOT_AUTHORIZED_ERR (before CONNECT_CLIENT_AUTH succeeded), NDMP_XDR_DECODE_ERR (the body
 * does not decode, or a message_type that is neither request nor reply), NDMP_UNDEFINED_ERR (a
 * handler failed unexpectedly; logged). A handler's own NdmpError goes in the reply body's
 * `error`. What cannot be answered closes this connection only: a fragment header declaring more
 * than the limit, or a record shorter than a header.
 */
import type { Socket } from 'node:net'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { XdrDecodeError } from '../../xdr/runtime/errors.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { RecordError, RecordReader } from '../../xdr/record.ts'
import {
  NDMP_MAX_MESSAGE,
  NDMP_MESSAGE_REPLY,
  NDMP_MESSAGE_REQUEST,
  type NdmpHeader,
  decodeBody,
  encodeMessage,
  ndmpTimestamp,
  parseMessage,
} from '../../xdr/ndmp/message.ts'
import { ndmp4_notify_connection_status_post } from '../../xdr/generated/ndmp4.ts'
import type { Logger } from '../logger.ts'
import type { NdmpHandlerTable } from './handler-table.ts'
import { NdmpError, type NdmpContext, type NdmpPeer, type NdmpSession, type NdmpVersion } from './service-types.ts'

/* Error codes with the same value in v3 and v4 (ndmp3.x / ndmp4.x ndmpN_error). */
const NO_ERR = 0
const NOT_SUPPORTED_ERR = 1
const NOT_AUTHORIZED_ERR = 4
const XDR_DECODE_ERR = 18
const UNDEFINED_ERR = 20
const CONNECT_OPEN = 0x900
/** NOTIFY, LOG and FH messages (0x5xx-0x7xx) are posts: a server never gets one, nor answers one. */
const POST_FIRST = 0x500
const POST_LAST = 0x7ff

/** Records queued behind the one being handled before the socket stops reading. */
const MAX_QUEUED = 16
/** How long a closing session waits for the request in progress before running its close hooks. */
const SHUTDOWN_WAIT_MS = 5000

export interface SessionOptions {
  id: number
  context: NdmpContext
  table: NdmpHandlerTable
  log: Logger
  /** Close a connection that has not authorized by then (ms; 0: never). */
  authTimeoutMs: number
  /** The highest version offered and opened (default 4; 3 serves v3 DMAs only). */
  maxVersion?: NdmpVersion
}

/** What CONNECT's handlers change in a session (server/ndmp/connect.ts); not part of NdmpSession. */
export interface SessionControls {
  /** CONNECT_OPEN happened, or another message implied it (the version offered stays). */
  isOpen(): boolean
  open(version: NdmpVersion): void
  /** The highest version this server opens (what the greeting offers). */
  readonly maxVersion: NdmpVersion
  authorize(user: string): void
  /** The MD5 challenge last handed out by CONFIG_GET_AUTH_ATTR on this connection. */
  challenge: Buffer | null
  /** Failed CONNECT_CLIENT_AUTH attempts so far. */
  failedAuths: number
}

const controls = new WeakMap<NdmpSession, SessionControls>()

/** The CONNECT controls of a session the server made; undefined for any other object. */
export function sessionControls(session: NdmpSession): SessionControls | undefined {
  return controls.get(session)
}

/** The zero value of a reply body (every field 0 / empty / the first arm), for error replies. */
const zeros = new WeakMap<Codec<unknown>, unknown>()
const ZERO_BYTES = Buffer.alloc(4096)
function zeroOf(codec: Codec<unknown>): unknown {
  if (!zeros.has(codec)) zeros.set(codec, codec.decode(new XdrReader(ZERO_BYTES)))
  return zeros.get(codec)
}

export class NdmpServerSession implements NdmpSession {
  readonly id: number
  version: NdmpVersion = 4
  authorized = false
  user: string | null = null
  readonly peer: NdmpPeer
  readonly local: NdmpPeer
  readonly context: NdmpContext
  readonly log: Logger
  private readonly socket: Socket
  private readonly table: NdmpHandlerTable
  private readonly reader = new RecordReader(NDMP_MAX_MESSAGE)
  private readonly states = new Map<symbol | string, unknown>()
  private readonly closeHooks: Array<() => void | Promise<void>> = []
  private sequence = 0
  private queued = 0
  private chain: Promise<void> = Promise.resolve()
  private closed = false
  private opened = false
  private authTimer: NodeJS.Timeout | null = null
  /** Resolves once the close hooks have run. */
  readonly done: Promise<void>
  private finish!: () => void

  constructor(socket: Socket, options: SessionOptions) {
    this.socket = socket
    this.id = options.id
    // Until CONNECT_OPEN, the version offered is the one in force.
    this.version = options.maxVersion ?? 4
    this.context = options.context
    this.table = options.table
    this.log = options.log
    this.peer = peerOf(socket.remoteAddress, socket.remotePort, socket.remoteFamily)
    this.local = peerOf(socket.localAddress, socket.localPort, socket.localFamily)
    this.done = new Promise((resolve) => {
      this.finish = resolve
    })
    controls.set(this, {
      isOpen: () => this.opened,
      open: (version) => {
        this.version = version
        this.opened = true
      },
      maxVersion: this.version,
      authorize: (user) => {
        this.authorized = true
        this.user = user
        if (this.authTimer !== null) clearTimeout(this.authTimer)
        this.authTimer = null
      },
      challenge: null,
      failedAuths: 0,
    })
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.onData(chunk)
    })
    socket.on('error', (err) => {
      this.log.debug({ err: err.message }, 'ndmp connection error')
    })
    socket.on('close', () => {
      void this.shutdown()
    })
    if (options.authTimeoutMs > 0) {
      this.authTimer = setTimeout(() => {
        this.log.info({ peer: this.peer.address }, 'ndmp: no authorization in time, closing')
        this.socket.destroy()
      }, options.authTimeoutMs)
      this.authTimer.unref()
    }
  }

  /** The DMA's connection is accepted: tell it so, and which version we offer (draft §4.1). */
  greet(reason: 0 | 2, text = ''): void {
    // v3's NOTIFY_CONNECTED has the same code and bytes as v4's NOTIFY_CONNECTION_STATUS.
    const body = { reason, protocol_version: this.version, text_reason: text }
    void this.sendMessage(this.header(NDMP_MESSAGE_REQUEST, 0x502, 0, NO_ERR), ndmp4_notify_connection_status_post, body).catch(() => undefined)
  }

  post<T>(code: number, codec: Codec<T>, body: T): Promise<void> {
    return this.sendMessage(this.header(NDMP_MESSAGE_REQUEST, code, 0, NO_ERR), codec, body)
  }

  state<T>(key: symbol | string, create: () => T): T {
    if (!this.states.has(key)) this.states.set(key, create())
    return this.states.get(key) as T
  }

  onClose(fn: () => void | Promise<void>): void {
    if (this.closed) {
      void Promise.resolve().then(fn).catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'ndmp close hook failed')
      })
      return
    }
    this.closeHooks.push(fn)
  }

  close(): void {
    this.socket.end()
  }

  /** Ends the connection now (server stop). */
  destroy(): void {
    this.socket.destroy()
  }

  private header(type: number, code: number, replyTo: number, error: number): NdmpHeader {
    this.sequence = (this.sequence + 1) >>> 0
    return { sequence: this.sequence, time_stamp: ndmpTimestamp(), message_type: type, message_code: code, reply_sequence: replyTo, error_code: error }
  }

  private sendMessage<T>(header: NdmpHeader, codec: Codec<T> | null, body: T): Promise<void> {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) return Promise.reject(new Error('NDMP session closed'))
    const chunks = encodeMessage(header, codec, body)
    return new Promise((resolve, reject) => {
      this.socket.cork()
      for (let i = 0; i < chunks.length - 1; i++) this.socket.write(chunks[i] as Buffer)
      this.socket.write(chunks[chunks.length - 1] as Buffer, (err) => {
        if (err === undefined || err === null) resolve()
        else reject(err)
      })
      this.socket.uncork()
    })
  }

  private onData(chunk: Buffer): void {
    let records: Buffer[]
    try {
      records = this.reader.push(chunk)
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      this.log.warn({ peer: this.peer.address, err: err.message }, 'ndmp: oversize message, closing the connection')
      this.socket.destroy()
      return
    }
    for (const record of records) {
      this.queued++
      if (this.queued > MAX_QUEUED) this.socket.pause()
      this.chain = this.chain
        .then(() => this.handle(record))
        .catch((err: unknown) => {
          this.log.error({ err: (err as Error).message }, 'ndmp: request failed')
        })
        .finally(() => {
          this.queued--
          if (this.queued <= MAX_QUEUED && this.socket.isPaused()) this.socket.resume()
        })
    }
  }

  private async handle(record: Buffer): Promise<void> {
    if (this.closed) return
    const msg = parseMessage(record)
    if (msg === null) {
      this.log.warn({ peer: this.peer.address, bytes: record.length }, 'ndmp: message shorter than a header, closing the connection')
      this.socket.destroy()
      return
    }
    const h = msg.header
    const code = h.message_code
    if (h.message_type === NDMP_MESSAGE_REPLY) {
      // We never wait for a reply (our posts get none): one arriving answers nothing (ndmjob drops these too).
      this.log.warn({ code, reply_sequence: h.reply_sequence }, 'ndmp: a reply from the DMA to no request of ours, dropped')
      return
    }
    if (h.message_type !== NDMP_MESSAGE_REQUEST) return this.headerError(h, XDR_DECODE_ERR)
    if (code >= POST_FIRST && code <= POST_LAST) {
      this.log.warn({ code }, 'ndmp: a post from the DMA (NOTIFY/LOG/FH go to the DMA, not from it), dropped')
      return
    }
    const handler = this.table.get(this.version, code)
    // Before authorization even "not supported" is withheld: an unauthorized peer learns nothing.
    if (!this.authorized && handler?.beforeAuth !== true) return this.headerError(h, NOT_AUTHORIZED_ERR)
    if (handler === undefined) return this.headerError(h, NOT_SUPPORTED_ERR)
    // draft §4.1: any message but CONNECT_OPEN accepts the version NOTIFY_CONNECTION_STATUS offered.
    if (code !== CONNECT_OPEN) this.opened = true
    let request: unknown
    try {
      if (handler.request === null) {
        if (msg.body.length !== 0) throw new XdrDecodeError('XDR_TRAILING_BYTES', `${msg.body.length} bytes of body where none is due`)
        request = undefined
      } else {
        request = decodeBody(handler.request, msg.body)
      }
    } catch (err) {
      if (!(err instanceof XdrDecodeError)) throw err
      this.log.info({ code, err: err.message }, 'ndmp: undecodable request')
      return this.headerError(h, XDR_DECODE_ERR)
    }
    let reply: unknown
    try {
      reply = await handler.handle(this, request)
    } catch (err) {
      if (err instanceof NdmpError) {
        this.log.debug({ code, error: err.error, why: err.message }, 'ndmp: request refused')
        if (handler.reply === null) return
        reply = { ...(zeroOf(handler.reply) as object), error: err.error }
      } else {
        this.log.error({ code, err: (err as Error).message }, 'ndmp: handler failed')
        if (handler.reply === null) return
        return this.headerError(h, UNDEFINED_ERR)
      }
    }
    if (handler.reply === null) return
    await this.sendMessage(this.header(NDMP_MESSAGE_REPLY, code, h.sequence, NO_ERR), handler.reply, reply).catch(() => undefined)
  }

  private async headerError(h: NdmpHeader, error: number): Promise<void> {
    await this.sendMessage(this.header(NDMP_MESSAGE_REPLY, h.message_code, h.sequence, error), null, undefined).catch(() => undefined)
  }

  private async shutdown(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.authTimer !== null) clearTimeout(this.authTimer)
    // Let the request being handled finish first (its service may be mid-operation), but not
    // forever: a handler stuck on its peer must not keep the close hooks (the abort) from running.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.chain, new Promise<void>((resolve) => { timer = setTimeout(resolve, SHUTDOWN_WAIT_MS) })])
    clearTimeout(timer)
    for (const fn of this.closeHooks.reverse()) {
      try {
        await fn()
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'ndmp close hook failed')
      }
    }
    this.closeHooks.length = 0
    this.finish()
  }
}

function peerOf(address: string | undefined, port: number | undefined, family: string | undefined): NdmpPeer {
  return { address: address ?? '', port: port ?? 0, family: family === 'IPv6' ? 'IPv6' : 'IPv4' }
}
