/*
 * A standby (server/replication) under a hostile or broken primary, over
 * real TCP: the replication program of a StandbyService whose export is a
 * memory backend behind the real Applier and ResyncApplier, as `tsnfs
 * standby` runs it. The quick sample is test/e2e/fuzz-replication.test.ts,
 * the long run bench/fuzz-replication.ts.
 *
 * Each session starts a fresh node (so a session's changes start at 1),
 * attaches with a well-formed HELLO, then sends a few calls: APPENDs of a
 * coherent change stream (creates, writes, setattrs, removes at the next
 * sequence numbers, so they apply), the same mutated (bad sequence numbers,
 * flipped bits, huge counts), every other procedure with its zero or
 * mutated arguments, random words, procedures that do not exist. TAKEOVER
 * is left out: it ends the standby's role. Every call must be answered with
 * a reply that decodes (RPC errors included) or the connection closed,
 * never a hang; afterwards a new connection must get NULL answered.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import type { Logger } from '../../server/logger.ts'
import { silentLogger } from '../../server/logger.ts'
import { changeToRepl } from '../../server/replication/change-codec.ts'
import { NodeState } from '../../server/replication/node-state.ts'
import { ResyncApplier } from '../../server/replication/resync-target.ts'
import { STANDBY_RPC_LIMITS, createReplicationProgram } from '../../server/replication/standby-program.ts'
import { StandbyService } from '../../server/replication/standby-service.ts'
import { RpcServer } from '../../server/rpc/server.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { Applier } from '../../vfs/replica/applier.ts'
import type { Change } from '../../vfs/replica/change.ts'
import { IdMap, ROOT_VID } from '../../vfs/replica/id-map.ts'
import type { FileRef } from '../../vfs/types.ts'
import { TSNFS_REPL_PROG, repl_append_args, repl_hello_args } from '../../xdr/generated/replication.ts'
import { RecordReader, frameRecord } from '../../xdr/record.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { decodeReplyHeader } from '../../xdr/rpc/reply.ts'
import { ROOT_CRED, bodyMutation, interestingWord, mutate, record, words } from './dispatch-fuzzer.ts'
import type { Mutation } from './dispatch-fuzzer.ts'

const PROG = TSNFS_REPL_PROG.prog
const PROCS = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs
const TAKEOVER = PROCS.REPL_TAKEOVER.proc
const REPLY_TIMEOUT_MS = 5000
const ZEROS = Buffer.alloc(4096)
const EXPORTS = [{ export_id: 1, path: Buffer.from('/a'), sync: true }]
/**
 * What the node may log as an error under this input: a change that decodes but names what this
 * standby does not have (a mutated APPEND) marks the export for a full resync, as designed. Any
 * other error (a handler that threw, for one) is a fault found.
 */
export const EXPECTED_ERRORS: ReadonlySet<string> = new Set(["replication: a change does not fit this standby's tree; export needs a full resync"])

interface Proc {
  proc: number
  name: string
  args: Codec<unknown>
  res: Codec<unknown>
}

const BY_NUMBER = new Map<number, Proc>(Object.values(PROCS).map((p) => [p.proc, { proc: p.proc, name: p.name, args: p.args, res: p.res }]))
/** Every procedure but TAKEOVER, which would end the standby's role. */
const OTHERS = [...BY_NUMBER.values()].filter((p) => p.proc !== TAKEOVER)

/** Change `seq` of a stream that applies: create f<seq>, write it, set its attributes, remove what was made three before. */
export function streamChange(seq: number): Change {
  const T = { sec: 1_700_000_000 + seq, nsec: 7 }
  const made = (s: number): FileRef => ({ id: BigInt(5000 + s), gen: 1 })
  const times = [{ ref: ROOT_VID, atime: T, mtime: T }]
  switch (seq % 4) {
    case 1:
      return { op: 'create', obj: { dir: ROOT_VID, name: Buffer.from(`f${String(seq)}`), ref: made(seq), mode: 0o644, uid: 0, gid: 0 }, exclusive: null, times }
    case 2:
      return { op: 'write', ref: made(seq - 1), offset: BigInt(seq), length: 64, data: Buffer.alloc(64, seq & 0xff), times: [] }
    case 3:
      return { op: 'setattr', ref: made(seq - 2), set: { mode: 0o600, mtime: T }, times: [] }
    default:
      return { op: 'remove', dir: ROOT_VID, name: Buffer.from(`f${String(seq - 3)}`), times }
  }
}

export type Call =
  /** APPENDs of the stream: the next `count` changes (mutated: as sent, else well-formed). */
  | { kind: 'append'; count: number; mutation: Mutation }
  | { kind: 'proc'; proc: number; body: 'zero' | 'words'; words: number[]; mutation: Mutation }

export interface ReplSession {
  calls: Call[]
}

export interface ReplTally {
  sessions: number
  calls: number
  /** Replies by RPC kind, and by result status for SUCCESS of APPEND (append:0 ...). */
  byKind: Record<string, number>
  /** Changes the standby acknowledged durable (well-formed APPENDs that applied). */
  applied: number
  closed: number
  failures: number
  firstFailure: string | null
  /** Errors the node logged (an apply that failed marks the export for a resync: not a failure by itself). */
  loggedErrors: number
  /** Those errors by message. */
  errorMessages: Record<string, number>
}

/** One TCP connection speaking RPC records, raw. */
class RawRpc {
  private readonly reader = new RecordReader(STANDBY_RPC_LIMITS.maxRecordSize ?? 1 << 24)
  private readonly inbox: Buffer[] = []
  private wake: (() => void) | null = null
  closed = false
  private readonly socket: Socket

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (c: Buffer) => {
      try {
        for (const r of this.reader.push(c)) this.inbox.push(r)
      } catch {
        socket.destroy()
      }
      this.wake?.()
    })
    socket.on('close', () => {
      this.closed = true
      this.wake?.()
    })
    socket.on('error', () => undefined)
  }

  static open(port: number): Promise<RawRpc> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port })
      s.once('connect', () => { resolve(new RawRpc(s)) })
      s.once('error', reject)
    })
  }

  /** The reply to `xid`, or what came instead. */
  async call(xid: number, rec: Buffer): Promise<Buffer | 'closed' | 'hung'> {
    this.socket.write(Buffer.concat([frameRecord([rec], rec.length), rec]))
    const deadline = Date.now() + REPLY_TIMEOUT_MS
    for (;;) {
      const at = this.inbox.findIndex((r) => r.length >= 4 && r.readUInt32BE(0) === xid)
      if (at !== -1) return this.inbox.splice(at, 1)[0] as Buffer
      if (this.closed) return 'closed'
      const left = deadline - Date.now()
      if (left <= 0) return 'hung'
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = null
    }
  }

  destroy(): void {
    this.socket.destroy()
  }
}

interface Node {
  port: number
  close(): Promise<void>
}

export class ReplFuzzer {
  readonly tally: ReplTally = { sessions: 0, calls: 0, byKind: {}, applied: 0, closed: 0, failures: 0, firstFailure: null, loggedErrors: 0, errorMessages: {} }
  private readonly base = mkdtempSync(join(tmpdir(), 'tsnfs-repl-fuzz-'))
  private xid = 1
  private nodes = 0

  async close(): Promise<void> {
    rmSync(this.base, { recursive: true, force: true })
  }

  private fail(why: string): false {
    this.tally.failures++
    this.tally.firstFailure ??= why
    return false
  }

  private async node(): Promise<Node> {
    const dir = join(this.base, `node-${String(this.nodes++)}`)
    const tally = this.tally
    const log: Logger = {
      ...silentLogger,
      error: (...a: unknown[]) => {
        tally.loggedErrors++
        const msg = a.find((x) => typeof x === 'string') ?? ''
        const obj = a.find((x): x is { code?: unknown; err?: unknown } => typeof x === 'object' && x !== null)
        const code = typeof obj?.code === 'string' && obj.code !== '' ? ` (${obj.code})` : obj?.err instanceof Error ? ` (${obj.err.message})` : ''
        const key = `${msg}${EXPECTED_ERRORS.has(msg) ? '' : code}`
        tally.errorMessages[key] = (tally.errorMessages[key] ?? 0) + 1
      },
      child: () => log,
    }
    const state = await NodeState.open(dir, { cluster: 'c1', node: 'standby-1', role: 'standby', epoch: 1n })
    const backend = new MemoryVfs({})
    const map = await IdMap.open({ dir: join(dir, 'map'), root: backend.root(), epoch: 1 })
    const applier = new Applier({ backend, map })
    const service = await StandbyService.open({
      state,
      exports: [{ id: 1, path: '/a', target: applier, resync: new ResyncApplier({ backend, map, applier }) }],
      log,
      attachTimeoutMs: 2000,
    })
    const server = new RpcServer({ programs: [createReplicationProgram(service)], logger: log, limits: STANDBY_RPC_LIMITS })
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
    return {
      port,
      close: async () => {
        await server.close()
        await service.idle()
        await service.close()
        await map.close()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  }

  private rec(proc: number, args: Buffer): { xid: number; rec: Buffer } {
    const xid = this.xid++
    return { xid, rec: record(xid, PROG, 1, proc, ROOT_CRED, args) }
  }

  /**
   * Checks a reply: a header that decodes, and for SUCCESS results that decode to the end. Its
   * kind (an RPC error, SUCCESS, or PROCEDURE:status) and the results, or null.
   */
  private decoded(proc: number, reply: Buffer): { kind: string; res?: { status?: number; durable?: bigint } } | null {
    const r = new XdrReader(reply)
    try {
      const h = decodeReplyHeader(r)
      if (h.kind !== 'SUCCESS') return { kind: h.kind }
      const p = BY_NUMBER.get(proc)
      if (p === undefined) return null
      const res = p.res.decode(r) as { status?: number; durable?: bigint } | undefined
      r.done()
      return res?.status === undefined ? { kind: 'SUCCESS' } : { kind: `${p.name}:${String(res.status)}`, res }
    } catch {
      return null
    }
  }

  private kindOf(proc: number, reply: Buffer): string | null {
    return this.decoded(proc, reply)?.kind ?? null
  }

  async run(s: ReplSession): Promise<boolean> {
    this.tally.sessions++
    const node = await this.node()
    try {
      let peer = await RawRpc.open(node.port)
      try {
        const hello = encodeToBuffer(repl_hello_args, { version: 1, cluster: Buffer.from('c1'), node: Buffer.from('primary-1'), epoch: 1n, handle_key: Buffer.alloc(32, 9), exports: EXPORTS, export_list: Buffer.from('/a *(rw)\n'), mount_list: Buffer.alloc(0) })
        const h = this.rec(PROCS.REPL_HELLO.proc, hello)
        const answer = await peer.call(h.xid, h.rec)
        if (typeof answer === 'string' || this.kindOf(PROCS.REPL_HELLO.proc, answer) !== 'REPL_HELLO:0') return this.fail(`HELLO not answered OK: ${typeof answer === 'string' ? answer : answer.toString('hex').slice(0, 80)}`)
        let next = 1
        for (const c of s.calls) {
          this.tally.calls++
          let proc: number
          let args: Buffer
          if (c.kind === 'append') {
            const changes = Array.from({ length: c.count }, (_, i) => changeToRepl(streamChange(next + i)))
            proc = PROCS.REPL_APPEND.proc
            args = mutate(encodeToBuffer(repl_append_args, { epoch: 1n, export_id: 1, first: BigInt(next), changes }), c.mutation)
          } else {
            proc = c.proc
            const p = BY_NUMBER.get(c.proc)
            const base = c.body === 'zero' && p !== undefined ? zeroArgs(p.args) ?? words(c.words) : words(c.words)
            args = mutate(base, c.mutation)
          }
          const call = this.rec(proc, args)
          const reply = await peer.call(call.xid, call.rec)
          if (reply === 'hung') return this.fail(`no reply to ${BY_NUMBER.get(proc)?.name ?? `procedure ${String(proc)}`} (${String(args.length)} argument bytes) within ${String(REPLY_TIMEOUT_MS)} ms`)
          if (reply === 'closed') {
            this.tally.closed++
            peer.destroy()
            peer = await RawRpc.open(node.port)
            const again = this.rec(PROCS.REPL_HELLO.proc, hello)
            const re = await peer.call(again.xid, again.rec)
            if (typeof re === 'string') return this.fail(`no HELLO after a closed connection: ${re}`)
            continue
          }
          const got = this.decoded(proc, reply)
          if (got === null) return this.fail(`a reply to ${BY_NUMBER.get(proc)?.name ?? `procedure ${String(proc)}`} that does not decode: ${reply.toString('hex').slice(0, 120)}`)
          this.tally.byKind[got.kind] = (this.tally.byKind[got.kind] ?? 0) + 1
          const res = got.res?.durable
          if (c.kind === 'append' && got.kind === 'REPL_APPEND:0' && res !== undefined) {
            // Acknowledged durable: the stream goes on after it (a mutated APPEND may have applied fewer or none).
            if (res > BigInt(next - 1)) {
              this.tally.applied += Number(res) - (next - 1)
              next = Number(res) + 1
            }
          }
        }
      } finally {
        peer.destroy()
      }
      // Alive: a new connection gets NULL answered.
      const check = await RawRpc.open(node.port)
      try {
        const n = this.rec(PROCS.REPL_NULL.proc, Buffer.alloc(0))
        const r = await check.call(n.xid, n.rec)
        if (typeof r === 'string' || this.kindOf(PROCS.REPL_NULL.proc, r) !== 'SUCCESS') return this.fail(`NULL not answered after the session: ${typeof r === 'string' ? r : 'a bad reply'}`)
      } finally {
        check.destroy()
      }
      return true
    } catch (err) {
      return this.fail(`session threw: ${(err as Error).message}`)
    } finally {
      await node.close()
    }
  }
}

/** The arguments a codec decodes from zeros, encoded; null when zero is no valid value (an enum without 0). */
function zeroArgs(codec: Codec<unknown>): Buffer | null {
  try {
    return encodeToBuffer(codec, codec.decode(new XdrReader(ZEROS)))
  } catch {
    return null
  }
}


// ---- arbitraries -------------------------------------------------------


const call: fc.Arbitrary<Call> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('append' as const), count: fc.integer({ min: 1, max: 12 }), mutation: bodyMutation }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('proc' as const),
      proc: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...OTHERS.map((p) => p.proc)) }, { weight: 1, arbitrary: fc.integer({ min: 15, max: 40 }) }),
      body: fc.constantFrom('zero' as const, 'zero' as const, 'words' as const),
      words: fc.array(interestingWord, { maxLength: 40 }),
      mutation: bodyMutation,
    }),
  },
)

export const replSessionArbitrary: fc.Arbitrary<ReplSession> = fc.record({ calls: fc.array(call, { minLength: 1, maxLength: 10 }) })
