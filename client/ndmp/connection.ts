/*
 * An NDMP control connection, DMA side (draft-skardal-ndmpv4-04 §3-4): connect over TCP, take the
 * server's NOTIFY_CONNECTION_STATUS, CONNECT_OPEN the version, authorize (clear text or MD5),
 * then call(code, ...) → the reply body, with the exact NDMP error on failure; posts the server
 * sends (NOTIFY, LOG, FH) go to the listeners given with onPost. Framing and the header are
 * xdr/ndmp/message.ts, shared with the server.
 */
import { connect as netConnect, type Socket } from 'node:net'
import * as v3 from '../../xdr/generated/ndmp3.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { XdrDecodeError } from '../../xdr/runtime/errors.ts'
import { RecordError, RecordReader } from '../../xdr/record.ts'
import { ndmpMd5Digest } from '../../xdr/ndmp/md5.ts'
import {
  NDMP_MAX_MESSAGE,
  NDMP_MESSAGE_REPLY,
  NDMP_MESSAGE_REQUEST,
  type NdmpHeader,
  type NdmpMessage,
  decodeBody,
  encodeMessage,
  ndmpTimestamp,
  parseMessage,
} from '../../xdr/ndmp/message.ts'

export type NdmpClientErrorCode =
  /** TCP connect failed. */
  | 'NDMP_CONNECT'
  /** No reply (or no greeting) in time. */
  | 'NDMP_TIMEOUT'
  /** The connection closed (or was closed) before the reply came. */
  | 'NDMP_CLOSED'
  /** The server refused the connection (NOTIFY_CONNECTION_STATUS not CONNECTED). */
  | 'NDMP_REFUSED'
  /** The reply header carries an error (ndmpError): no body came. */
  | 'NDMP_HEADER_ERROR'
  /** The reply body's `error` is not NO_ERR (ndmpError; the body is in reply). */
  | 'NDMP_REPLY_ERROR'
  /** The server broke the protocol (an undecodable reply, an oversize message, a bad greeting). */
  | 'NDMP_PROTOCOL'

export class NdmpClientError extends Error {
  readonly code: NdmpClientErrorCode
  /** The NDMP error (ndmpN_error) for NDMP_HEADER_ERROR and NDMP_REPLY_ERROR. */
  readonly ndmpError: number | null
  /** The decoded reply of an NDMP_REPLY_ERROR. */
  readonly reply: unknown
  constructor(code: NdmpClientErrorCode, message: string, ndmpError: number | null = null, reply?: unknown) {
    super(message)
    this.name = 'NdmpClientError'
    this.code = code
    this.ndmpError = ndmpError
    this.reply = reply
  }
}

/** A post from the server (NOTIFY, LOG, FH): its header and body bytes; decode with the version's codec. */
export interface NdmpPost {
  code: number
  header: NdmpHeader
  body: Buffer
}

export interface NdmpConnectOptions {
  host: string
  /** Default 10000. */
  port?: number
  /** The version to CONNECT_OPEN; default the one the server offers (at most 4). */
  version?: 3 | 4
  /** Per call, and for the TCP connect and the greeting (default 30000 ms). */
  timeoutMs?: number
}

export type NdmpAuth = { type: 'text' | 'md5'; user: string; password: string }

interface Pending {
  code: number
  resolve(msg: NdmpMessage): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

const NOTIFY_CONNECTION_STATUS = 0x502
const CONNECT_OPEN = 0x900
const CONNECT_CLIENT_AUTH = 0x901
const CONNECT_CLOSE = 0x902
const CONFIG_GET_AUTH_ATTR = 0x103

export class NdmpConnection {
  /** The version in force after CONNECT_OPEN. */
  version: 3 | 4 = 4
  /** The version the server offered in its greeting. */
  offered = 0
  /** Per call (and for the TCP connect and the greeting). */
  readonly timeoutMs: number
  private readonly socket: Socket
  private readonly reader = new RecordReader(NDMP_MAX_MESSAGE)
  private readonly pending = new Map<number, Pending>()
  private readonly listeners: Array<(post: NdmpPost) => void> = []
  private sequence = 0
  private closedWith: NdmpClientError | null = null
  private greeting: ((msg: NdmpMessage) => void) | null = null

  private constructor(socket: Socket, timeoutMs: number) {
    this.socket = socket
    this.timeoutMs = timeoutMs
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.onData(chunk)
    })
    socket.on('error', () => {
      /* 'close' follows and fails what is pending */
    })
    socket.on('close', () => {
      this.fail(new NdmpClientError('NDMP_CLOSED', 'the NDMP connection closed'))
    })
  }

  /** Connects, takes the greeting and opens the version (no authorization yet: see auth()). */
  static async connect(options: NdmpConnectOptions): Promise<NdmpConnection> {
    const timeoutMs = options.timeoutMs ?? 30_000
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host: options.host, port: options.port ?? 10000 })
      const timer = setTimeout(() => {
        s.destroy()
        reject(new NdmpClientError('NDMP_TIMEOUT', `no TCP connection to ${options.host} in ${timeoutMs} ms`))
      }, timeoutMs)
      s.once('connect', () => {
        clearTimeout(timer)
        s.off('error', onError)
        resolve(s)
      })
      const onError = (err: Error): void => {
        clearTimeout(timer)
        reject(new NdmpClientError('NDMP_CONNECT', `cannot connect to ${options.host}:${options.port ?? 10000}: ${err.message}`))
      }
      s.once('error', onError)
    })
    const conn = new NdmpConnection(socket, timeoutMs)
    try {
      await conn.greet()
      const version = options.version ?? (conn.offered >= 4 ? 4 : 3)
      await conn.call(CONNECT_OPEN, v4.ndmp4_connect_open_request, { protocol_version: version }, v4.ndmp4_connect_open_reply)
      conn.version = version
      return conn
    } catch (err) {
      conn.destroy()
      throw err
    }
  }

  /** CONNECT_CLIENT_AUTH: clear text, or MD5 over a challenge from CONFIG_GET_AUTH_ATTR. */
  async auth(a: NdmpAuth): Promise<void> {
    if (a.type === 'text') {
      const req = { auth_data: { auth_type: 1 as const, auth_text: { auth_id: a.user, auth_password: a.password } } }
      if (this.version === 4) await this.call(CONNECT_CLIENT_AUTH, v4.ndmp4_connect_client_auth_request, req, v4.ndmp4_connect_client_auth_reply)
      else await this.call(CONNECT_CLIENT_AUTH, v3.ndmp3_connect_client_auth_request, req, v3.ndmp3_connect_client_auth_reply)
      return
    }
    const attr = this.version === 4
      ? (await this.call(CONFIG_GET_AUTH_ATTR, v4.ndmp4_config_get_auth_attr_request, { auth_type: 2 }, v4.ndmp4_config_get_auth_attr_reply)).server_attr
      : (await this.call(CONFIG_GET_AUTH_ATTR, v3.ndmp3_config_get_auth_attr_request, { auth_type: 2 }, v3.ndmp3_config_get_auth_attr_reply)).server_attr
    if (attr.auth_type !== 2) throw new NdmpClientError('NDMP_PROTOCOL', `CONFIG_GET_AUTH_ATTR answered auth type ${attr.auth_type} for MD5`)
    const req = { auth_data: { auth_type: 2 as const, auth_md5: { auth_id: a.user, auth_digest: ndmpMd5Digest(attr.challenge, a.password) } } }
    if (this.version === 4) await this.call(CONNECT_CLIENT_AUTH, v4.ndmp4_connect_client_auth_request, req, v4.ndmp4_connect_client_auth_reply)
    else await this.call(CONNECT_CLIENT_AUTH, v3.ndmp3_connect_client_auth_request, req, v3.ndmp3_connect_client_auth_reply)
  }

  /**
   * Sends a request and resolves its decoded reply. Rejects with NdmpClientError: NDMP_HEADER_ERROR
   * (the header's error_code), NDMP_REPLY_ERROR (the body's `error` field), NDMP_TIMEOUT,
   * NDMP_CLOSED, NDMP_PROTOCOL (the reply does not decode with `reply`).
   */
  async call<A, R>(code: number, request: Codec<A> | null, body: A, reply: Codec<R>): Promise<R> {
    const msg = await this.callRaw(code, request, body)
    if (msg.header.error_code !== 0) {
      throw new NdmpClientError('NDMP_HEADER_ERROR', `0x${code.toString(16)}: NDMP error ${msg.header.error_code} in the reply header`, msg.header.error_code)
    }
    let value: R
    try {
      value = decodeBody(reply, msg.body)
    } catch (err) {
      if (err instanceof XdrDecodeError) throw new NdmpClientError('NDMP_PROTOCOL', `0x${code.toString(16)}: reply does not decode: ${err.message}`)
      throw err
    }
    const error = (value as { error?: unknown }).error
    if (typeof error === 'number' && error !== 0) throw new NdmpClientError('NDMP_REPLY_ERROR', `0x${code.toString(16)}: NDMP error ${error}`, error, value)
    return value
  }

  /** Sends a request and resolves the reply as it came (header and body bytes): no error is interpreted. */
  callRaw<A>(code: number, request: Codec<A> | null, body: A): Promise<NdmpMessage> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith)
    const header = this.header(code)
    return new Promise<NdmpMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(header.sequence)
        reject(new NdmpClientError('NDMP_TIMEOUT', `0x${code.toString(16)}: no reply in ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.pending.set(header.sequence, { code, resolve, reject, timer })
      this.write(encodeMessage(header, request, body))
    })
  }

  /** Sends bytes as they are, framing included (tests: malformed input). */
  sendRaw(record: Buffer): void {
    this.write([record])
  }

  /** Listens for the server's posts (NOTIFY, LOG, FH); returns the function that stops listening. */
  onPost(fn: (post: NdmpPost) => void): () => void {
    this.listeners.push(fn)
    return () => {
      const i = this.listeners.indexOf(fn)
      if (i >= 0) this.listeners.splice(i, 1)
    }
  }

  /** CONNECT_CLOSE (no reply), then the end of the connection; resolves once it is closed. */
  async close(): Promise<void> {
    if (this.closedWith === null && !this.socket.destroyed) {
      this.write(encodeMessage(this.header(CONNECT_CLOSE), null, undefined))
      this.socket.end()
      await new Promise<void>((resolve) => {
        if (this.socket.destroyed) resolve()
        else this.socket.once('close', () => { resolve() })
      })
    }
  }

  destroy(): void {
    this.socket.destroy()
  }

  /** The next sequence number and the rest of a request header. */
  private header(code: number): NdmpHeader {
    this.sequence = (this.sequence + 1) >>> 0
    return { sequence: this.sequence, time_stamp: ndmpTimestamp(), message_type: NDMP_MESSAGE_REQUEST, message_code: code, reply_sequence: 0, error_code: 0 }
  }

  private write(chunks: Buffer[]): void {
    this.socket.cork()
    for (const c of chunks) this.socket.write(c)
    this.socket.uncork()
  }

  private async greet(): Promise<void> {
    const msg = await new Promise<NdmpMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new NdmpClientError('NDMP_TIMEOUT', `no NOTIFY_CONNECTION_STATUS in ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.greeting = (m) => {
        clearTimeout(timer)
        resolve(m)
      }
      this.socket.once('close', () => {
        clearTimeout(timer)
        reject(new NdmpClientError('NDMP_CLOSED', 'the server closed the connection before greeting'))
      })
    })
    let status: v4.ndmp4_notify_connection_status_post
    try {
      status = decodeBody(v4.ndmp4_notify_connection_status_post, msg.body)
    } catch (err) {
      throw new NdmpClientError('NDMP_PROTOCOL', `bad NOTIFY_CONNECTION_STATUS: ${(err as Error).message}`)
    }
    if (status.reason !== v4.ndmp4_connection_status_reason.NDMP4_CONNECTED) {
      throw new NdmpClientError('NDMP_REFUSED', `the server refused the connection (${status.reason}): ${status.text_reason}`)
    }
    this.offered = status.protocol_version
  }

  private onData(chunk: Buffer): void {
    let records: Buffer[]
    try {
      records = this.reader.push(chunk)
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      this.fail(new NdmpClientError('NDMP_PROTOCOL', `oversize message from the server: ${err.message}`))
      this.socket.destroy()
      return
    }
    for (const record of records) {
      const msg = parseMessage(record)
      if (msg === null) {
        this.fail(new NdmpClientError('NDMP_PROTOCOL', 'a message shorter than a header from the server'))
        this.socket.destroy()
        return
      }
      this.dispatch(msg)
    }
  }

  private dispatch(msg: NdmpMessage): void {
    const h = msg.header
    if (h.message_type === NDMP_MESSAGE_REPLY) {
      const p = this.pending.get(h.reply_sequence)
      if (p === undefined) return // a late reply to a call that timed out
      this.pending.delete(h.reply_sequence)
      clearTimeout(p.timer)
      if (h.message_code !== p.code) {
        p.reject(new NdmpClientError('NDMP_PROTOCOL', `reply to 0x${p.code.toString(16)} names message 0x${h.message_code.toString(16)}`))
        return
      }
      p.resolve(msg)
      return
    }
    if (h.message_type !== NDMP_MESSAGE_REQUEST) return
    if (this.greeting !== null && h.message_code === NOTIFY_CONNECTION_STATUS) {
      const g = this.greeting
      this.greeting = null
      g(msg)
      return
    }
    const post: NdmpPost = { code: h.message_code, header: h, body: msg.body }
    for (const fn of [...this.listeners]) fn(post)
  }

  private fail(err: NdmpClientError): void {
    if (this.closedWith === null) this.closedWith = err
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq)
      clearTimeout(p.timer)
      p.reject(err)
    }
  }
}
