/*
 * A primary's replication sender against a standby whose replies are damaged on the way (the
 * quick sample is test/e2e/fuzz-sender.test.ts, the long run bench/fuzz-sender.ts; the other way
 * round, a hostile primary against a standby, is repl-fuzzer.ts). Each session starts a fresh
 * standby (the real StandbyService and replication program over TCP, a recording target as its
 * export) behind the damaging relay (reply-damage.ts), and a Sender of a sync- or async-mode
 * export of an in-memory change log, as a primary's would be.
 *
 * Phase one, damaged: changes are appended in small bursts and each one's sync wait is awaited.
 * Checked: every wait ends within DEADLINE_MS (released by the standby's acknowledgement, or by
 * the standby leaving the sync set when it stops making sense), the sender never counts the
 * standby past the log's end, nothing escapes as an uncaught exception or unhandled rejection.
 * Phase two, a restarted primary (a new Sender over the same log) talking to the standby
 * directly: it must bring the standby to the log's end with every change applied once, in order,
 * and a sync wait released only once the standby holds its change. Replies are not checked for
 * truth within what was sent (a damaged "durable" that lies about a batch in flight cannot be
 * told from a true one, as with any peer); the standby refuses what does not follow its own
 * position, which phase two proves.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import type { Logger } from '../../server/logger.ts'
import { silentLogger } from '../../server/logger.ts'
import { SyncGate } from '../../server/replication/gate.ts'
import type { ReplicationMode } from '../../server/replication/gate.ts'
import { NodeState } from '../../server/replication/node-state.ts'
import { Sender } from '../../server/replication/sender.ts'
import { STANDBY_RPC_LIMITS, createReplicationProgram } from '../../server/replication/standby-program.ts'
import { StandbyService } from '../../server/replication/standby-service.ts'
import { RpcServer } from '../../server/rpc/server.ts'
import { ArraySource, RecordingTarget, changeNo, patternData, senderOptions } from '../server/replication/fixtures.ts'
import { EscapeWatch, settleWithin } from './fuzz-run.ts'
import { DamageRelay } from './reply-damage.ts'

/** A wait longer than this counts as a hang (the sender declares a silent standby dead after 500 ms). */
export const DEADLINE_MS = 10_000

export interface SenderSession {
  /** Seeds the relay's damage. */
  seed: number
  /** The share of reply records damaged (0: none; then every wait is released by the standby's acknowledgement). */
  rate: number
  mode: ReplicationMode
  /** Bursts of changes appended in phase one (each burst's waits awaited together). */
  bursts: number[]
}

export interface SenderFuzzTally {
  sessions: number
  changes: number
  /** Sessions whose phase one ended with the standby in the sync set, out of the sync ones. */
  syncMember: number
  /** What the senders counted: connections, gaps, replies that claimed changes never sent. */
  connects: number
  gaps: number
  violations: number
  deaths: number
  failures: number
  firstFailure: string | null
}

interface Standby {
  target: RecordingTarget
  port: number
  close(): Promise<void>
}

async function startStandby(dir: string): Promise<Standby> {
  const target = new RecordingTarget()
  const state = await NodeState.open(dir, { cluster: 'c1', node: 'standby-1', role: 'standby', epoch: 1n })
  const service = await StandbyService.open({ state, exports: [{ id: 1, path: '/a', target }], log: silentLogger, attachTimeoutMs: 2000 })
  const server = new RpcServer({ programs: [createReplicationProgram(service)], logger: silentLogger, limits: STANDBY_RPC_LIMITS })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  return {
    target,
    port,
    async close() {
      await server.close()
      await service.idle()
      await service.close()
    },
  }
}

function newSender(port: number, gate: SyncGate, source: ArraySource, mode: ReplicationMode, log: Logger): Sender {
  // A dropped APPEND reply holds sync waits appendTimeoutMs (30 s by default); the fuzz needs no more.
  const s = new Sender(senderOptions(port, [{ id: 1, path: '/a', mode, source, data: patternData }], { gate, log, appendTimeoutMs: 2000 }))
  s.start()
  return s
}

/** `p` settled within `ms`: true, or false when it did not. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return (await settleWithin(() => p, ms)) !== 'late'
}

export class SenderFuzzer {
  readonly tally: SenderFuzzTally = { sessions: 0, changes: 0, syncMember: 0, connects: 0, gaps: 0, violations: 0, deaths: 0, failures: 0, firstFailure: null }
  /** Relayed connections left open after the last session. */
  openConnections = 0
  /** Reply records the relays saw, and damaged. */
  replies = 0
  damaged = 0
  readonly #dir: string
  readonly #escapes = new EscapeWatch((what) => { this.#fail(what) })
  readonly #log: Logger

  /** `log`: the senders' logger (silent by default; a session's story when one fails). */
  constructor(log: Logger = silentLogger) {
    this.#log = log
    this.#dir = mkdtempSync(join(tmpdir(), 'tsnfs-sender-fuzz-'))
  }

  /** Uncaught exceptions and unhandled rejections while sessions ran (each one a failure). */
  get escaped(): number {
    return this.#escapes.count
  }

  #fail(what: string): void {
    this.tally.failures++
    this.tally.firstFailure ??= what
  }

  /** One session; true when every check held. */
  async run(s: SenderSession): Promise<boolean> {
    this.tally.sessions++
    const before = this.tally.failures
    const where = `session seed ${String(s.seed)} rate ${String(s.rate)} ${s.mode}`
    const dir = join(this.#dir, `s${String(this.tally.sessions)}`)
    const standby = await startStandby(dir)
    const relay = await DamageRelay.start(standby.port)
    relay.reseed(s.seed, s.rate)
    const source = new ArraySource()
    const gate = new SyncGate(silentLogger)
    const damaged = newSender(relay.port, gate, source, s.mode, this.#log)
    let restarted: Sender | null = null
    try {
      // Phase one: bursts of changes through the damaging relay.
      for (const n of s.bursts) {
        const waits: Promise<void>[] = []
        for (let i = 0; i < n; i++) waits.push(gate.wait(1, source.append(changeNo(source.changes.length + 1))))
        this.tally.changes += n
        if (!(await within(Promise.all(waits), DEADLINE_MS))) this.#fail(`${where}: a wait in a burst of ${String(n)} did not end within ${String(DEADLINE_MS)} ms`)
        if (damaged.status().acked > source.lastSeq()) this.#fail(`${where}: acknowledged ${String(damaged.status().acked)} past the log's end ${String(source.lastSeq())}`)
        // Room for heartbeats between bursts, whose replies are damaged too.
        await new Promise((r) => setTimeout(r, 10))
      }
      if (s.mode === 'sync' && gate.isMember(damaged.peer, 1)) this.tally.syncMember++
      this.#count(damaged)
      await damaged.stop()
      relay.cut()
      // Phase two: the primary restarted, the link clean.
      restarted = newSender(standby.port, gate, source, s.mode, this.#log)
      const last = source.append(changeNo(source.changes.length + 1))
      this.tally.changes++
      const caughtUp = new Promise<void>((resolve) => {
        const poll = (): void => {
          if (standby.target.position() >= last) resolve()
          else setTimeout(poll, 10)
        }
        poll()
      })
      if (!(await within(caughtUp, DEADLINE_MS))) this.#fail(`${where}: after the restart the standby is at ${String(standby.target.position())}, not ${String(last)}`)
      else {
        const want = Array.from({ length: Number(last) }, (_, i) => BigInt(i + 1)).join(',')
        const got = standby.target.seqs().join(',')
        if (got !== want) this.#fail(`${where}: the standby applied ${got}, not each of 1..${String(last)} once in order`)
        if (standby.target.violations.length > 0) this.#fail(`${where}: the standby was asked out of order: ${standby.target.violations.join('; ')}`)
        if (s.mode === 'sync') {
          // Once it is back in the sync set, a wait ends only when the standby holds the change.
          const member = await within(new Promise<void>((resolve) => {
            const poll = (): void => {
              if (restarted !== null && gate.isMember(restarted.peer, 1)) resolve()
              else setTimeout(poll, 10)
            }
            poll()
          }), DEADLINE_MS)
          if (!member) this.#fail(`${where}: the restarted sender did not join the sync set`)
          const seq = source.append(changeNo(source.changes.length + 1))
          this.tally.changes++
          let held = -1n
          if (!(await within(gate.wait(1, seq).then(() => { held = standby.target.position() }), DEADLINE_MS))) this.#fail(`${where}: the wait after the restart did not end`)
          else if (member && held < seq) this.#fail(`${where}: a sync wait for ${String(seq)} ended with the standby at ${String(held)}`)
        }
      }
      this.#count(restarted)
    } finally {
      await damaged.stop()
      await restarted?.stop()
      this.replies += relay.replies
      this.damaged += relay.damaged
      await relay.close()
      this.openConnections = relay.openConnections
      await standby.close()
      rmSync(dir, { recursive: true, force: true })
    }
    return this.tally.failures === before
  }

  #count(s: Sender): void {
    this.tally.connects += s.counters.connects
    this.tally.gaps += s.counters.gaps
    this.tally.violations += s.counters.violations
    this.tally.deaths += s.counters.deaths
  }

  close(): void {
    this.#escapes.close()
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

/** Sessions: a seed, a damage rate (a few with none, as the control), sync or async, 5 to 25 bursts of up to 8 changes. */
export function senderSessionArbitrary(): fc.Arbitrary<SenderSession> {
  return fc.record({
    seed: fc.integer({ min: 1, max: 0x7fff_ffff }),
    rate: fc.constantFrom(0, 0.05, 0.2, 0.5),
    mode: fc.constantFrom<ReplicationMode>('sync', 'async'),
    bursts: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 5, maxLength: 25 }),
  })
}
