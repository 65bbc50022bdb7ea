/*
 * What the tsnfs volume subcommands share: their usage error, sizes, and making missing disks.
 */
import { stat } from 'node:fs/promises'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'

/** A mistake in the command line: printed with the usage, exit 2. */
export class VolumeUsageError extends Error {}

const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }

export function parseSize(flag: string, text: string): number {
  const m = /^(\d{1,15})([KMGT]?)$/i.exec(text.trim())
  const n = m === null ? NaN : Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toUpperCase()] ?? NaN)
  if (!Number.isSafeInteger(n) || n <= 0 || n % 512 !== 0) throw new VolumeUsageError(`${flag}: not a positive multiple of 512 bytes (digits, optionally K, M, G or T): ${text}`)
  return n
}

/** An image file of `size` bytes, sparse, when `path` does not exist; nothing when it does. */
export async function createMissing(path: string, size: number | undefined): Promise<void> {
  const exists = await stat(path).then(() => true, () => false)
  if (exists) return
  if (size === undefined) throw new VolumeUsageError(`${path} does not exist; --size is needed to create it`)
  const dev = await ImageFile.create(path, size)
  await dev.close()
}

