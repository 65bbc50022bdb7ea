/*
 * What the replication wire tests share: a ChangeTarget that records every
 * applied change in order (and each out-of-order call as a violation), a
 * ChangeSource over an array with waitAfter, a DataSource of deterministic
 * bytes, a generator of varied changes, and a standby served on 127.0.0.1.
 */
import type { Test } from 'tap'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import type { Change, ChangeTarget } from '../../../vfs/replica/change.ts'
import { VfsError } from '../../../vfs/errors.ts'
import type { Errno } from '../../../vfs/errors.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { silentLogger } from '../../../server/logger.ts'
import type { Logger } from '../../../server/logger.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import { shippedSize } from '../../../server/replication/batch.ts'
import { ReplicationError } from '../../../server/replication/log-types.ts'
import type { ChangeSource, DataSource, LoggedChange } from '../../../server/replication/log-types.ts'
import { SyncGate } from '../../../server/replication/gate.ts'
import { NodeState } from '../../../server/replication/node-state.ts'
import type { NodeRole } from '../../../server/replication/node-state.ts'
import { STANDBY_RPC_LIMITS, createReplicationProgram } from '../../../server/replication/standby-program.ts'
import { StandbyService } from '../../../server/replication/standby-service.ts'
import type { StandbyOptions } from '../../../server/replication/standby-service.ts'
import type { SenderExport, SenderOptions } from '../../../server/replication/sender-options.ts'

export class RecordingTarget implements ChangeTarget {
  readonly applied: { seq: bigint; change: Change }[] = []
  /** Calls that were not the change after the previous one. */
  readonly violations: string[] = []
  flushes = 0
  private pos = 0n
  private last = 0n
  /** Throw this errno when asked to apply `seq`. */
  failAt: { seq: bigint; code: Errno } | null = null
  /** Every flush throws this errno while set (a backend whose flush fails). */
  failFlush: Errno | null = null
  /** Awaited inside every flush (a test holds acknowledgements back with it). */
  flushGate: (() => Promise<void>) | null = null

  apply(seq: bigint, change: Change): Promise<void> {
    if (seq !== this.last + 1n) this.violations.push(`apply(${seq}) after ${this.last}`)
    if (this.failAt?.seq === seq) return Promise.reject(new VfsError(this.failAt.code, `injected ${this.failAt.code} at ${seq}`))
    this.applied.push({ seq, change })
    this.last = seq
    return Promise.resolve()
  }

  async flush(): Promise<bigint> {
    if (this.flushGate !== null) await this.flushGate()
    if (this.failFlush !== null) throw new VfsError(this.failFlush, `injected ${this.failFlush} in flush`)
    this.flushes++
    this.pos = this.last
    return this.pos
  }

  position(): bigint {
    return this.pos
  }

  /** Loses everything after `seq` (a standby restored from an older copy). */
  rewind(seq: bigint): void {
    while (this.applied.length > 0 && (this.applied.at(-1)?.seq ?? 0n) > seq) this.applied.pop()
    this.pos = seq
    this.last = seq
  }

  seqs(): bigint[] {
    return this.applied.map((a) => a.seq)
  }
}

/** A change log over an array: change i has seq i + 1; trim() really drops changes. */
export class ArraySource implements ChangeSource {
  readonly changes: Change[] = []
  private readonly sizes: number[] = []
  private first = 1n
  private waiters: { seq: bigint; resolve: () => void }[] = []

  append(c: Change): bigint {
    this.changes.push(c)
    this.sizes.push(shippedSize(c.op === 'write' ? { ...c, length: 0 } : c))
    const seq = BigInt(this.changes.length)
    const ready = this.waiters.filter((w) => seq > w.seq)
    this.waiters = this.waiters.filter((w) => seq <= w.seq)
    for (const w of ready) w.resolve()
    return seq
  }

  firstSeq(): bigint {
    return this.first
  }

  lastSeq(): bigint {
    return BigInt(this.changes.length)
  }

  read(from: bigint, maxChanges: number, maxBytes: number): Promise<LoggedChange[]> {
    if (from < this.first) return Promise.reject(new ReplicationError('REPL_TRIMMED', `${from} is before ${this.first}`))
    const out: LoggedChange[] = []
    let bytes = 0
    for (let s = from; s <= this.lastSeq() && out.length < maxChanges; s++) {
      const change = this.changes[Number(s) - 1] as Change
      // As a real log: at least the change's XDR (a WRITE's data left out).
      const size = this.sizes[Number(s) - 1] ?? 0
      if (out.length > 0 && bytes + size > maxBytes) break
      bytes += size
      out.push({ seq: s, change, bytes: size })
    }
    return Promise.resolve(out)
  }

  waitAfter(seq: bigint, signal?: AbortSignal): Promise<void> {
    if (this.lastSeq() > seq) return Promise.resolve()
    return new Promise((resolve, reject) => {
      // The listener goes with the wait: a session's signal outlives many waits.
      const onAbort = (): void => {
        this.waiters = this.waiters.filter((x) => x !== w)
        reject(new Error('aborted'))
      }
      const w = {
        seq,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      this.waiters.push(w)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  trim(seq: bigint): Promise<void> {
    if (seq + 1n > this.first) this.first = seq + 1n
    return Promise.resolve()
  }
}

/** The byte at `offset` of object `ref`: what the primary "holds", so shipped data can be checked. */
export function byteAt(ref: FileRef, offset: bigint): number {
  return Number((ref.id * 31n + offset) % 251n)
}

export const patternData: DataSource = {
  readRange(ref, offset, length) {
    const b = Buffer.alloc(length)
    for (let i = 0; i < length; i++) b[i] = byteAt(ref, offset + BigInt(i))
    return Promise.resolve(b)
  },
}

const root: FileRef = { id: 1n, gen: 1 }
const T0 = { sec: 1_700_000_000, nsec: 5 }

/** Change number `i` of a varied stream (mkdir, create, write with data from the DataSource, setattr, rename, remove). */
export function changeNo(i: number, writeBytes = 100): Change {
  const ref: FileRef = { id: BigInt(1000 + i), gen: 1 }
  const name = Buffer.from(`f${String(i)}`)
  const times = [{ ref: root, atime: T0, mtime: { sec: T0.sec + i, nsec: 0 } }]
  switch (i % 6) {
    case 0:
      return { op: 'mkdir', obj: { dir: root, name, ref, mode: 0o755, uid: 0, gid: 0 }, times }
    case 1:
      return { op: 'create', obj: { dir: root, name, ref, mode: 0o644, uid: 1, gid: 2 }, exclusive: i % 12 === 1 ? Buffer.alloc(8, i & 0xff) : null, times }
    case 2:
      return { op: 'write', ref, offset: BigInt(i * 10), length: writeBytes, data: null, times: [] }
    case 3:
      return { op: 'setattr', ref, set: { mode: 0o600, size: BigInt(i), mtime: { sec: 5, nsec: 6 } }, times: [] }
    case 4:
      return { op: 'rename', fromDir: root, fromName: name, toDir: root, toName: Buffer.from(`g${String(i)}`), times }
    default:
      return { op: 'remove', dir: root, name, times }
  }
}

/**
 * A Sender's options for the tests: one sync export's worth of HELLO for a primary "primary-1" of
 * cluster c1 at epoch 1, heartbeats every 50 ms, a standby silent for 500 ms dead, reconnects
 * within 20-100 ms; `o` overrides any of them.
 */
export function senderOptions(port: number, exports: SenderExport[], o: Partial<SenderOptions> = {}): SenderOptions {
  return {
    host: '127.0.0.1',
    port,
    cluster: 'c1',
    node: 'primary-1',
    epoch: () => 1n,
    hello: () => ({ handleKey: Buffer.alloc(32, 1), exportList: Buffer.from('/a\n'), mountList: Buffer.alloc(0) }),
    exports,
    gate: new SyncGate(silentLogger),
    log: silentLogger,
    heartbeatMs: 50,
    timeoutMs: 500,
    reconnectMinMs: 20,
    reconnectMaxMs: 100,
    ...o,
  }
}

export interface StandbyFixture {
  service: StandbyService
  server: RpcServer
  state: NodeState
  port: number
  /** Stops serving (connections dropped) and waits until no APPEND is applying. */
  close(): Promise<void>
}

export interface StandbySetup {
  dir: string
  targets: { id: number; path: string; target: ChangeTarget }[]
  cluster?: string
  node?: string
  role?: NodeRole
  epoch?: bigint
  port?: number
  log?: Logger
  extra?: Partial<StandbyOptions>
}

export async function startStandby(t: Test, s: StandbySetup): Promise<StandbyFixture> {
  const state = await NodeState.open(s.dir, { cluster: s.cluster ?? 'c1', node: s.node ?? 'standby-1', role: s.role ?? 'standby', epoch: s.epoch ?? 1n })
  const log = s.log ?? silentLogger
  const service = await StandbyService.open({ state, exports: s.targets, log, attachTimeoutMs: 2000, ...s.extra })
  const server = new RpcServer({ programs: [createReplicationProgram(service)], logger: log, limits: STANDBY_RPC_LIMITS })
  const { port } = await server.listen({ port: s.port ?? 0, host: '127.0.0.1' })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await server.close()
    await service.idle()
    await service.close()
  }
  t.teardown(close)
  return { service, server, state, port, close }
}

export interface Relay {
  port: number
  /** Stop forwarding both ways (bytes are dropped, connections stay open): a standby that stops answering. */
  pause(): void
  /** Forward again; connections opened or broken while paused are closed. */
  resume(): void
}

/** A TCP relay in front of `targetPort`, so a test can silence a standby without closing anything. */
export async function startRelay(t: Test, targetPort: number): Promise<Relay> {
  let paused = false
  const pairs = new Set<{ a: Socket; b: Socket; tainted: boolean }>()
  // No Nagle on either leg, as on the sender's and the standby's own sockets: otherwise a small
  // APPEND waits for the delayed ACK (40 ms), and a sender shipping one change per APPEND falls
  // behind writers for good (CI saw it with seed 77297: 100 APPENDs/s).
  const server = createServer({ noDelay: true }, (a) => {
    const b = connect({ host: '127.0.0.1', port: targetPort, noDelay: true })
    const pair = { a, b, tainted: paused }
    pairs.add(pair)
    const forward = (from: Socket, to: Socket): void => {
      from.on('data', (d: Buffer) => {
        if (paused) pair.tainted = true
        else to.write(d)
      })
    }
    forward(a, b)
    forward(b, a)
    const end = (): void => {
      a.destroy()
      b.destroy()
      pairs.delete(pair)
    }
    a.on('error', end).on('close', end)
    b.on('error', end).on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  t.teardown(async () => {
    for (const p of pairs) {
      p.a.destroy()
      p.b.destroy()
    }
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    port,
    pause() {
      paused = true
      for (const p of pairs) p.tainted = true
    },
    resume() {
      paused = false
      for (const p of [...pairs]) {
        if (p.tainted) {
          p.a.destroy()
          p.b.destroy()
          pairs.delete(p)
        }
      }
    },
  }
}

/** Polls `cond` every 10 ms until it holds; fails after `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${String(ms)} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
