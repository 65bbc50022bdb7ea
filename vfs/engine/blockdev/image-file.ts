import { constants } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { open, stat } from 'node:fs/promises'
import { BlockDevError, checkRange, closedError, readOnlyError, SECTOR_SIZE } from './block-device.ts'
import type { BlockDevice } from './block-device.ts'
import { blockDeviceGeometry } from './device-geometry.ts'
import { acquireImageLock } from './image-lock.ts'
import { nativeIo } from '../../native-io.ts'
import type { ImageLock } from './image-lock.ts'

export interface ImageFileOptions {
  readOnly?: boolean
}

const noWait = nativeIo()
const NO_WAIT_MAX = 64 * 1024

/**
 * An ext4 image: a regular file or a raw block device, with positional I/O (no shared file
 * position, so concurrent reads and writes need no queue) and flush = fdatasync.
 *
 * Read-write opens are exclusive across processes: a regular file through a lock file beside it
 * (image-lock.ts), a block device through O_EXCL, which Linux enforces against mounts and other
 * exclusive openers. Read-only opens take no lock (like debugfs on a mounted file system: what
 * they see while a writer runs may be inconsistent).
 */
export class ImageFile implements BlockDevice {
  readonly path: string
  readonly kind: 'file' | 'block-device'
  readonly size: number
  readonly sectorSize: number
  readonly readOnly: boolean
  #fh: FileHandle | null
  #lock: ImageLock | null

  private constructor(path: string, kind: 'file' | 'block-device', fh: FileHandle, size: number, sectorSize: number, readOnly: boolean, lock: ImageLock | null) {
    this.path = path
    this.kind = kind
    this.#fh = fh
    this.size = size
    this.sectorSize = sectorSize
    this.readOnly = readOnly
    this.#lock = lock
  }

  static async open(path: string, options: ImageFileOptions = {}): Promise<ImageFile> {
    const readOnly = options.readOnly ?? false
    const st = await stat(path)
    if (st.isBlockDevice()) {
      const flags = readOnly ? constants.O_RDONLY : constants.O_RDWR | constants.O_EXCL
      let fh: FileHandle
      try {
        fh = await open(path, flags)
      } catch (err) {
        if (err instanceof Error && (err as { code?: unknown }).code === 'EBUSY') {
          throw new BlockDevError('BLOCKDEV_LOCKED', `${path} is mounted or open exclusively elsewhere`, { cause: err })
        }
        throw err
      }
      try {
        const { size, sectorSize } = await blockDeviceGeometry(fh, st.rdev)
        return new ImageFile(path, 'block-device', fh, size, sectorSize, readOnly, null)
      } catch (err) {
        await fh.close()
        throw err
      }
    }
    if (!st.isFile()) throw new BlockDevError('BLOCKDEV_NOT_DEVICE', `${path} is neither a regular file nor a block device`)
    const lock = readOnly ? null : await acquireImageLock(path)
    try {
      const fh = await open(path, readOnly ? 'r' : 'r+')
      const size = (await fh.stat()).size
      return new ImageFile(path, 'file', fh, size, SECTOR_SIZE, readOnly, lock)
    } catch (err) {
      await lock?.release()
      throw err
    }
  }

  /**
   * A new sparse image file of `size` bytes (ftruncate: no blocks allocated until written), open
   * read-write, for mkfs. Refuses an existing path unless `overwrite`, and never touches a block
   * device or an image another process has open.
   */
  static async create(path: string, size: number, options: { overwrite?: boolean } = {}): Promise<ImageFile> {
    if (!Number.isSafeInteger(size) || size <= 0 || size % SECTOR_SIZE !== 0) {
      throw new BlockDevError('BLOCKDEV_SIZE', `image size ${size} is not a positive multiple of ${SECTOR_SIZE}`)
    }
    const existing = await stat(path).catch(() => null)
    if (existing !== null && !existing.isFile()) throw new BlockDevError('BLOCKDEV_NOT_DEVICE', `${path} exists and is not a regular file; create makes image files`)
    // Lock before truncating, so an image in use elsewhere is never emptied under its writer.
    const lock = await acquireImageLock(path)
    try {
      const fh = await open(path, options.overwrite === true ? 'w+' : 'wx+', 0o644)
      try {
        await fh.truncate(size)
      } catch (err) {
        await fh.close()
        throw err
      }
      return new ImageFile(path, 'file', fh, size, SECTOR_SIZE, false, lock)
    } catch (err) {
      await lock.release()
      throw err
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this.size, offset, length, 'read')
    const out = Buffer.allocUnsafe(length)
    await this.#readFully(offset, out)
    return out
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    checkRange(this.size, offset, target.length, 'read')
    await this.#readFully(offset, target)
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this.size, offset, data.length, 'write')
    if (this.readOnly) throw readOnlyError(offset)
    const fh = this.#handle('write')
    // pwrite may write less than asked (signals, quotas); go on until all of it is written.
    let done = 0
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done)
      if (bytesWritten === 0) throw new BlockDevError('BLOCKDEV_SHORT_IO', `${this.path}: write at ${offset + done} wrote nothing`)
      done += bytesWritten
    }
  }

  async writev(offset: number, chunks: readonly Uint8Array[]): Promise<void> {
    const total = chunks.reduce((sum, c) => sum + c.length, 0)
    checkRange(this.size, offset, total, 'write')
    if (this.readOnly) throw readOnlyError(offset)
    const fh = this.#handle('write')
    // pwritev may write less than asked, as pwrite: go on from the first byte not written.
    let rest = chunks.filter((c) => c.length > 0)
    let done = 0
    while (done < total) {
      const { bytesWritten } = await fh.writev(rest, offset + done)
      if (bytesWritten === 0) throw new BlockDevError('BLOCKDEV_SHORT_IO', `${this.path}: write at ${offset + done} wrote nothing`)
      done += bytesWritten
      rest = dropBytes(rest, bytesWritten)
    }
  }

  async readv(offset: number, targets: readonly Uint8Array[]): Promise<void> {
    const total = targets.reduce((sum, c) => sum + c.length, 0)
    checkRange(this.size, offset, total, 'read')
    const fh = this.#handle('read')
    // On the thread pool always (no RWF_NOWAIT attempt): these are large, and their copy is the
    // cost, which there runs beside this thread. preadv may read less than asked, as pread.
    let rest = targets.filter((c) => c.length > 0)
    let done = 0
    while (done < total) {
      const { bytesRead } = await fh.readv(rest, offset + done)
      if (bytesRead === 0) throw new BlockDevError('BLOCKDEV_SHORT_IO', `${this.path}: read at ${offset + done} found the end before ${this.size} bytes`)
      done += bytesRead
      rest = dropBytes(rest, bytesRead)
    }
  }

  async flush(): Promise<void> {
    // fdatasync: the data and what is needed to read it back (the size), not the mtime.
    await this.#handle('flush').datasync()
  }

  async close(): Promise<void> {
    const fh = this.#fh
    if (fh === null) return
    this.#fh = null
    try {
      await fh.close()
    } finally {
      const lock = this.#lock
      this.#lock = null
      await lock?.release()
    }
  }

  async #readFully(offset: number, target: Uint8Array): Promise<void> {
    const fh = this.#handle('read')
    let done = 0
    // What the page cache holds comes synchronously (a few µs against a thread-pool round trip);
    // the rest, if any, through the asynchronous read, so a cold block never stalls the event loop.
    // Large reads stay on the pool: their copy is the cost, and there it runs beside this thread.
    if (noWait !== null && target.length <= NO_WAIT_MAX) {
      const n = noWait.readNoWait(fh.fd, target, 0, target.length, offset)
      if (n > 0) done = n
    }
    while (done < target.length) {
      const { bytesRead } = await fh.read(target, done, target.length - done, offset + done)
      // Inside our size the OS owes us every byte; none means the file shrank under us.
      if (bytesRead === 0) throw new BlockDevError('BLOCKDEV_SHORT_IO', `${this.path}: read at ${offset + done} found the end before ${this.size} bytes`)
      done += bytesRead
    }
  }

  #handle(what: string): FileHandle {
    if (this.#fh === null) throw closedError(what)
    return this.#fh
  }
}

/** `chunks` without their first `n` bytes. */
function dropBytes(chunks: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let skip = n
  for (const c of chunks) {
    if (skip >= c.length) {
      skip -= c.length
      continue
    }
    out.push(skip > 0 ? c.subarray(skip) : c)
    skip = 0
  }
  return out
}
