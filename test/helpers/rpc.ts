/* Shared helpers for RPC-layer tests: a tiny test program and raw message builders. */
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { RecordReader } from '../../xdr/record.ts'
import type { Test } from 'tap'
import { silentLogger } from '../../server/logger.ts'
import type { Logger } from '../../server/logger.ts'
import { combineVersions, defineVersion } from '../../server/rpc/program.ts'
import type { RpcProgram } from '../../server/rpc/program.ts'
import { RpcServer } from '../../server/rpc/server.ts'
import type { RpcLimits } from '../../server/rpc/server.ts'
import { xdr_uint, xdr_void } from '../../xdr/runtime/codec.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { ProgramDef } from '../../xdr/runtime/program.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { AUTH_NONE_AUTH, authsys_parms } from '../../xdr/rpc/auth.ts'
import type { AuthSysParms, OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { auth_flavor } from '../../xdr/rpc/constants.ts'
import { encodeCallHeader } from '../../xdr/rpc/message.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'

export const xdr_bytes: Codec<Buffer> = {
  encode: (w, v) => {
    w.opaque(v)
  },
  decode: r => r.opaque(),
}

export const TEST_PROG_NUMBER = 200000

/** prog 200000: version 1 with a few procedures, version 2 with NULL only. */
export const TEST_PROG = {
  name: 'TEST_PROG',
  prog: TEST_PROG_NUMBER,
  versions: {
    TEST_V1: {
      name: 'TEST_V1',
      vers: 1,
      procs: {
        TESTPROC_NULL: { name: 'TESTPROC_NULL', proc: 0, args: xdr_void, res: xdr_void },
        TESTPROC_ECHO: { name: 'TESTPROC_ECHO', proc: 1, args: xdr_uint, res: xdr_uint },
        TESTPROC_WAIT: { name: 'TESTPROC_WAIT', proc: 2, args: xdr_uint, res: xdr_uint },
        TESTPROC_INCR: { name: 'TESTPROC_INCR', proc: 3, args: xdr_uint, res: xdr_uint },
        TESTPROC_FAIL: { name: 'TESTPROC_FAIL', proc: 4, args: xdr_uint, res: xdr_void },
        TESTPROC_BYTES: { name: 'TESTPROC_BYTES', proc: 5, args: xdr_uint, res: xdr_bytes },
        TESTPROC_WHOAMI: { name: 'TESTPROC_WHOAMI', proc: 6, args: xdr_void, res: xdr_uint },
      },
    },
    TEST_V3: {
      name: 'TEST_V3',
      vers: 3,
      procs: {
        TESTPROC3_NULL: { name: 'TESTPROC3_NULL', proc: 0, args: xdr_void, res: xdr_void },
      },
    },
  },
} as const satisfies ProgramDef

export function words(...ws: number[]): Buffer {
  const b = Buffer.alloc(ws.length * 4)
  ws.forEach((w, i) => b.writeUInt32BE(w >>> 0, i * 4))
  return b
}

export function authSysCred(p: Partial<AuthSysParms> = {}): OpaqueAuth {
  const parms: AuthSysParms = { stamp: 1, machinename: 'testhost', uid: 1000, gid: 1000, gids: [], ...p }
  return { flavor: auth_flavor.AUTH_SYS, body: encodeToBuffer(authsys_parms, parms) }
}

export interface CallInit {
  xid: number
  prog?: number
  vers?: number
  proc: number
  cred?: OpaqueAuth
  verf?: OpaqueAuth
  args?: Buffer
}

/** A CALL record (no record mark). */
export function callRecord(c: CallInit): Buffer {
  const w = new XdrWriter()
  encodeCallHeader(w, {
    xid: c.xid,
    prog: c.prog ?? TEST_PROG_NUMBER,
    vers: c.vers ?? 1,
    proc: c.proc,
    cred: c.cred ?? AUTH_NONE_AUTH,
    verf: c.verf ?? AUTH_NONE_AUTH,
  })
  return Buffer.concat([w.toBuffer(), c.args ?? Buffer.alloc(0)])
}

/** A record with its last-fragment mark, ready for a TCP socket. */
export function framed(record: Buffer): Buffer {
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE((0x8000_0000 | record.length) >>> 0, 0)
  return Buffer.concat([mark, record])
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void
  const promise = new Promise<T>(res => {
    resolve = res
  })
  return { promise, resolve }
}

/** Knobs and counters shared between a test and the handlers of its server. */
export interface TestHooks {
  /** TESTPROC_WAIT(0) waits for this gate; TESTPROC_WAIT(n > 0) sleeps n ms. */
  gate: Promise<void>
  /** TESTPROC_INCR waits for this gate when set. */
  incrGate: Promise<void> | null
  running: number
  maxRunning: number
  executions: number
  /** Order in which handlers finished (by procedure name and argument). */
  finished: string[]
  /** CallContext.signal of each TESTPROC_WAIT call. */
  signals: AbortSignal[]
}

export function newHooks(): TestHooks {
  return { gate: Promise.resolve(), incrGate: null, running: 0, maxRunning: 0, executions: 0, finished: [], signals: [] }
}

export function testProgram(h: TestHooks): RpcProgram {
  return combineVersions(
    defineVersion(
      TEST_PROG,
      'TEST_V1',
      {
        TESTPROC_NULL: () => undefined,
        TESTPROC_ECHO: n => {
          h.finished.push(`ECHO ${n}`)
          return n
        },
        TESTPROC_WAIT: async (n, call) => {
          h.signals.push(call.signal)
          h.running++
          h.maxRunning = Math.max(h.maxRunning, h.running)
          try {
            await (n === 0 ? h.gate : sleep(n))
          } finally {
            h.running--
          }
          h.finished.push(`WAIT ${n}`)
          return n
        },
        TESTPROC_INCR: async n => {
          h.executions++
          if (h.incrGate !== null) await h.incrGate
          return n + h.executions
        },
        TESTPROC_FAIL: () => {
          throw new Error('boom')
        },
        TESTPROC_BYTES: n => Buffer.alloc(n, 0xab),
        TESTPROC_WHOAMI: (_args, call) => (call.cred.flavor === 'sys' ? call.cred.uid : 0xffff_ffff),
      },
      { nonIdempotent: ['TESTPROC_INCR'] },
    ),
    defineVersion(TEST_PROG, 'TEST_V3', { TESTPROC3_NULL: () => undefined }),
  )
}

export async function startTestServer(
  t: Test,
  opts: { limits?: Partial<RpcLimits>; hooks?: TestHooks; logger?: Logger } = {},
): Promise<{ server: RpcServer; port: number; hooks: TestHooks }> {
  const hooks = opts.hooks ?? newHooks()
  const server = new RpcServer({ programs: [testProgram(hooks)], logger: opts.logger ?? silentLogger, ...(opts.limits ? { limits: opts.limits } : {}) })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => server.close())
  return { server, port, hooks }
}

/** Procedure refs for the client: the table entries work as they are. */
export const P = TEST_PROG.versions.TEST_V1.procs

/** A bare TCP connection that collects reply records: for hostile-input and exact-byte tests. */
export class RawConnection {
  readonly socket: Socket
  readonly records: Buffer[] = []
  readonly closed: Promise<void>
  private readonly reader = new RecordReader(16 * 1024 * 1024)
  private waiters: (() => void)[] = []
  private isClosed = false

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.records.push(...this.reader.push(chunk))
      const w = this.waiters
      this.waiters = []
      for (const f of w) f()
    })
    socket.on('error', () => undefined)
    this.closed = new Promise(resolve =>
      socket.once('close', () => {
        this.isClosed = true
        for (const f of this.waiters) f()
        resolve()
      }),
    )
  }

  static async open(t: Test, port: number): Promise<RawConnection> {
    const socket = netConnect({ port, host: '127.0.0.1' })
    await once(socket, 'connect')
    t.teardown(() => socket.destroy())
    return new RawConnection(socket)
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes)
  }

  /** Wait until at least n reply records have arrived. */
  async waitFor(n: number): Promise<Buffer[]> {
    while (this.records.length < n) {
      if (this.isClosed) throw new Error(`connection closed after ${this.records.length} of ${n} replies`)
      await new Promise<void>(resolve => this.waiters.push(resolve))
    }
    return this.records
  }
}
