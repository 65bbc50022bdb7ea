/*
 * The reader's view of an image: positioned reads of a known size. Kept this
 * small so the engine's block device (vfs/engine/blockdev/) can stand in for
 * the file later without the walker changing.
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { FormatError } from '../format/errors.ts'

export interface ReadAt {
  /** Exactly length bytes at offset; an Error with code EXT4_TRUNCATED past the end. */
  read(offset: number, length: number): Promise<Buffer>
  readonly size: number
}

/** An image file (or block device node) opened read-only. */
export class FileReadAt implements ReadAt {
  readonly size: number
  private readonly fh: FileHandle

  private constructor(fh: FileHandle, size: number) {
    this.fh = fh
    this.size = size
  }

  static async open(path: string): Promise<FileReadAt> {
    const fh = await open(path, 'r')
    try {
      // A block device's stat size is 0; its end is where a seek to the end lands, so ask for it by reading.
      const st = await fh.stat()
      const size = st.isBlockDevice() ? await deviceSize(fh) : st.size
      return new FileReadAt(fh, size)
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new FormatError('EXT4_TRUNCATED', `read of ${length} bytes at ${offset} past the image end (${this.size})`)
    }
    const buf = Buffer.allocUnsafe(length)
    let done = 0
    while (done < length) {
      const { bytesRead } = await this.fh.read(buf, done, length - done, offset + done)
      if (bytesRead === 0) throw new FormatError('EXT4_TRUNCATED', `image ended at ${offset + done} while reading ${length} bytes at ${offset}`)
      done += bytesRead
    }
    return buf
  }

  close(): Promise<void> {
    return this.fh.close()
  }
}

/** The size of a block device: binary search for the last readable byte (no ioctl in node:fs). */
async function deviceSize(fh: FileHandle): Promise<number> {
  const one = Buffer.alloc(1)
  let lo = 0
  let hi = 2 ** 50
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2)
    const { bytesRead } = await fh.read(one, 0, 1, mid - 1)
    if (bytesRead === 1) lo = mid
    else hi = mid - 1
  }
  return lo
}
