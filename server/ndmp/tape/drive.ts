/*
 * A virtual tape drive with one cartridge loaded: a tape file (format.ts). Semantics follow the
 * NDMP TAPE service (draft-skardal-ndmpv4 §3.7) as the SDK's test-tape series checks them:
 *   - one opener at a time: the same session again DEVICE_OPENED_ERR, another DEVICE_BUSY_ERR,
 *     and so another process holding the tape's lock file (backup/tape-lock.ts);
 *   - READ mode is write-protected (PERMISSION_ERR); RDWR on a read-only file WRITE_PROTECT_ERR;
 *   - TAPE_READ returns one record, at most `count` bytes of it; the rest of a longer record is
 *     lost (§3.7.7, as SCSI variable-block reads); at a filemark EOF_ERR leaving the tape before
 *     it (v4; v3 passes it: `passFilemark`), at end of data EOM_ERR (the v3 handler says EOF_ERR);
 *   - a write erases everything after it; the first write into the early-warning zone fails
 *     with EOM_ERR (nothing written: the mover pauses EOM and rewrites it on the next tape);
 *     later writes succeed up to the capacity, past which EOM_ERR always;
 *   - MTIO FSF/BSF/FSR/BSR return the count not done (resid); FSR/BSR stop at a filemark;
 *     BSF leaves the tape on the BOT side of the filemark;
 *   - close after a record write writes a filemark (as a tape driver does on close).
 * Every operation runs one at a time (the mover and TAPE_* calls of one session never interleave).
 */
import { open, readFile, stat, unlink, writeFile } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { FRAME_MAGIC, FRAME_SIZE, HEADER_SIZE, KIND_FILEMARK, KIND_RECORD, MAX_RECORD, TapeFormatError, decodeFrame, decodeHeader, encodeFrame, encodeHeader, recordCrc } from './format.ts'
import type { TapeHeader } from './format.ts'
import { lockTape, TapeLockError } from '../../../backup/tape-lock.ts'
import type { TapeLock } from '../../../backup/tape-lock.ts'
import { RecordIndex } from './record-index.ts'
import { TapeError } from './tape-error.ts'

/** The frame index kept beside a tape file (record-index.ts). */
export const SIDECAR_SUFFIX = '.idx'

export type TapeMode = 'read' | 'rdwr' | 'raw'
export type MtioOp = 'FSF' | 'BSF' | 'FSR' | 'BSR' | 'REW' | 'EOF' | 'OFF' | 'TUR'

export interface TapeDriveOptions {
  /** For a blank (empty) tape file opened for writing: its capacity (0: unlimited) and early warning. */
  capacity?: number
  earlyWarning?: number
}

export interface TapeStatus {
  mode: TapeMode
  label: string
  /** Position: entry number, file number (filemarks before it), block number within the file. */
  position: number
  fileNum: number
  blockNo: number
  /** 0: unlimited (NDMP: total_space / space_remain invalid). */
  capacity: number
  spaceRemain: number
  /** The tape holds damage at the end of its readable data (its description), or null. */
  damage: string | null
}

export class TapeDrive {
  readonly path: string
  private readonly options: TapeDriveOptions
  private owner: object | null = null
  private fh: FileHandle | null = null
  private mode: TapeMode = 'read'
  private header: TapeHeader = { capacity: 0, earlyWarning: 0, label: '' }
  private index = new RecordIndex(HEADER_SIZE)
  private pos = 0
  private loaded = false
  private damage: TapeFormatError | null = null
  private warned = false
  private lastWasWrite = false
  /**
   * The block number is not known: after backing over a filemark (BSF, v3 BSR) or reading one
   * without passing it (v4), as the Linux st driver reports -1 there.
   */
  private blockUnknown = false
  private dirty = false
  /** The sidecar index is missing or stale: write it at close. */
  private needSidecar = false
  private chain: Promise<unknown> = Promise.resolve()
  /** The cross-process lock (backup/tape-lock.ts), held from open to close. */
  private lock: TapeLock | null = null

  constructor(path: string, options: TapeDriveOptions = {}) {
    this.path = path
    this.options = options
  }

  isOpenBy(owner: object): boolean {
    return this.owner === owner
  }

  get isOpen(): boolean {
    return this.owner !== null
  }

  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn)
    this.chain = p.catch(() => undefined)
    return p
  }

  open(owner: object, mode: TapeMode): Promise<void> {
    return this.run(async () => {
      if (this.owner === owner) throw new TapeError('DEVICE_OPENED_ERR', `${this.path} is already open in this session`)
      if (this.owner !== null) throw new TapeError('DEVICE_BUSY_ERR', `${this.path} is open in another session`)
      const st = await stat(this.path).catch(() => null)
      if (st === null || !st.isFile()) throw new TapeError('NO_DEVICE_ERR', `no tape device ${this.path}`)
      // Another process (a second server, a verify) may have the same cartridge.
      let lock: TapeLock
      try {
        lock = await lockTape(this.path, `NDMP tape service, ${mode === 'read' ? 'reading' : 'writing'}`)
      } catch (err) {
        if (err instanceof TapeLockError) throw new TapeError('DEVICE_BUSY_ERR', err.message, { cause: err })
        throw new TapeError('IO_ERR', `${this.path}: its lock: ${(err as Error).message}`, { cause: err })
      }
      let fh: FileHandle
      try {
        fh = await open(this.path, mode === 'read' ? 'r' : 'r+')
      } catch (err) {
        await lock.release()
        const code = (err as NodeJS.ErrnoException).code
        if (mode !== 'read' && (code === 'EACCES' || code === 'EROFS' || code === 'EPERM')) throw new TapeError('WRITE_PROTECT_ERR', `${this.path} is write-protected`)
        throw new TapeError('IO_ERR', `${this.path}: ${(err as Error).message}`, { cause: err })
      }
      try {
        await this.load(fh, st.size, mode)
      } catch (err) {
        await fh.close()
        await lock.release()
        if (err instanceof TapeFormatError) throw new TapeError('IO_ERR', err.message, { cause: err })
        throw err
      }
      this.lock = lock
      this.fh = fh
      this.owner = owner
      this.mode = mode
      this.pos = 0
      this.loaded = true
      this.warned = false
      this.blockUnknown = false
      this.dirty = false
      this.lastWasWrite = false
    })
  }

  /** Reads the header and indexes every frame; damage past the header stops the index there. */
  private async load(fh: FileHandle, size: number, mode: TapeMode): Promise<void> {
    this.index = new RecordIndex(HEADER_SIZE)
    this.damage = null
    this.needSidecar = false
    if (size === 0) {
      // A blank cartridge: formatted on the first open for writing.
      this.header = { capacity: this.options.capacity ?? 0, earlyWarning: this.options.earlyWarning ?? 0, label: '' }
      if (mode !== 'read') await fh.write(encodeHeader(this.header), 0, HEADER_SIZE, 0)
      return
    }
    const hb = Buffer.alloc(HEADER_SIZE)
    const { bytesRead } = await fh.read(hb, 0, HEADER_SIZE, 0)
    this.header = decodeHeader(this.path, hb.subarray(0, bytesRead))
    const mtimeMs = (await fh.stat()).mtimeMs
    const side = await readFile(this.path + SIDECAR_SUFFIX).catch(() => null)
    const known = side === null ? null : RecordIndex.fromSidecar(side, HEADER_SIZE, size, mtimeMs)
    if (known !== null) {
      this.index = known
      return
    }
    this.needSidecar = true
    const fb = Buffer.alloc(FRAME_SIZE)
    let off = HEADER_SIZE
    while (off < size) {
      const r = await fh.read(fb, 0, FRAME_SIZE, off)
      try {
        const f = decodeFrame(this.path, off, fb.subarray(0, r.bytesRead), size - off)
        this.index.append(f.kind, FRAME_SIZE + f.length, f.length)
        off += FRAME_SIZE + f.length
      } catch (err) {
        if (!(err instanceof TapeFormatError)) throw err
        this.damage = err
        break
      }
    }
  }

  close(owner: object): Promise<void> {
    return this.run(async () => {
      this.checkOwner(owner, false)
      const fh = this.fh
      try {
        if (this.lastWasWrite && this.mode !== 'read') await this.writeFrame(KIND_FILEMARK, null)
        if (this.dirty) await fh?.datasync()
        if ((this.dirty || this.needSidecar) && fh !== null && this.damage === null) await this.saveSidecar(fh)
      } finally {
        this.owner = null
        this.fh = null
        this.dirty = false
        await fh?.close()
        await this.lock?.release()
        this.lock = null
      }
    })
  }

  /** Best effort: without it the next open scans the frames again. */
  private async saveSidecar(fh: FileHandle): Promise<void> {
    try {
      const st = await fh.stat()
      await writeFile(this.path + SIDECAR_SUFFIX, this.index.toSidecar(st.size, st.mtimeMs))
      this.needSidecar = false
    } catch {
      // A read-only directory: scanning stays correct, only slower.
    }
  }

  /** Closes whatever the owner has open (its session ended); never throws. */
  async release(owner: object): Promise<void> {
    if (this.owner === owner) await this.close(owner).catch(() => undefined)
  }

  private checkOwner(owner: object, needTape = true): FileHandle {
    if (this.owner !== owner || this.fh === null) throw new TapeError('DEV_NOT_OPEN_ERR', 'the tape device is not open')
    if (needTape && !this.loaded) throw new TapeError('NO_TAPE_LOADED_ERR', `${this.path}: the tape was unloaded`)
    return this.fh
  }

  status(owner: object): TapeStatus {
    this.checkOwner(owner, false)
    const used = this.index.offsetOf(this.pos) - HEADER_SIZE
    return {
      mode: this.mode,
      label: this.header.label,
      position: this.pos,
      fileNum: this.index.fileOf(this.pos),
      blockNo: this.blockUnknown ? -1 : this.index.blockOf(this.pos),
      capacity: this.header.capacity,
      spaceRemain: this.header.capacity === 0 ? 0 : Math.max(0, this.header.capacity - used),
      damage: this.damage?.message ?? null,
    }
  }

  /** `passFilemark`: NDMP v3, where a read that meets a filemark leaves the tape past it. */
  read(owner: object, count: number, passFilemark = false): Promise<Buffer> {
    return this.run(async () => {
      const fh = this.checkOwner(owner)
      if (!Number.isInteger(count) || count < 0 || count > MAX_RECORD) throw new TapeError('ILLEGAL_ARGS_ERR', `read count ${String(count)} out of range 0..${String(MAX_RECORD)}`)
      this.lastWasWrite = false
      this.blockUnknown = false
      if (count === 0) return Buffer.alloc(0)
      return this.readRecord(fh, count, passFilemark)
    })
  }

  private async readRecord(fh: FileHandle, count: number, passFilemark: boolean): Promise<Buffer> {
    const p = this.pos
    if (p >= this.index.count) {
      if (this.damage !== null) throw new TapeError('IO_ERR', this.damage.message, { cause: this.damage })
      throw new TapeError('EOM_ERR', 'end of data')
    }
    if (this.index.isFilemark(p)) {
      if (passFilemark) this.pos++
      else this.blockUnknown = true
      throw new TapeError('EOF_ERR', 'filemark')
    }
    const length = this.index.lengthOf(p)
    const at = this.index.offsetOf(p)
    const frame = Buffer.alloc(FRAME_SIZE)
    await fh.read(frame, 0, FRAME_SIZE, at)
    // The index may come from the sidecar: the frame itself must agree with it.
    if (frame.readUInt32BE(0) !== FRAME_MAGIC || frame.readUInt32BE(4) !== KIND_RECORD || frame.readUInt32BE(8) !== length) {
      throw new TapeError('IO_ERR', `${this.path}: at byte ${String(at)}: bad frame header (damaged tape)`)
    }
    const data = Buffer.alloc(length)
    const { bytesRead } = await fh.read(data, 0, length, at + FRAME_SIZE)
    if (bytesRead !== length) throw new TapeError('IO_ERR', `${this.path}: at byte ${String(at)}: record cut short (${String(bytesRead)} of ${String(length)} bytes)`)
    if (recordCrc(data) !== frame.readUInt32BE(12)) throw new TapeError('IO_ERR', `${this.path}: at byte ${String(at)}: record ${String(this.index.blockOf(p))} of file ${String(this.index.fileOf(p))} fails its CRC (damaged tape)`)
    this.pos = p + 1
    return length <= count ? data : data.subarray(0, count)
  }

  write(owner: object, data: Buffer): Promise<void> {
    return this.run(async () => {
      this.checkOwner(owner)
      if (this.mode === 'read') throw new TapeError('PERMISSION_ERR', `${this.path} is open for reading`)
      if (data.length > MAX_RECORD) throw new TapeError('ILLEGAL_ARGS_ERR', `record of ${String(data.length)} bytes over ${String(MAX_RECORD)}`)
      if (data.length === 0) return
      const start = this.index.offsetOf(this.pos) - HEADER_SIZE
      const { capacity, earlyWarning } = this.header
      if (capacity > 0) {
        if (start + FRAME_SIZE + data.length > capacity) throw new TapeError('EOM_ERR', `${this.path}: end of medium (capacity ${String(capacity)} bytes)`)
        if (!this.warned && earlyWarning > 0 && start >= capacity - earlyWarning) {
          this.warned = true
          throw new TapeError('EOM_ERR', `${this.path}: early warning: ${String(capacity - start)} bytes left`)
        }
      }
      await this.writeFrame(KIND_RECORD, data)
      this.lastWasWrite = true
    })
  }

  /** Writes a frame at the position, erasing what followed. */
  private async writeFrame(kind: typeof KIND_RECORD | typeof KIND_FILEMARK, data: Buffer | null): Promise<void> {
    const fh = this.checkOwner(this.owner ?? {})
    const at = this.index.offsetOf(this.pos)
    const frame = encodeFrame(kind, data)
    const truncating = this.pos < this.index.count || this.damage !== null
    // The sidecar goes stale with the first write (its size/mtime check would catch it too).
    if (!this.dirty) await unlink(this.path + SIDECAR_SUFFIX).catch(() => undefined)
    try {
      await fh.writev(data === null ? [frame] : [frame, data], at)
      if (truncating) await fh.truncate(at + frame.length + (data?.length ?? 0))
    } catch (err) {
      throw new TapeError('IO_ERR', `${this.path}: at byte ${String(at)}: ${(err as Error).message}`, { cause: err })
    }
    this.index.truncate(this.pos)
    this.damage = null
    this.blockUnknown = false
    this.index.append(kind, frame.length + (data?.length ?? 0), data?.length ?? 0)
    this.pos++
    this.dirty = true
  }

  /** Returns the resid. `legacy`: NDMP v3's spacing, where FSR/BSR stop past a filemark they meet. */
  mtio(owner: object, op: MtioOp, count: number, legacy = false): Promise<number> {
    return this.run(async () => {
      this.checkOwner(owner, op !== 'OFF')
      if (!Number.isInteger(count) || count < 0) throw new TapeError('ILLEGAL_ARGS_ERR', `mtio count ${String(count)}`)
      const wrote = this.lastWasWrite
      this.lastWasWrite = false
      this.blockUnknown = false
      return this.move(op, count, wrote, legacy)
    })
  }

  private async move(op: MtioOp, count: number, wrote: boolean, legacy: boolean): Promise<number> {
    const ix = this.index
    const p = this.pos
    switch (op) {
      case 'REW':
        this.pos = 0
        this.warned = false
        return 0
      case 'TUR':
        return 0
      case 'OFF':
        // Rewind and unload: until it is closed and opened again the drive holds no tape.
        if (wrote && this.mode !== 'read' && this.loaded) await this.writeFrame(KIND_FILEMARK, null)
        this.pos = 0
        this.loaded = false
        return 0
      case 'FSF': {
        const f = ix.fileOf(p)
        const n = Math.min(count, ix.filemarks - f)
        if (n < count) this.pos = ix.count
        else if (n > 0) this.pos = ix.fileStart(f + n)
        return count - n
      }
      case 'BSF': {
        // Marks strictly before p; the tape stops on the BOT side of the n-th one.
        const before = ix.fileOf(p)
        const n = Math.min(count, before)
        if (n < count) {
          this.pos = 0
        } else if (n > 0) {
          this.pos = ix.fileStart(before - n + 1) - 1
          this.blockUnknown = true
        }
        return count - n
      }
      case 'FSR': {
        const end = ix.fileEnd(p)
        const n = Math.min(count, end - p)
        this.pos = p + n
        // v3 (SCSI SPACE): meeting a filemark ends the spacing just past it.
        if (legacy && n < count && end < ix.count) this.pos = end + 1
        return count - n
      }
      case 'BSR': {
        const start = ix.fileStart(ix.fileOf(p))
        const n = Math.min(count, p - start)
        this.pos = p - n
        if (legacy && n < count && start > 0) {
          this.pos = start - 1
          this.blockUnknown = true
        }
        return count - n
      }
      case 'EOF': {
        if (this.mode === 'read') throw new TapeError('PERMISSION_ERR', `${this.path} is open for reading`)
        for (let i = 0; i < count; i++) {
          const start = ix.offsetOf(this.pos) - HEADER_SIZE
          if (this.header.capacity > 0 && start + FRAME_SIZE > this.header.capacity) {
            throw new TapeError('EOM_ERR', `${this.path}: end of medium (capacity ${String(this.header.capacity)} bytes)`)
          }
          await this.writeFrame(KIND_FILEMARK, null)
        }
        // A filemark is where a real drive flushes its buffer.
        if (count > 0) await this.fh?.datasync()
        return 0
      }
    }
  }

  // The mover's direct positioning (no I/O): an entry number from status().position.

  /** Moves to entry p of the index (0 ≤ p ≤ end of data). */
  seekTo(owner: object, p: number): void {
    this.checkOwner(owner)
    if (!Number.isInteger(p) || p < 0 || p > this.index.count) throw new TapeError('ILLEGAL_ARGS_ERR', `position ${String(p)} outside the tape`)
    this.pos = p
    this.lastWasWrite = false
    this.blockUnknown = false
  }

  /** Whether entries [from, to) are all records (no filemark, not past end of data). */
  recordsBetween(from: number, to: number): boolean {
    if (to > this.index.count || from > to) return false
    return this.index.fileEnd(from) >= to
  }
}
