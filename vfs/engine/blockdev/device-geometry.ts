import type { FileHandle } from 'node:fs/promises'
import { readFile } from 'node:fs/promises'
import { BlockDevError, SECTOR_SIZE } from './block-device.ts'

export interface Geometry {
  size: number
  sectorSize: number
}

/**
 * Size and logical sector size of a block device without ioctls (node has none): sysfs first,
 * /sys/dev/block/<major>:<minor>/size, which counts 512-byte units whatever the sector size;
 * where sysfs is missing, the size found by probing reads (a read at or past the end returns 0
 * bytes), in 512-byte steps.
 */
export async function blockDeviceGeometry(fh: FileHandle, rdev: number): Promise<Geometry> {
  const dir = `/sys/dev/block/${majorOf(rdev)}:${minorOf(rdev)}`
  const sectors = await readNumber(`${dir}/size`)
  // A partition has no queue/ of its own; its disk's is one level up.
  const sectorSize = (await readNumber(`${dir}/queue/logical_block_size`)) ?? (await readNumber(`${dir}/../queue/logical_block_size`)) ?? SECTOR_SIZE
  const size = sectors !== null ? sectors * 512 : await probeSize(fh)
  if (!Number.isSafeInteger(size)) throw new BlockDevError('BLOCKDEV_SIZE', `block device ${dir} reports ${sectors} sectors`)
  return { size, sectorSize }
}

// glibc's gnu_dev_major/minor: the 64-bit dev_t splits each number across two fields.
function majorOf(rdev: number): number {
  const d = BigInt(rdev)
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn))
}

function minorOf(rdev: number): number {
  const d = BigInt(rdev)
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn))
}

async function readNumber(path: string): Promise<number | null> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    return null
  }
  const n = Number(text.trim())
  return Number.isSafeInteger(n) && n > 0 ? n : null
}

/** The smallest 512-byte boundary at which a one-byte read returns nothing: the device's end. */
export async function probeSize(fh: FileHandle): Promise<number> {
  const one = Buffer.alloc(1)
  const readsAt = async (unit: number): Promise<boolean> => (await fh.read(one, 0, 1, unit * 512)).bytesRead === 1
  if (!(await readsAt(0))) return 0
  // Double until past the end, then bisect: about 2 * log2(sectors) reads, 80 at most for 8 PiB.
  let lo = 0
  let hi = 1
  while (await readsAt(hi)) {
    lo = hi
    hi *= 2
    if (hi > Number.MAX_SAFE_INTEGER / 512) throw new BlockDevError('BLOCKDEV_SIZE', 'device size probe found no end')
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (await readsAt(mid)) lo = mid
    else hi = mid
  }
  return hi * 512
}
