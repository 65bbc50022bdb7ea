/*
 * The catalog's RestoreExecutor over NDMP v4, or v3 (dma/ndmp/v3.ts) (issue 16 §7; draft-skardal-ndmpv4-04 §3.7, §3.9):
 * for each backup of the plan's chain, in order, the tape agent opens the backup's first tape
 * (TAPE_OPEN read-only, MTIO REW and FSF to its file), its mover listens in WRITE mode (LOCAL when the
 * data agent is the same server, TCP for three-way), the data agent connects and runs
 * DATA_START_RECOVER: everything (a full restore: FILESYSTEM, or PREFIX elsewhere; deletions
 * applied by the data service) or the plan's objects as the nlist, each with its destination and
 * fh_info = its stream offset, with DIRECT=y, so the data service asks (NOTIFY_DATA_READ) for
 * those records only and this side answers each with MOVER_READ. A mover pausing (end of a tape's
 * data, or a seek into another tape of the backup) gets the tape that holds its seek position,
 * with the window set to that tape's part of the stream (§3.9.7 MOVER_SET_WINDOW).
 * A mover that accepts a MOVER_READ and then neither moves a byte nor sends a notice (the NDMP
 * SDK's, for reads shorter than a record: mover-stall.ts) is a stall: a direct access step is then
 * run again from the stream's start, for the names not restored yet; any other step fails.
 * A compressed backup (its job asked COMPRESS=) is read whole even for a partial restore: the
 * catalog's offsets are the plain stream's.
 * Later levels replace what the earlier ones wrote (OVERWRITE=y from the second step on); the
 * first step overwrites only when asked. The data service's path rules apply (never through a
 * symlink, never '..'). A halt or pause whose post never came is read from the agents' states
 * after a quiet spell (dma/ndmp/lost-posts.ts).
 */
import * as v4 from '../../xdr/generated/ndmp4.ts'
import { decodeBody } from '../../xdr/ndmp/message.ts'
import type { NdmpPost } from '../../client/ndmp/connection.ts'
import type { LogLevel, RestoreSummary } from '../../backup/types.ts'
import type { ExecuteOptions, PlanStep, RestoreExecutor, RestorePlan } from '../../backup/catalog/plan.ts'
import type { TapeFile } from '../../backup/catalog/rows.ts'
import type { Compression } from '../../backup/compress.ts'
import { DmaError } from '../errors.ts'
import { M, NdmpAgent } from '../ndmp/agent.ts'
import { hostPort } from '../schedule/export-spec.ts'
import { eventsFromState } from '../ndmp/lost-posts.ts'
import type { LastLook } from '../ndmp/lost-posts.ts'
import { MoverStall, STALL_MS, stallReason } from './mover-stall.ts'
import type { OutstandingRead } from './mover-stall.ts'

const WHOLE = 0xffffffffffffffffn
const INVALID_U_QUAD = 0xffffffffffffffffn

export interface NdmpRestoreOptions {
  /** For credentials (STATE/ndmp-auth). */
  stateDir: string
  /** The data agent and the export it backed up. */
  host: string
  port: number
  filesystem: string
  /** A separate tape agent HOST[:PORT] (three-way); absent: the data agent's own. */
  tapeAgent?: string
  /** The tape device to open for a label (the pool's tape file, as the backup opened it). */
  device: (label: string) => string
  /** The compression of a backup's stream, by its job id (null: plain tar; every step is one of our jobs, whose record says). */
  compression?: (jobId: string | null) => Compression | null
  /** Per NDMP call (default: the connection's, 30 s). */
  timeoutMs?: number
}

type Event =
  | { kind: 'data-read'; offset: bigint; length: bigint }
  | { kind: 'mover-paused'; reason: number; seek: bigint }
  | { kind: 'mover-halted'; reason: number }
  | { kind: 'data-halted'; reason: number }

/** Tape `i`'s part of the stream: from its start to the next tape's (or the end). */
function windowOf(tapes: readonly TapeFile[], i: number): { offset: bigint; length: bigint } {
  const t = tapes[i] as TapeFile
  const next = tapes[i + 1]
  return { offset: t.streamOffset, length: next === undefined ? WHOLE : next.streamOffset - t.streamOffset }
}

/** The tape holding stream byte `pos`: the last one starting at or before it. */
function tapeIndex(tapes: readonly TapeFile[], pos: bigint): number {
  let found = 0
  for (const [i, t] of tapes.entries()) if (t.streamOffset <= pos) found = i
  return found
}

export class NdmpRestoreExecutor implements RestoreExecutor {
  readonly name: string
  /** Stream bytes the movers sent (all steps): a direct access restore moves few. */
  bytesMoved = 0n
  /** MOVER_READs issued for the data service's NOTIFY_DATA_READs. */
  reads = 0
  readonly #o: NdmpRestoreOptions
  /** Set when the tape agent's mover stalled on a direct access read: which read (for the log). */
  #stalled: string | null = null

  constructor(o: NdmpRestoreOptions) {
    this.#o = o
    this.name = `ndmp ${o.host}:${o.port}${o.tapeAgent === undefined ? '' : ` (tape ${o.tapeAgent})`}`
  }

  async execute(plan: RestorePlan, opts: ExecuteOptions): Promise<RestoreSummary> {
    const total: RestoreSummary = { files: 0, dirs: 0, bytes: 0n, skipped: [], deleted: [] }
    const failed: string[] = []
    for (const [i, step] of plan.steps.entries()) {
      opts.signal?.throwIfAborted()
      const r = await this.#step(plan, step, opts, opts.overwrite || i > 0)
      total.files += r.ok
      total.bytes += r.moved
      failed.push(...r.failed)
    }
    if (failed.length > 0) throw new DmaError('DMA_RESTORE', `${failed.length} name(s) not restored: ${failed.slice(0, 20).join(', ')}`)
    return total
  }

  async #step(plan: RestorePlan, step: PlanStep, opts: ExecuteOptions, overwrite: boolean): Promise<{ ok: number; failed: string[]; moved: bigint }> {
    const o = this.#o
    const b = step.backup
    const tapes = b.tapes
    const first = tapes[0]
    if (first === undefined) throw new DmaError('DMA_RESTORE', `backup ${b.id} has no tape recorded`)
    const log = (level: LogLevel, message: string): void => opts.onLog?.(level, message)
    // A tape agent whose mover stalled on a direct access read (an earlier step) does so again:
    // the later steps of the chain read from the stream's start without waiting for it.
    const direct = !step.whole && (o.compression?.(b.jobId) ?? null) === null && this.#stalled === null
    const how = direct ? 'by direct access' : this.#stalled === null || (o.compression?.(b.jobId) ?? null) !== null ? 'from the whole stream' : `from the whole stream (the tape agent's mover stalled on direct access: ${this.#stalled})`
    log('info', `backup ${b.id} (level ${b.level}, tapes ${tapes.map((t) => t.label).join(',')}): ${step.whole ? 'the whole stream' : `${step.files.length} object(s) ${how}`}`)
    const done = new Set<string>()
    try {
      return await this.#attempt(plan, step, direct, done, overwrite, log, opts)
    } catch (err) {
      if (!(err instanceof MoverStall)) throw err
      if (!direct) throw new DmaError('DMA_RESTORE', `backup ${b.id}: ${err.message}`)
      opts.signal?.throwIfAborted()
      this.#stalled = `backup ${b.id}, MOVER_READ length ${err.read.length}`
      // Fresh connections (the stalled sessions are aborted and closed), the names not restored
      // yet, read from the stream's start: one MOVER_READ of the whole, which that mover serves.
      const rest = { ...step, files: step.files.filter((f) => !done.has(f.path)) }
      log('warn', `backup ${b.id}: ${err.message}: restoring ${rest.files.length} object(s) from the stream's start instead of by direct access`)
      const before = done.size
      const r = await this.#attempt(plan, rest, false, done, overwrite, log, opts)
      return { ...r, ok: r.ok + before }
    }
  }

  /** One run of a step on fresh connections to the tape and data agents. */
  async #attempt(plan: RestorePlan, step: PlanStep, direct: boolean, done: Set<string>, overwrite: boolean, log: (level: LogLevel, message: string) => void, opts: ExecuteOptions): Promise<{ ok: number; failed: string[]; moved: bigint }> {
    const o = this.#o
    const tapeAt = o.tapeAgent === undefined ? { host: o.host, port: o.port } : hostPort(o.tapeAgent)
    const same = tapeAt.host === o.host && tapeAt.port === o.port
    const tape = await NdmpAgent.forDma(o.stateDir, tapeAt.host, tapeAt.port, o.timeoutMs)
    let data: NdmpAgent = tape
    try {
      if (!same) data = await NdmpAgent.forDma(o.stateDir, o.host, o.port, o.timeoutMs)
      return await this.#run(plan, step, direct, done, tape, data, overwrite, log, opts.to, opts.signal)
    } finally {
      await tape.close().catch(() => undefined)
      if (data !== tape) await data.close().catch(() => undefined)
    }
  }

  async #run(plan: RestorePlan, step: PlanStep, direct: boolean, done: Set<string>, tape: NdmpAgent, data: NdmpAgent, overwrite: boolean, log: (level: LogLevel, message: string) => void, to: string | null, signal: AbortSignal | undefined): Promise<{ ok: number; failed: string[]; moved: bigint }> {
    const tapes = step.backup.tapes
    const events: Event[] = []
    let wake: (() => void) | null = null
    let ok = 0
    const failed: string[] = []
    const take = (agent: NdmpAgent, p: NdmpPost): void => {
      const e = this.#post(agent, p, log, (name, status) => {
        if (status === 0) {
          ok++
          done.add(name)
        } else failed.push(`${name} (${v4.ndmp4_recovery_statusNames[status] ?? status})`)
      })
      if (e !== null) {
        events.push(e)
        wake?.()
      }
    }
    tape.onPost((p) => { take(tape, p) })
    if (data !== tape) data.onPost((p) => { take(data, p) })
    const onAbort = (): void => {
      void data.dataAbort().catch(() => undefined)
      void tape.moverAbort().catch(() => undefined)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    let current = 0
    await this.#load(tape, tapes, 0)
    try {
      const c = tape.conn
      const addr = await tape.listen(v4.ndmp4_mover_mode.NDMP4_MOVER_MODE_WRITE, data === tape ? 'local' : 'tcp', windowOf(tapes, 0))
      await data.dataConnect(addr)
      const fs = this.#o.filesystem
      const env: v4.ndmp4_pval[] = [{ name: 'FILESYSTEM', value: fs }, { name: 'OVERWRITE', value: overwrite ? 'y' : 'n' }, { name: 'TYPE', value: 'tar' }]
      const nlist: v4.ndmp4_name[] = []
      // The catalog's offsets are those of the plain tar stream; a compressed stream has no
      // offset that maps to them, so it is read from its start (no DIRECT, no fh_info) and the
      // data service picks the nlist's names out of it. COMPRESS tells it so before any read.
      const compressed = this.#o.compression?.(step.backup.jobId) ?? null
      if (compressed !== null) env.push({ name: 'COMPRESS', value: compressed })
      // Said plain: the data service need not look at the stream's first block before seeking.
      else if (direct && this.#o.compression !== undefined) env.push({ name: 'COMPRESS', value: 'none' })
      if (step.whole) {
        if (to !== null) env.push({ name: 'PREFIX', value: to })
      } else {
        if (direct) env.push({ name: 'DIRECT', value: 'y' })
        else if (compressed !== null) log('info', `backup ${step.backup.id}: the stream is ${compressed}-compressed: read from its start (direct access needs the plain stream's offsets)`)
        const base = (to ?? fs).replace(/\/+$/, '')
        for (const f of step.files) {
          nlist.push({
            original_path: Buffer.from(f.path),
            destination_path: Buffer.from(`${base}${f.path}`),
            name: Buffer.alloc(0),
            other_name: Buffer.alloc(0),
            node: f.fileid,
            fh_info: f.tapeLabel === null || !direct ? INVALID_U_QUAD : f.streamOffset,
          })
        }
      }
      await data.conn.call(M.NDMP4_DATA_START_RECOVER, v4.ndmp4_data_start_recover_request, { env, nlist, butype_name: 'tar' }, v4.ndmp4_data_start_recover_reply)
      let dataHalt: number | null = null
      let moverHalt: number | null = null
      // The last MOVER_READ, until the next event: what the stall check looks at.
      let reading: OutstandingRead | null = null
      const last: LastLook = { moved: null, processed: null }
      let quiet = 0
      while (dataHalt === null) {
        const e = events.shift()
        if (e === undefined) {
          let timer: NodeJS.Timeout | undefined
          const woke = await new Promise<boolean>((resolve) => {
            wake = () => { resolve(true) }
            timer = setTimeout(() => { resolve(false) }, reading !== null ? STALL_MS : c.timeoutMs)
          })
          clearTimeout(timer)
          wake = null
          if (!woke && reading === null && events.length === 0) {
            // A quiet spell with no read outstanding: a post lost or undecodable (lost-posts.ts).
            // The states give a halt or pause; a lost NOTIFY_DATA_READ leaves both services
            // waiting with nothing moving, which no state undoes: a second quiet look ends the step.
            const seen = await eventsFromState(moverHalt === null ? tape : null, data, last)
            events.push(...seen.events)
            if (!seen.progressed && seen.events.length === 0 && quiet++ > 0) throw new DmaError('DMA_RESTORE', `backup ${step.backup.id}: no notice from the agents and nothing moved in ${2 * c.timeoutMs} ms`)
            if (seen.progressed) quiet = 0
            continue
          }
          if (!woke && reading !== null && events.length === 0) {
            const st = await tape.moverState()
            const why = stallReason(reading, st, STALL_MS)
            if (why !== null) {
              await data.dataAbort().catch(() => undefined)
              await tape.moverAbort().catch(() => undefined)
              throw new MoverStall(reading, why)
            }
            // The read was served (or the mover left ACTIVE): it is no longer outstanding. Were
            // the next NOTIFY_DATA_READ lost, looking at it for ever would wait for ever: the
            // quiet looks above take over.
            if (st.state !== v4.ndmp4_mover_state.NDMP4_MOVER_STATE_ACTIVE || st.bytes_left_to_read === 0n) reading = null
          }
          continue
        }
        reading = null
        quiet = 0
        if (e.kind === 'data-halted') dataHalt = e.reason
        else if (e.kind === 'mover-halted') moverHalt = e.reason
        else if (e.kind === 'data-read') {
          this.reads++
          try {
            await c.call(M.NDMP4_MOVER_READ, v4.ndmp4_mover_read_request, { offset: e.offset, length: e.length }, v4.ndmp4_mover_read_reply)
            reading = { offset: e.offset, length: e.length, left: null, moved: null }
          } catch (err) {
            // The data side may have finished without the bytes it asked for last (a kept file's
            // body is not read): its connection closed and the mover halted. Then the halt decides.
            if ((await tape.moverState()).state !== v4.ndmp4_mover_state.NDMP4_MOVER_STATE_HALTED) throw err
          }
        } else {
          // Paused: the seek position is on another tape of this backup, or past this tape's data.
          log('info', `mover paused (${v4.ndmp4_mover_pause_reasonNames[e.reason] ?? e.reason}) at stream byte ${e.seek}`)
          const i = tapeIndex(tapes, e.seek)
          const atEnd = e.reason === v4.ndmp4_mover_pause_reason.NDMP4_MOVER_PAUSE_EOF || e.reason === v4.ndmp4_mover_pause_reason.NDMP4_MOVER_PAUSE_EOM
          if (atEnd && i === current && current === tapes.length - 1) {
            // Nothing after this tape: the data side sees the end of the stream. It may have
            // ended first (the tar end of archive comes before the tape's end): then the mover
            // has halted already and refuses, which is the same end.
            await c.call(M.NDMP4_MOVER_CLOSE, null, undefined, v4.ndmp4_mover_close_reply).catch(() => undefined)
            continue
          }
          const next = atEnd && i === current ? current + 1 : i
          if (next !== current) {
            await tape.tapeClose()
            await this.#load(tape, tapes, next)
            current = next
          }
          await this.#window(tape, tapes, current)
          await tape.moverContinue()
        }
      }
      const st = await tape.moverState()
      this.bytesMoved += st.bytes_moved
      if (moverHalt === null && st.state !== v4.ndmp4_mover_state.NDMP4_MOVER_STATE_HALTED) await tape.moverAbort().catch(() => undefined)
      signal?.throwIfAborted()
      if (dataHalt !== v4.ndmp4_data_halt_reason.NDMP4_DATA_HALT_SUCCESSFUL) throw new DmaError('DMA_RESTORE', `backup ${step.backup.id}: the data service halted: ${v4.ndmp4_data_halt_reasonNames[dataHalt] ?? dataHalt}`)
      log('info', `backup ${step.backup.id}: ${st.bytes_moved} stream bytes moved, ${ok} name(s) restored${failed.length > 0 ? `, ${failed.length} failed` : ''} (${plan.filesystem})`)
      return { ok, failed, moved: st.bytes_moved }
    } finally {
      signal?.removeEventListener('abort', onAbort)
      await data.dataStop().catch(() => undefined)
      await tape.moverStop().catch(() => undefined)
      await tape.tapeClose().catch(() => undefined)
    }
  }

  /** Opens tape `i` read-only and spaces to the backup's file on it. */
  async #load(tape: NdmpAgent, tapes: readonly TapeFile[], i: number): Promise<void> {
    const t = tapes[i]
    if (t === undefined) throw new DmaError('DMA_RESTORE', `no tape ${i} in the backup`)
    await tape.conn.call(M.NDMP4_TAPE_OPEN, v4.ndmp4_tape_open_request, { device: this.#o.device(t.label), mode: v4.ndmp4_tape_open_mode.NDMP4_TAPE_READ_MODE }, v4.ndmp4_tape_open_reply)
    // A drive keeps its position across opens (a non-rewinding device; ndmjob's simulated one
    // is left at the end of what the backup wrote): rewind, then space to the file.
    await tape.conn.call(M.NDMP4_TAPE_MTIO, v4.ndmp4_tape_mtio_request, { tape_op: v4.ndmp4_tape_mtio_op.NDMP4_MTIO_REW, count: 1 }, v4.ndmp4_tape_mtio_reply)
    if (t.fileNumber > 0) await tape.conn.call(M.NDMP4_TAPE_MTIO, v4.ndmp4_tape_mtio_request, { tape_op: v4.ndmp4_tape_mtio_op.NDMP4_MTIO_FSF, count: t.fileNumber }, v4.ndmp4_tape_mtio_reply)
  }

  /** MOVER_SET_WINDOW to tape `i`'s part of the stream (the mover is PAUSED). */
  async #window(tape: NdmpAgent, tapes: readonly TapeFile[], i: number): Promise<void> {
    await tape.conn.call(M.NDMP4_MOVER_SET_WINDOW, v4.ndmp4_mover_set_window_request, windowOf(tapes, i), v4.ndmp4_mover_set_window_reply)
  }

  #post(agent: NdmpAgent, post: NdmpPost, log: (level: LogLevel, message: string) => void, file: (name: string, status: number) => void): Event | null {
    try {
      switch (post.code) {
        case M.NDMP4_LOG_MESSAGE: {
          const m = agent.logMessage(post)
          log(m.log_type === 2 ? 'error' : m.log_type === 3 ? 'warn' : 'info', `${agent.name}: ${m.entry}`)
          return null
        }
        case M.NDMP4_LOG_FILE: {
          const f = decodeBody(v4.ndmp4_log_file_post, post.body)
          file(f.name, f.recovery_status)
          return null
        }
        case M.NDMP4_NOTIFY_DATA_READ: {
          const r = decodeBody(v4.ndmp4_notify_data_read_post, post.body)
          return { kind: 'data-read', offset: r.offset, length: r.length }
        }
        case M.NDMP4_NOTIFY_MOVER_PAUSED: {
          const p = decodeBody(v4.ndmp4_notify_mover_paused_post, post.body)
          return { kind: 'mover-paused', reason: p.reason, seek: p.seek_position }
        }
        case M.NDMP4_NOTIFY_MOVER_HALTED:
          return { kind: 'mover-halted', reason: agent.haltReason(post) }
        case M.NDMP4_NOTIFY_DATA_HALTED:
          return { kind: 'data-halted', reason: agent.haltReason(post) }
        default:
          return null
      }
    } catch (err) {
      log('warn', `${agent.name}: a post (0x${post.code.toString(16)}) that does not decode: ${err instanceof Error ? err.message : String(err)}`)
      return null
    }
  }
}
