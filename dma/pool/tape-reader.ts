/*
 * A backup's stream as its pool's tape files on this host hold it, for verify (issue 16 §7). A
 * tape our NDMP tape service wrote (common/tape-format.ts) holds the stream as the records of its
 * first tape file, up to the filemark that TAPE_CLOSE wrote; a backup that went on past end of
 * medium continues with the next tape's records. A tape the file driver wrote holds the stream's
 * bytes as they are. A record failing its CRC is reported (tape, byte offset) and its bytes still
 * passed on, so the checksums say which backed-up file the damage hit; a frame that is not a
 * frame (or a cut record) ends the stream with a TapeFormatError naming the tape file and offset.
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { lockTape } from '../../backup/tape-lock.ts'
import type { TapeLock } from '../../backup/tape-lock.ts'
import type { ByteSource } from '../../backup/types.ts'
import { decodeFrame, decodeHeader, FRAME_SIZE, HEADER_SIZE, KIND_FILEMARK, recordCrc, TAPE_MAGIC, TapeFormatError } from '../../common/tape-format.ts'

/** A record whose CRC does not match its data: the tape file and the byte offset of its frame. */
export interface TapeDamage {
  tape: string
  offset: number
  message: string
}

interface Current {
  path: string
  fh: FileHandle
  lock: TapeLock
  size: number
  /** Next byte to read in the file. */
  pos: number
  /** Framed (our tape format) or the stream's bytes as they are. */
  framed: boolean
  /** Bytes of the current record not yet handed out. */
  record: Buffer | null
}

const RAW_READ = 1024 * 1024

export class TapeStreamSource implements ByteSource {
  readonly #paths: readonly string[]
  #next = 0
  #cur: Current | null = null
  /** Bytes of stream handed out. */
  bytes = 0n
  readonly damage: TapeDamage[] = []

  constructor(paths: readonly string[]) {
    this.#paths = paths
  }

  async read(max: number): Promise<Buffer | null> {
    for (;;) {
      const cur = this.#cur ?? (await this.#openNext())
      if (cur === null) return null
      const b = cur.framed ? await this.#fromRecord(cur, max) : await this.#raw(cur, max)
      if (b !== null) {
        this.bytes += BigInt(b.length)
        return b
      }
      await cur.fh.close()
      await cur.lock.release()
      this.#cur = null
    }
  }

  async close(): Promise<void> {
    await this.#cur?.fh.close()
    await this.#cur?.lock.release()
    this.#cur = null
  }

  async #openNext(): Promise<Current | null> {
    const path = this.#paths[this.#next++]
    if (path === undefined) return null
    // A tape another process writes (or reads) is not read under it: TapeLockError names the holder.
    const lock = await lockTape(path, 'verify (reading)')
    const fh = await open(path, 'r').catch(async (err: unknown) => {
      await lock.release()
      throw err
    })
    try {
      const size = (await fh.stat()).size
      const head = Buffer.alloc(HEADER_SIZE)
      const { bytesRead } = await fh.read(head, 0, HEADER_SIZE, 0)
      const framed = bytesRead >= TAPE_MAGIC.length && head.subarray(0, TAPE_MAGIC.length).equals(TAPE_MAGIC)
      if (framed) decodeHeader(path, head.subarray(0, bytesRead))
      this.#cur = { path, fh, lock, size, pos: framed ? HEADER_SIZE : 0, framed, record: null }
      return this.#cur
    } catch (err) {
      await fh.close()
      await lock.release()
      throw err
    }
  }

  async #raw(cur: Current, max: number): Promise<Buffer | null> {
    const want = Math.min(max, RAW_READ, cur.size - cur.pos)
    if (want <= 0) return null
    const buf = Buffer.allocUnsafe(want)
    const { bytesRead } = await cur.fh.read(buf, 0, want, cur.pos)
    if (bytesRead === 0) return null
    cur.pos += bytesRead
    return buf.subarray(0, bytesRead)
  }

  async #fromRecord(cur: Current, max: number): Promise<Buffer | null> {
    if (cur.record === null || cur.record.length === 0) {
      // End of data, or the filemark closing the backup's tape file: this tape is done.
      if (cur.pos >= cur.size) return null
      const fb = Buffer.alloc(FRAME_SIZE)
      const r = await cur.fh.read(fb, 0, FRAME_SIZE, cur.pos)
      const frame = decodeFrame(cur.path, cur.pos, fb.subarray(0, r.bytesRead), cur.size - cur.pos)
      if (frame.kind === KIND_FILEMARK) return null
      const data = Buffer.allocUnsafe(frame.length)
      const got = await cur.fh.read(data, 0, frame.length, cur.pos + FRAME_SIZE)
      if (got.bytesRead !== frame.length) throw new TapeFormatError(cur.path, cur.pos, `truncated record (${got.bytesRead} of ${frame.length} bytes)`)
      if (recordCrc(data) !== frame.crc) {
        this.damage.push({ tape: cur.path, offset: cur.pos, message: `${cur.path}: at byte ${cur.pos}: record of ${frame.length} bytes fails its CRC (damaged tape)` })
      }
      cur.pos += FRAME_SIZE + frame.length
      cur.record = data
    }
    const rec = cur.record
    const out = rec.subarray(0, max)
    cur.record = rec.length > max ? rec.subarray(max) : null
    return out
  }
}
