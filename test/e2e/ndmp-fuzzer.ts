/*
 * The NDMP server (server/ndmp) under hostile DMA sessions, over real TCP
 * to a server in this process (one memory export, one virtual tape): the
 * quick sample is test/e2e/fuzz-ndmp.test.ts, the long run bench/fuzz-ndmp.ts.
 *
 * A session connects, reads the server's NOTIFY_CONNECTION_STATUS, then
 * either stays unauthorized or opens version 4 and authorizes (text), and
 * sends a few messages: any version-4 request the server registers, with
 * the body its codec decodes from zeros (the simplest well-formed one, which
 * reaches the handlers), random words, or either mutated (bit flips, cuts,
 * huge counts, long TRUE-marker lists: dispatch-fuzzer.ts's mutations), and
 * sometimes a header that lies (a reply's type, an unknown code, an error
 * set). Every request must be answered (an NDMP reply whose error is one of
 * ndmp4_error's), or the connection closed; never a hang. After each
 * session, a new connection must still be greeted and opened: the server is
 * alive and has room.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { connectService } from '../../server/ndmp/connect.ts'
import { configService } from '../../server/ndmp/config.ts'
import type { Logger } from '../../server/logger.ts'
import { silentLogger } from '../../server/logger.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpServer } from '../../server/ndmp/server.ts'
import { NDMP_SERVICES } from '../../server/ndmp/services.ts'
import type { NdmpHandler, NdmpRegistry } from '../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { ndmp4_errorNames, ndmp4_message as M } from '../../xdr/generated/ndmp4.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { NDMP_HEADER_SIZE, NDMP_MESSAGE_REPLY } from '../../xdr/ndmp/message.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { RawPeer } from '../server/ndmp/helpers.ts'
import { bodyMutation, interestingWord, mutate, words } from './dispatch-fuzzer.ts'

const USER = 'fuzz'
const PASSWORD = 'fuzz-pw'
/** A request not answered within this long is a hang. */
const REPLY_TIMEOUT_MS = 5000
/** Zeros enough for any request codec's simplest value (empty strings, arrays and unions' first arm). */
const ZEROS = Buffer.alloc(4096)

export interface Request {
  code: number
  name: string
  request: Codec<unknown> | null
  /** The handler replies (CONNECT_CLOSE, for one, closes instead). */
  replies: boolean
}

/** NOTIFY, LOG and FH messages go from the server to the DMA; one from the DMA is dropped unanswered (session.ts). */
const POSTS = { first: 0x500, last: 0x7ff }

/** The version-4 requests the server registers (connect, config, tape, mover, data, ...). */
function catalog(): Request[] {
  const names = new Map(Object.entries(M).map(([k, v]) => [v as number, k]))
  const out: Request[] = []
  const registry: NdmpRegistry = {
    register<A, R>(version: 3 | 4, code: number, h: NdmpHandler<A, R>): void {
      if (version === 4) out.push({ code, name: names.get(code) ?? `0x${code.toString(16)}`, request: h.request, replies: h.reply !== null })
    },
  }
  for (const s of [connectService(new Map([[USER, PASSWORD]])), configService({ revision: 'fuzz' }), ...NDMP_SERVICES]) s.register(registry)
  return out
}

function zeroBody(codec: Codec<unknown> | null): Buffer {
  if (codec === null) return Buffer.alloc(0)
  return encodeToBuffer(codec, codec.decode(new XdrReader(ZEROS)))
}

export interface Message {
  code: number
  body: Buffer
  /** message_type, reply_sequence and error_code as sent (a request: 0, 0, 0). */
  type: number
  replySequence: number
  error: number
}

export interface Session {
  authorize: boolean
  messages: Message[]
}

export interface NdmpTally {
  sessions: number
  messages: number
  replies: number
  /** Sessions the server ended by closing the connection. */
  closed: number
  failures: number
  firstFailure: string | null
  /** Replies by the header's error (NDMP4_NO_ERR, NDMP4_NOT_AUTHORIZED_ERR, ...; a handler's refusal is in the body). */
  byError: Record<string, number>
  /** Handlers that failed unexpectedly (logged as errors by the session). */
  handlerFaults: number
}

export class NdmpFuzzer {
  readonly requests = catalog()
  readonly tally: NdmpTally = { sessions: 0, messages: 0, replies: 0, closed: 0, failures: 0, firstFailure: null, byError: {}, handlerFaults: 0 }
  private readonly server: NdmpServer
  private readonly dir: string
  private readonly answered: Map<number, boolean>

  private constructor(server: NdmpServer, dir: string) {
    this.server = server
    this.dir = dir
    this.answered = new Map(this.requests.map((r) => [r.code, r.replies]))
  }

  static async create(): Promise<NdmpFuzzer> {
    const dir = mkdtempSync(join(tmpdir(), 'tsnfs-ndmp-fuzz-'))
    const vfs = new MemoryVfs({})
    // A handler that failed unexpectedly is logged as an error (session.ts): each one is a fault found.
    const faults = { n: 0 }
    const log: Logger = { ...silentLogger, error: () => { faults.n++ }, child: () => log }
    const server = await startNdmpServer({
      logger: log,
      port: 0,
      host: '127.0.0.1',
      credentials: new Map([[USER, PASSWORD]]),
      exports: () => [{ path: '/mem', backend: 'memory', vfs, root: vfs.root() }],
      tapes: [{ name: join(dir, 'tape0'), path: join(dir, 'tape0') }],
      stateDir: dir,
      revision: 'fuzz',
    })
    const f = new NdmpFuzzer(server, dir)
    Object.defineProperty(f.tally, 'handlerFaults', { get: () => faults.n, enumerable: true })
    return f
  }

  /** Whether the server answers a request of this code (registered with a reply, or unknown outside the posts). */
  private expectsReply(code: number): boolean {
    if (code >= POSTS.first && code <= POSTS.last) return false
    return this.answered.get(code) ?? true
  }

  /** Open connections the server still counts (each session's is closed before the next). */
  get openSessions(): number {
    return this.server.sessions
  }

  async close(): Promise<void> {
    await this.server.close()
    rmSync(this.dir, { recursive: true, force: true })
  }

  private fail(why: string): false {
    this.tally.failures++
    this.tally.firstFailure ??= why
    return false
  }

  /** One session; false (and counted) on a hang, a reply that is not one, or a setup that did not work. */
  async run(s: Session): Promise<boolean> {
    this.tally.sessions++
    const peer = await RawPeer.open(this.server.port)
    try {
      const hello = await peer.next(REPLY_TIMEOUT_MS)
      if (hello?.header.message_code !== M.NDMP4_NOTIFY_CONNECTION_STATUS) return this.fail(`no greeting: ${JSON.stringify(hello?.header ?? null)}`)
      if (s.authorize) {
        const open = await this.call(peer, M.NDMP4_CONNECT_OPEN, encodeToBuffer(v4.ndmp4_connect_open_request, { protocol_version: 4 }))
        const auth = await this.call(peer, M.NDMP4_CONNECT_CLIENT_AUTH, encodeToBuffer(v4.ndmp4_connect_client_auth_request, { auth_data: { auth_type: 1, auth_text: { auth_id: USER, auth_password: PASSWORD } } }))
        if (open !== 0 || auth !== 0) return this.fail(`authorization failed: open ${String(open)}, auth ${String(auth)}`)
      }
      for (const m of s.messages) {
        this.tally.messages++
        const seq = this.send(peer, m)
        // A message that claims to be a reply gets no answer, nor does a post or a request whose handler has no reply.
        if (m.type === 1 || (m.type === 0 && !this.expectsReply(m.code))) continue
        const reply = await this.replyTo(peer, seq)
        if (reply === 'closed') {
          this.tally.closed++
          return true
        }
        if (reply === 'hung') return this.fail(`no reply to code 0x${m.code.toString(16)} (${String(m.body.length)} body bytes) within ${String(REPLY_TIMEOUT_MS)} ms`)
        if (ndmp4_errorNames[reply] === undefined) return this.fail(`reply to 0x${m.code.toString(16)} with error ${String(reply)}, not an ndmp4_error`)
      }
      return true
    } catch (err) {
      return this.fail(`session threw: ${(err as Error).message}`)
    } finally {
      peer.destroy()
    }
  }

  /** The server still greets and opens a new connection. */
  async alive(): Promise<boolean> {
    const peer = await RawPeer.open(this.server.port)
    try {
      const hello = await peer.next(REPLY_TIMEOUT_MS)
      if (hello?.header.message_code !== M.NDMP4_NOTIFY_CONNECTION_STATUS) return false
      return (await this.call(peer, M.NDMP4_CONNECT_OPEN, encodeToBuffer(v4.ndmp4_connect_open_request, { protocol_version: 4 }))) === 0
    } finally {
      peer.destroy()
    }
  }

  private async call(peer: RawPeer, code: number, body: Buffer): Promise<number | 'closed' | 'hung'> {
    return this.replyTo(peer, this.send(peer, { code, body, type: 0, replySequence: 0, error: 0 }))
  }

  private seq = 0

  private send(peer: RawPeer, m: Message): number {
    const seq = ++this.seq
    const w = new XdrWriter(NDMP_HEADER_SIZE)
    for (const v of [seq, 0, m.type, m.code, m.replySequence, m.error]) w.u32(v >>> 0)
    peer.sendRecord(Buffer.concat([w.toBuffer(), m.body]))
    return seq
  }

  /** The error code of the reply to `seq` (notifications and log posts skipped), or what came instead. */
  private async replyTo(peer: RawPeer, seq: number): Promise<number | 'closed' | 'hung'> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS
    for (;;) {
      const left = deadline - Date.now()
      if (left <= 0) return 'hung'
      let m
      try {
        m = await peer.next(left)
      } catch {
        return 'hung'
      }
      if (m === null) return 'closed'
      if (m.header.message_type !== NDMP_MESSAGE_REPLY || m.header.reply_sequence !== seq) continue
      this.tally.replies++
      const name = ndmp4_errorNames[m.header.error_code] ?? String(m.header.error_code)
      this.tally.byError[name] = (this.tally.byError[name] ?? 0) + 1
      return m.header.error_code
    }
  }
}

// ---- arbitraries -------------------------------------------------------



export function sessionArbitrary(f: NdmpFuzzer): fc.Arbitrary<Session> {
  const known = fc.constantFrom(...f.requests)
  const body = fc.oneof(
    { weight: 3, arbitrary: fc.tuple(known, bodyMutation).map(([r, m]) => ({ code: r.code, body: mutate(zeroBody(r.request), m) })) },
    { weight: 1, arbitrary: fc.tuple(known, fc.array(interestingWord, { maxLength: 40 })).map(([r, ws]) => ({ code: r.code, body: words(ws) })) },
    // Codes nobody registers: between the ranges, and the version-3-only ones.
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 0xb00 }), fc.array(interestingWord, { maxLength: 8 })).map(([code, ws]) => ({ code, body: words(ws) })) },
  )
  const header = fc.oneof(
    { weight: 8, arbitrary: fc.constant({ type: 0, replySequence: 0, error: 0 }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constantFrom(0, 1, 2, 0xffff_ffff), replySequence: fc.constantFrom(0, 1, 0xffff_ffff), error: fc.constantFrom(0, 1, 23, 30, 31, 0xffff_ffff) }) },
  )
  const message = fc.tuple(body, header).map(([b, h]) => ({ ...b, ...h }))
  return fc.record({ authorize: fc.boolean(), messages: fc.array(message, { minLength: 1, maxLength: 8 }) })
}
