/*
 * What an NDMP service (TAPE, MOVER, DATA, and CONNECT/CONFIG themselves) codes against: it
 * registers handlers by message code and version, and each handler gets the session the
 * request came on. The session layer (server/ndmp/session.ts) does framing, the header,
 * version choice, authentication and dispatch; a handler sees a decoded request body and
 * returns the reply body. Message bodies and constants are the generated codecs of
 * xdr/spec/ndmp3.x and xdr/spec/ndmp4.x (import them as `* as v4` / `* as v3`).
 */
import type { FileRef, Vfs } from '../../vfs/types.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { Logger } from '../logger.ts'

/** The protocol versions we speak; 4 is offered first (NOTIFY_CONNECTION_STATUS on accept). */
export type NdmpVersion = 3 | 4

/**
 * A failure a handler reports by throwing: the reply's body carries `error` in its `error` field
 * (every other field zero / empty), as the draft's reply bodies do; for a message whose reply has
 * no body the header's error_code carries it. `message` goes to the server log only.
 */
export class NdmpError extends Error {
  readonly error: number
  constructor(error: number, message: string) {
    super(message)
    this.name = 'NdmpError'
    this.error = error
  }
}

/**
 * One message's handler. `request`: the request body's codec (null: the message has no body, as
 * the CONFIG_GET_* requests; a body sent anyway is a decode error). `reply`: the reply body's
 * codec (null: no reply is sent at all, as for CONNECT_CLOSE). A body that does not decode, or
 * leaves bytes over, is answered NDMP_XDR_DECODE_ERR in the reply header without calling handle.
 * Requests of one session are handled one at a time, in order: a long operation (a backup)
 * starts in the handler and runs on after it returns, reporting through session.post().
 */
export interface NdmpHandler<A = unknown, R = unknown> {
  request: Codec<A> | null
  reply: Codec<R> | null
  /**
   * Answered before the connection is authorized (CONNECT_*, CONFIG_GET_AUTH_ATTR,
   * CONFIG_GET_SERVER_INFO, CONFIG_GET_HOST_INFO, ...). Default false: NDMP_NOT_AUTHORIZED_ERR.
   */
  beforeAuth?: boolean
  /** Resolves the reply body; throws NdmpError for a failure (see NdmpError). */
  handle(session: NdmpSession, request: A): Promise<R> | R
}

/** Where services register; `register` replaces an earlier handler for the same version and code. */
export interface NdmpRegistry {
  register<A, R>(version: NdmpVersion, code: number, handler: NdmpHandler<A, R>): void
}

/** A service: registers its handlers once, when the NDMP server starts. */
export interface NdmpService {
  readonly name: string
  register(registry: NdmpRegistry): void
}

/** A consistent read-only view of an export for a backup, released when the backup ends. */
export interface NdmpSnapshot {
  vfs: Vfs
  root: FileRef
  /** Its name, for the job log (e.g. the volume snapshot's name). */
  name: string
  /** A line for the DMA's log saying what the backup reads (a memory export: "read from a frozen copy ..."). */
  note?: string
  release(): Promise<void>
}

/** One export as NDMP serves it: FILESYSTEM names it by `path` (CONFIG_GET_FS_INFO lists these). */
export interface NdmpExport {
  /** The export path as in the export list (`/srv/data`). */
  path: string
  /** The backend kind: 'memory', 'local', 'engine', ... */
  backend: string
  vfs: Vfs
  root: FileRef
  /** Absent: this export has no snapshots (a backup reads it live and says so in its log). */
  snapshot?: () => Promise<NdmpSnapshot>
}

/** One tape device a DMA may TAPE_OPEN by `name`: a host file, or a directory of tape files. */
export interface NdmpTapeDevice {
  /** The device string the DMA names (CONFIG_GET_TAPE_INFO lists it); the path as given. */
  name: string
  /** Absolute host path. */
  path: string
}

/** What the NDMP server gives every session: shared, server-wide. */
export interface NdmpContext {
  /** The exports now being served (they change on reload). */
  exports(): readonly NdmpExport[]
  /** The export whose path is exactly `path`, or undefined. */
  exportByPath(path: string): NdmpExport | undefined
  /** The server's state directory; an NDMP service keeps its files below `<stateDir>/ndmp/`. */
  stateDir: string
  /** The configured tape devices (`--ndmp-tape`), in order. */
  tapes: readonly NdmpTapeDevice[]
  logger: Logger
}

export interface NdmpPeer {
  address: string
  port: number
  family: 'IPv4' | 'IPv6'
}

/** One control connection from a DMA. */
export interface NdmpSession {
  /** A number unique within the server, for logs. */
  readonly id: number
  /** The version in force (4 until CONNECT_OPEN chose another). */
  readonly version: NdmpVersion
  /** CONNECT_CLIENT_AUTH succeeded. */
  readonly authorized: boolean
  /** The user CONNECT_CLIENT_AUTH authorized, or null. */
  readonly user: string | null
  /** The DMA's end of the connection. */
  readonly peer: NdmpPeer
  /** Our end: the address a DATA_LISTEN / MOVER_LISTEN on this session should offer. */
  readonly local: NdmpPeer
  readonly context: NdmpContext
  readonly log: Logger
  /**
   * Sends a post (NOTIFY, LOG, FH: a request the DMA does not answer) with the session's next
   * sequence number. Resolves when the socket took it (await it to pace a flood of FH posts);
   * rejects with an Error once the session is closed.
   */
  post<T>(code: number, codec: Codec<T>, body: T): Promise<void>
  /**
   * Per-session state of a service, made on first use: `session.state(KEY, () => new Mover())`.
   * Use a Symbol (or a service-prefixed string) as the key; services sharing state (a local
   * DATA -> MOVER connection) share the key through an accessor their module exports.
   */
  state<T>(key: symbol | string, create: () => T): T
  /**
   * Runs `fn` when the connection ends (CONNECT_CLOSE, the DMA went away, server stop), in
   * reverse order of registration; errors are logged. A service aborts its operation there.
   */
  onClose(fn: () => void | Promise<void>): void
  /** Ends the connection (after the replies already queued). */
  close(): void
}
