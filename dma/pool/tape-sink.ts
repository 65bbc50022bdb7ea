/*
 * A ByteSink over a pool's tapes: writes each tape file up to its capacity, then asks for the
 * next (end of medium: the job pauses until continued) and goes on there. Used by drivers that
 * write the tape themselves (the file driver); with NDMP the tape agent writes and only the
 * EOM pause comes back to the job.
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { lockTape } from '../../backup/tape-lock.ts'
import type { TapeLock } from '../../backup/tape-lock.ts'
import type { ByteSink } from '../../backup/types.ts'
import type { TapeAccess, TapeHandle } from '../drivers/driver.ts'

export class TapeSink implements ByteSink {
  private readonly tapes: TapeAccess
  private tape: TapeHandle | null = null
  private fh: FileHandle | null = null
  private used = 0
  private lock: TapeLock | null = null

  constructor(tapes: TapeAccess) {
    this.tapes = tapes
  }

  private async load(t: TapeHandle): Promise<void> {
    await this.fh?.close()
    await this.lock?.release()
    this.lock = null
    // Held while this tape is written: another process's verify or writer gets TapeLockError.
    this.lock = await lockTape(t.path, 'backup (writing)')
    this.tape = t
    this.fh = await open(t.path, 'w')
    this.used = 0
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.tape === null) await this.load(await this.tapes.first())
    let off = 0
    while (off < chunk.length) {
      const tape = this.tape
      const fh = this.fh
      if (tape === null || fh === null) throw new Error('tape sink closed')
      const room = tape.capacity - this.used
      if (room <= 0) {
        await fh.close()
        this.fh = null
        await this.load(await this.tapes.next(this.used))
        continue
      }
      const n = Math.min(room, chunk.length - off)
      const { bytesWritten } = await fh.write(chunk, off, n, this.used)
      off += bytesWritten
      this.used += bytesWritten
    }
    if (this.tape !== null) await this.tapes.wrote(this.used)
  }

  async close(): Promise<void> {
    await this.fh?.close()
    this.fh = null
    await this.lock?.release()
    this.lock = null
  }
}
