/*
 * The NDMP MOVER of one session (draft-skardal-ndmpv4 §3.9): moves the image stream between the
 * data connection and the session's open tape, in records of record_size bytes, within the window
 * [window_offset, window_offset + window_length) of the stream.
 *   IDLE --LISTEN--> LISTEN --peer connects--> ACTIVE;  IDLE --CONNECT--> ACTIVE
 *   ACTIVE --EOM / EOF / SEEK / MEDIA_ERROR / EOW--> PAUSED --CONTINUE--> ACTIVE
 *   LISTEN | ACTIVE | PAUSED --ABORT--> HALTED(ABORTED);  PAUSED --CLOSE--> HALTED(CONNECT_CLOSED)
 *   ACTIVE --stream ends / peer gone--> HALTED(CONNECT_CLOSED);  HALTED --STOP--> IDLE
 * READ mode (backup): records from the connection go to tape; the last one may be short (the
 * tape keeps variable records, so nothing is padded). A tape EOM pauses with the record kept;
 * CONTINUE writes it to the next tape. WRITE mode (restore): MOVER_READ(offset, length) asks for a
 * range; the tape is positioned by arithmetic on the record index (no reading from the start).
 * Every pause and halt is told to the DMA through `events` (NOTIFY_MOVER_PAUSED / _HALTED).
 */
import { DataConnectionError } from './connection-error.ts'
import type { DataEndpoint, DataListener, TcpAddr } from './connection.ts'
import { HaltReason, MoverError, MoverMode, MoverState, PauseReason, WINDOW_INFINITE } from './mover-types.ts'
import type { TapeDrive } from '../tape/drive.ts'
import { TapeError } from '../tape/tape-error.ts'
import { MAX_RECORD } from '../tape/format.ts'

export interface MoverTape {
  drive: TapeDrive
  owner: object
}

export interface MoverEvents {
  /** `detail`: for MEDIA_ERROR, the tape's message (it names the tape file and byte offset). */
  paused(reason: PauseReason, seekPosition: bigint, detail?: string): void
  halted(reason: HaltReason, message: string): void
}

export interface MoverStatus {
  state: MoverState
  mode: MoverMode
  pauseReason: PauseReason
  haltReason: HaltReason
  recordSize: number
  recordNum: number
  bytesMoved: bigint
  seekPosition: bigint
  bytesLeftToRead: bigint
  windowOffset: bigint
  windowLength: bigint
  /** null: no data connection; [] for LOCAL. */
  address: { kind: 'local' } | { kind: 'tcp'; addrs: TcpAddr[] } | null
}

export const DEFAULT_RECORD_SIZE = 10240

export class Mover {
  private readonly tape: () => MoverTape | null
  private readonly events: MoverEvents
  private state: MoverState = MoverState.IDLE
  private mode: MoverMode = MoverMode.READ
  private pauseReason: PauseReason = PauseReason.NA
  private haltReason: HaltReason = HaltReason.NA
  private recordSize = DEFAULT_RECORD_SIZE
  private recordNum = 0
  private bytesMoved = 0n
  private seekPosition = 0n
  private bytesLeftToRead = 0n
  private windowOffset = 0n
  private windowLength = WINDOW_INFINITE
  /** The tape position that holds windowOffset, taken when the window is first used. */
  private anchor: { pos: number; offset: bigint } | null = null
  private listener: DataListener | null = null
  private endpoint: DataEndpoint | null = null
  private address: MoverStatus['address'] = null
  private wake: (() => void) | null = null
  /** Bumped on every halt: a pump that wakes into a newer generation stops. */
  private generation = 0

  constructor(tape: () => MoverTape | null, events: MoverEvents) {
    this.tape = tape
    this.events = events
  }

  status(): MoverStatus {
    return {
      state: this.state,
      mode: this.mode,
      pauseReason: this.state === MoverState.PAUSED ? this.pauseReason : PauseReason.NA,
      haltReason: this.state === MoverState.HALTED ? this.haltReason : HaltReason.NA,
      recordSize: this.recordSize,
      recordNum: this.recordNum,
      bytesMoved: this.bytesMoved,
      seekPosition: this.seekPosition,
      bytesLeftToRead: this.bytesLeftToRead,
      windowOffset: this.windowOffset,
      windowLength: this.windowLength,
      address: this.address,
    }
  }

  /** LISTEN or ACTIVE: the tape service refuses TAPE_READ/WRITE/MTIO/CLOSE meanwhile. */
  get busy(): boolean {
    return this.state === MoverState.LISTEN || this.state === MoverState.ACTIVE
  }

  setRecordSize(len: number): void {
    if (this.state !== MoverState.IDLE) throw new MoverError('ILLEGAL_STATE_ERR', 'the record size is set in IDLE only')
    if (!Number.isInteger(len) || len < 1 || len > MAX_RECORD) throw new MoverError('ILLEGAL_ARGS_ERR', `record size ${String(len)} out of range 1..${String(MAX_RECORD)}`)
    this.recordSize = len
  }

  /** v4: IDLE or PAUSED; v3 also LISTEN (`allowInListen`). */
  setWindow(offset: bigint, length: bigint, allowInListen = false): void {
    const ok = this.state === MoverState.IDLE || this.state === MoverState.PAUSED || (allowInListen && this.state === MoverState.LISTEN)
    if (!ok) throw new MoverError('ILLEGAL_STATE_ERR', 'the window is set in IDLE or PAUSED')
    if (offset < 0n || length < 0n || offset > WINDOW_INFINITE || length > WINDOW_INFINITE) throw new MoverError('ILLEGAL_ARGS_ERR', 'window out of range')
    this.windowOffset = offset
    this.windowLength = length
    // A paused move keeps its place in the stream (a pending MOVER_READ's offset, a backup's next byte).
    if (this.state === MoverState.IDLE) this.seekPosition = offset
    this.anchor = null
  }

  /** Checks shared by LISTEN and CONNECT, in the order the SDK's test-mover expects. */
  private checkStart(mode: number): MoverTape {
    if (mode !== MoverMode.READ && mode !== MoverMode.WRITE) throw new MoverError('ILLEGAL_ARGS_ERR', `mover mode ${String(mode)}`)
    if (this.state !== MoverState.IDLE) throw new MoverError('ILLEGAL_STATE_ERR', 'the mover is not IDLE')
    const tape = this.tape()
    if (tape === null) throw new MoverError('DEV_NOT_OPEN_ERR', 'no tape is open in this session')
    // READ mode writes the tape.
    if (mode === MoverMode.READ && tape.drive.status(tape.owner).mode === 'read') throw new MoverError('PERMISSION_ERR', 'the tape is open for reading')
    return tape
  }

  /** MOVER_LISTEN: `open` makes the listener (TCP or LOCAL); the peer's connection starts the move. */
  listen(mode: number, open: () => DataListener | Promise<DataListener>, kind: 'tcp' | 'local'): Promise<DataListener> {
    this.checkStart(mode)
    this.state = MoverState.LISTEN
    this.mode = mode as MoverMode
    const gen = this.generation
    return Promise.resolve()
      .then(open)
      .then(
        (listener) => {
          if (gen !== this.generation) {
            listener.close()
            return listener
          }
          this.listener = listener
          this.address = kind === 'local' ? { kind } : { kind, addrs: listener.addresses }
          listener.accept().then(
            (ep) => {
              if (gen !== this.generation || this.state !== MoverState.LISTEN) ep.close()
              else this.activate(ep)
            },
            () => undefined,
          )
          return listener
        },
        (err: unknown) => {
          this.state = MoverState.IDLE
          throw new MoverError('CONNECT_ERR', err instanceof Error ? err.message : String(err), { cause: err })
        },
      )
  }

  /** MOVER_CONNECT: to the DATA service's listen address. */
  async connect(mode: number, dial: () => Promise<DataEndpoint> | DataEndpoint): Promise<void> {
    this.checkStart(mode)
    let ep: DataEndpoint
    try {
      ep = await dial()
    } catch (err) {
      throw new MoverError('CONNECT_ERR', err instanceof Error ? err.message : String(err), { cause: err })
    }
    if (this.state !== MoverState.IDLE) {
      ep.close()
      throw new MoverError('ILLEGAL_STATE_ERR', 'the mover left IDLE while connecting')
    }
    this.mode = mode as MoverMode
    this.address = ep.kind === 'local' ? { kind: 'local' } : { kind: 'tcp', addrs: [] }
    this.activate(ep)
  }

  private activate(ep: DataEndpoint): void {
    this.endpoint = ep
    this.listener = null
    this.state = MoverState.ACTIVE
    const gen = this.generation
    const pump = this.mode === MoverMode.READ ? this.backup(ep, gen) : this.restore(ep, gen)
    pump.catch((err: unknown) => {
      if (gen === this.generation) this.halt(HaltReason.INTERNAL_ERROR, err instanceof Error ? err.message : String(err))
    })
    void ep.closed.then(() => {
      // A restore's peer that goes away while we wait for MOVER_READ (or are paused) ends the move.
      if (gen === this.generation && this.mode === MoverMode.WRITE && this.state !== MoverState.HALTED) this.halt(HaltReason.CONNECT_CLOSED, 'the data connection closed')
    })
  }

  continue(): void {
    if (this.state !== MoverState.PAUSED) throw new MoverError('ILLEGAL_STATE_ERR', 'the mover is not PAUSED')
    if (this.tape() === null) throw new MoverError('DEV_NOT_OPEN_ERR', 'no tape is open in this session')
    this.state = MoverState.ACTIVE
    this.pauseReason = PauseReason.NA
    const w = this.wake
    this.wake = null
    w?.()
  }

  abort(): void {
    if (this.state === MoverState.IDLE || this.state === MoverState.HALTED) throw new MoverError('ILLEGAL_STATE_ERR', 'nothing to abort')
    this.halt(HaltReason.ABORTED, 'aborted by the DMA')
  }

  /** MOVER_CLOSE: the DMA ends a paused move (no more tape); the data side sees end of stream. */
  close(): void {
    if (this.state !== MoverState.PAUSED) throw new MoverError('ILLEGAL_STATE_ERR', 'the mover is not PAUSED')
    this.halt(HaltReason.CONNECT_CLOSED, 'closed by the DMA')
  }

  stop(): void {
    if (this.state !== MoverState.HALTED) throw new MoverError('ILLEGAL_STATE_ERR', 'the mover is not HALTED')
    this.state = MoverState.IDLE
    this.haltReason = HaltReason.NA
    this.recordNum = 0
    this.bytesMoved = 0n
    this.seekPosition = 0n
    this.bytesLeftToRead = 0n
    this.windowOffset = 0n
    this.windowLength = WINDOW_INFINITE
    this.anchor = null
    this.address = null
  }

  /** MOVER_READ (restore, direct access): the stream bytes [offset, offset + length) are wanted next. */
  read(offset: bigint, length: bigint): void {
    if (this.state !== MoverState.ACTIVE || this.mode !== MoverMode.WRITE) throw new MoverError('ILLEGAL_STATE_ERR', 'MOVER_READ needs an ACTIVE mover in WRITE mode')
    if (this.bytesLeftToRead > 0n) throw new MoverError('READ_IN_PROGRESS_ERR', 'a read is in progress')
    if (offset < 0n || length <= 0n) throw new MoverError('ILLEGAL_ARGS_ERR', 'read range')
    this.seekPosition = offset
    this.bytesLeftToRead = length
    const w = this.wake
    this.wake = null
    w?.()
  }

  /** Ends everything (the session closed); never throws. */
  shutdown(): void {
    if (this.state !== MoverState.IDLE && this.state !== MoverState.HALTED) this.halt(HaltReason.ABORTED, 'the session ended')
  }

  private halt(reason: HaltReason, message: string): void {
    this.generation++
    this.state = MoverState.HALTED
    this.haltReason = reason
    this.pauseReason = PauseReason.NA
    this.bytesLeftToRead = 0n
    this.listener?.close()
    this.listener = null
    const ep = this.endpoint
    this.endpoint = null
    if (ep !== null) {
      // A finished backup ends its side cleanly; anything else tears the connection down.
      if (reason === HaltReason.CONNECT_CLOSED) void ep.end().catch(() => undefined).finally(() => { ep.close() })
      else ep.close(new DataConnectionError('DATA_CONN_CLOSED', `the mover halted: ${message}`))
    }
    const w = this.wake
    this.wake = null
    w?.()
    this.events.halted(reason, message)
  }

  /** Pauses and waits for CONTINUE; false when the move ended meanwhile (halt). */
  private async pause(reason: PauseReason, gen: number, detail?: string): Promise<boolean> {
    this.state = MoverState.PAUSED
    this.pauseReason = reason
    await new Promise<void>((resolve) => {
      this.wake = resolve
      if (detail === undefined) this.events.paused(reason, this.seekPosition)
      else this.events.paused(reason, this.seekPosition, detail)
    })
    return gen === this.generation
  }

  /** Sleeps until MOVER_READ or a halt (restore between requests). */
  private idle(gen: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      this.wake = () => {
        resolve(gen === this.generation)
      }
    })
  }

  private currentTape(): MoverTape {
    const t = this.tape()
    if (t === null) throw new MoverError('DEV_NOT_OPEN_ERR', 'the tape was closed under the mover')
    return t
  }

  private windowEnd(): bigint {
    return this.windowLength === WINDOW_INFINITE ? WINDOW_INFINITE : this.windowOffset + this.windowLength
  }

  private async backup(ep: DataEndpoint, gen: number): Promise<void> {
    let record = Buffer.allocUnsafe(this.recordSize)
    let fill = 0
    for (;;) {
      let chunk: Buffer | null
      try {
        chunk = await ep.read(this.recordSize - fill)
      } catch (err) {
        if (gen === this.generation) this.halt(HaltReason.CONNECT_ERROR, (err as Error).message)
        return
      }
      if (gen !== this.generation) return
      if (chunk === null) {
        if (fill > 0 && !(await this.writeRecord(record.subarray(0, fill), gen))) return
        this.halt(HaltReason.CONNECT_CLOSED, 'the data connection ended')
        return
      }
      chunk.copy(record, fill)
      fill += chunk.length
      if (fill === this.recordSize) {
        if (!(await this.writeRecord(record, gen))) return
        record = Buffer.allocUnsafe(this.recordSize)
        fill = 0
      }
    }
  }

  private async writeRecord(rec: Buffer, gen: number): Promise<boolean> {
    for (;;) {
      if (gen !== this.generation) return false
      if (this.seekPosition >= this.windowEnd()) {
        if (!(await this.pause(PauseReason.EOW, gen))) return false
        continue
      }
      const tape = this.currentTape()
      try {
        await tape.drive.write(tape.owner, rec)
      } catch (err) {
        if (!(err instanceof TapeError)) throw err
        if (gen !== this.generation) return false
        const reason = err.code === 'EOM_ERR' ? PauseReason.EOM : PauseReason.MEDIA_ERROR
        if (!(await this.pause(reason, gen, reason === PauseReason.MEDIA_ERROR ? err.message : undefined))) return false
        continue
      }
      this.recordNum++
      this.bytesMoved += BigInt(rec.length)
      this.seekPosition += BigInt(rec.length)
      return true
    }
  }

  private async restore(ep: DataEndpoint, gen: number): Promise<void> {
    for (;;) {
      if (this.bytesLeftToRead === 0n && !(await this.idle(gen))) return
      if (gen !== this.generation) return
      if (this.bytesLeftToRead === 0n) continue
      if (!(await this.sendRange(ep, gen))) return
    }
  }

  /** Sends bytesLeftToRead bytes from seekPosition, pausing where the tape or window runs out. */
  private async sendRange(ep: DataEndpoint, gen: number): Promise<boolean> {
    let skip = await this.position(gen)
    if (skip === null) return false
    while (this.bytesLeftToRead > 0n) {
      if (this.seekPosition >= this.windowEnd()) {
        if (!(await this.pause(PauseReason.EOW, gen))) return false
        if ((skip = await this.position(gen)) === null) return false
        continue
      }
      const tape = this.currentTape()
      let rec: Buffer
      try {
        rec = await tape.drive.read(tape.owner, this.recordSize)
      } catch (err) {
        if (!(err instanceof TapeError)) throw err
        if (gen !== this.generation) return false
        const reason = err.code === 'EOF_ERR' ? PauseReason.EOF : err.code === 'EOM_ERR' ? PauseReason.EOM : PauseReason.MEDIA_ERROR
        if (!(await this.pause(reason, gen, reason === PauseReason.MEDIA_ERROR ? err.message : undefined))) return false
        if ((skip = await this.position(gen)) === null) return false
        continue
      }
      this.recordNum++
      let data = rec.subarray(skip)
      skip = 0
      const room = this.windowEnd() - this.seekPosition
      const want = this.bytesLeftToRead < room ? this.bytesLeftToRead : room
      if (BigInt(data.length) > want) data = data.subarray(0, Number(want))
      try {
        await ep.write(data)
      } catch {
        if (gen === this.generation) this.halt(HaltReason.CONNECT_CLOSED, 'the data connection closed')
        return false
      }
      if (gen !== this.generation) return false
      this.seekPosition += BigInt(data.length)
      this.bytesLeftToRead -= BigInt(data.length)
      this.bytesMoved += BigInt(data.length)
    }
    return true
  }

  /**
   * Puts the tape on the record holding seekPosition; returns the bytes to skip in it, or null if
   * the move ended. Outside the window (or past this tape's part of it) the mover pauses SEEK:
   * the DMA loads the right tape, sets the window and continues.
   */
  private async position(gen: number): Promise<number | null> {
    for (;;) {
      if (gen !== this.generation) return null
      const tape = this.currentTape()
      const st = tape.drive.status(tape.owner)
      this.anchor ??= { pos: st.position, offset: this.windowOffset }
      const inWindow = this.seekPosition >= this.windowOffset && this.seekPosition < this.windowEnd()
      const rel = this.seekPosition - this.anchor.offset
      const target = this.anchor.pos + Number(rel / BigInt(this.recordSize))
      if (inWindow && rel >= 0n && tape.drive.recordsBetween(this.anchor.pos, target)) {
        if (st.position !== target) tape.drive.seekTo(tape.owner, target)
        return Number(rel % BigInt(this.recordSize))
      }
      if (!(await this.pause(PauseReason.SEEK, gen))) return null
    }
  }
}
