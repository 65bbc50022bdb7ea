/*
 * tsnfs resize IMAGE [SIZE] | tsnfs resize --volume DISK... [--size SIZE]: grows the engine's
 * ext4 file system, offline, to SIZE bytes or to all of its device (vfs/engine/resize). An image
 * file shorter than SIZE is extended first (sparse). Shrinking is refused.
 */
import { stat, truncate } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import type { BlockDevice } from '../vfs/engine/blockdev/block-device.ts'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { growFileSystem } from '../vfs/engine/resize/grow-fs.ts'
import type { GrowResult } from '../vfs/engine/resize/grow-fs.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { wantsHelp } from './help.ts'
import { parseSize, VolumeUsageError } from './volume-args.ts'

export const RESIZE_USAGE = `usage: tsnfs resize IMAGE [SIZE]
       tsnfs resize --volume DISK... [--size SIZE]
  grow the ext4 file system of an image file, a block device or a volume (offline: nothing may
  have it open) to SIZE bytes (digits, optionally K, M, G or T), or to all of the device: new
  block groups are appended; descriptor blocks beyond the existing ones come from those the
  resize inode reserves. An image file shorter than SIZE is extended (sparse). Only grows.
  exit: 0 grown (or nothing to grow), 2 usage, 8 error (shrink, not clean, no room for descriptors)
`

function report(what: string, r: GrowResult): void {
  if (!r.grown) {
    process.stdout.write(`${what}: already ${r.oldBlocks} blocks of ${r.blockSize} bytes; nothing to grow\n`)
    return
  }
  const gdt = r.gdtBlocksAdded === 0 ? '' : `, ${r.gdtBlocksAdded} reserved GDT block${r.gdtBlocksAdded === 1 ? '' : 's'} taken`
  process.stdout.write(`${what}: ext4 grown from ${r.oldBlocks} to ${r.newBlocks} blocks of ${r.blockSize} bytes (${r.oldGroups} to ${r.newGroups} groups${gdt})\n`)
}

function growOn(dev: BlockDevice, size: number | undefined): Promise<GrowResult> {
  return growFileSystem(dev, size === undefined ? {} : { bytes: size })
}

async function growImage(image: string, size: number | undefined): Promise<void> {
  if (size !== undefined) {
    const st = await stat(image)
    if (st.isFile() && st.size < size) await truncate(image, size)
  }
  const dev = await ImageFile.open(image)
  try {
    report(image, await growOn(dev, size))
  } finally {
    await dev.close()
  }
}

async function growVolumeFs(disks: readonly string[], size: number | undefined): Promise<void> {
  const v = await openVolume(disks)
  try {
    report(`volume ${v.config.name}`, await growOn(v.device, size))
  } finally {
    await v.close()
  }
}

export async function resize(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(RESIZE_USAGE)
    return 0
  }
  try {
    let parsed
    try {
      parsed = parseArgs({ args: argv, options: { volume: { type: 'boolean' }, size: { type: 'string' } }, allowPositionals: true, strict: true })
    } catch (err) {
      throw new VolumeUsageError(err instanceof Error ? err.message : String(err))
    }
    const { positionals, values } = parsed
    if (values.volume === true) {
      if (positionals.length === 0) throw new VolumeUsageError('--volume needs DISK...')
      await growVolumeFs(positionals, values.size === undefined ? undefined : parseSize('--size', values.size))
      return 0
    }
    const [image, sizeText, ...extra] = positionals
    if (image === undefined) throw new VolumeUsageError('no IMAGE given')
    if (extra.length > 0) throw new VolumeUsageError(`unexpected ${extra.join(' ')} (several disks: --volume)`)
    if (sizeText !== undefined && values.size !== undefined) throw new VolumeUsageError('SIZE given twice')
    const text = sizeText ?? values.size
    await growImage(image, text === undefined ? undefined : parseSize('SIZE', text))
    return 0
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (err instanceof VolumeUsageError) {
      process.stderr.write(`tsnfs resize: ${message}\n${RESIZE_USAGE}`)
      return 2
    }
    process.stderr.write(`tsnfs resize: ${message}\n`)
    return 8
  }
}
