/**
 * The one interface the storage engine writes to. Image files, raw block devices, volumes and the
 * tests' recording and fault-injecting devices all implement it, so it stays small.
 *
 * Why byte ranges and not blocks: the file system's block size (1 KiB or 4 KiB for ext4) is a
 * property of the file system, not of the device, and ext4 itself reads its superblock at byte
 * 1024 before it knows the block size. The engine's buffer cache asks for whole blocks; the
 * device only sees (offset, length). Offsets are plain numbers: safe integers reach 8 PiB.
 *
 * Why both `read` and `readInto`: the buffer cache reads into blocks it owns (no allocation per
 * miss); everything else (superblock probe, tools) wants a fresh Buffer.
 *
 * Durability contract, which the crash checker (RecordingDevice) models exactly:
 * - a write that has resolved is visible to later reads, but durable only after a `flush()`
 *   that was *called after* the write resolved has itself resolved;
 * - writes not yet covered by a flush may reach the medium in any subset and any order, and
 *   one of them may be torn at a `sectorSize` boundary;
 * - the caller must not change `data` until `write` settles; the device keeps no reference to it.
 *
 * Every range outside [0, size) is an error with code BLOCKDEV_RANGE: no short reads at the end,
 * no growing the device by writing past it.
 */
export interface BlockDevice {
  /** Bytes, fixed for the life of the open device. */
  readonly size: number
  /** The unit a write is atomic in (a torn write keeps whole sectors); 512 unless the device says otherwise. */
  readonly sectorSize: number
  readonly readOnly: boolean
  read(offset: number, length: number): Promise<Buffer>
  readInto(offset: number, target: Uint8Array): Promise<void>
  write(offset: number, data: Uint8Array): Promise<void>
  /**
   * Optional: `chunks` back to back from `offset`, as one write (pwritev), with write's contract
   * for the whole. A layer gathering pieces of several buffers for one member (RAID-5's runs of
   * whole stripes) then hands them over without copying them together first.
   */
  writev?(offset: number, chunks: readonly Uint8Array[]): Promise<void>
  /**
   * Optional: fills `targets` back to back from `offset`, as one read (preadv), with readInto's
   * contract for the whole. RAID-5 reads a member's units of several stripes in one call with it.
   */
  readv?(offset: number, targets: readonly Uint8Array[]): Promise<void>
  /** Makes every write that resolved before this call durable (fdatasync for a file). */
  flush(): Promise<void>
  close(): Promise<void>
}

export type BlockDevErrorCode =
  | 'BLOCKDEV_RANGE' // offset/length outside the device, or not a safe non-negative integer
  | 'BLOCKDEV_CLOSED' // used after close()
  | 'BLOCKDEV_READONLY' // write to a device opened read-only
  | 'BLOCKDEV_LOCKED' // another process holds the image read-write
  | 'BLOCKDEV_SHORT_IO' // the OS returned fewer bytes than the device's size promised (file shrank underneath us)
  | 'BLOCKDEV_NOT_DEVICE' // the path is neither a regular file nor a block device
  | 'BLOCKDEV_SIZE' // a size that is not a positive multiple of the sector size
  | 'BLOCKDEV_CRASH_SPEC' // a crash state that the recorded log cannot produce

export class BlockDevError extends Error {
  readonly code: BlockDevErrorCode
  constructor(code: BlockDevErrorCode, message: string, options?: ErrorOptions) {
    super(`${code}: ${message}`, options)
    this.name = 'BlockDevError'
    this.code = code
  }
}

export const SECTOR_SIZE = 512

/** Throws BLOCKDEV_RANGE unless [offset, offset + length) lies inside a device of `size` bytes. */
export function checkRange(size: number, offset: number, length: number, what: string): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new BlockDevError('BLOCKDEV_RANGE', `${what} of ${length} bytes at offset ${offset} outside the device (${size} bytes)`)
  }
}

export function closedError(what: string): BlockDevError {
  return new BlockDevError('BLOCKDEV_CLOSED', `${what} on a closed device`)
}

export function readOnlyError(offset: number): BlockDevError {
  return new BlockDevError('BLOCKDEV_READONLY', `write at offset ${offset} to a device opened read-only`)
}
