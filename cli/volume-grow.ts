/*
 * tsnfs volume grow DISK... [--add NEWDISK...] [--size max|SIZE]: grows a volume offline
 * (vfs/volume/grow.ts). The volume is opened read-write first, which resyncs whatever a crash left
 * dirty, and closed; then the disks are opened bare, grown, and the volume assembled once more
 * read-only to report the new size. The file system on it grows with `tsnfs resize --volume`.
 */
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { assembleVolume } from '../vfs/volume/assemble.ts'
import { LAYERS } from '../vfs/volume/factory.ts'
import { growVolume } from '../vfs/volume/grow.ts'
import { VolumeError } from '../vfs/volume/layer.ts'
import type { Disk } from '../vfs/volume/member-io.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { VolumeUsageError } from './volume-args.ts'

export interface GrowArgs {
  add: readonly string[]
  size: 'max' | number | undefined
  force: boolean
}

async function sizeAndCheck(paths: readonly string[]): Promise<number> {
  const v = await openVolume(paths)
  try {
    const lost = v.missing[0]
    if (lost !== undefined) throw new VolumeError('VOLUME_INCOMPLETE', `grow needs every member present and in sync: ${lost.reason}`)
    return v.device.size
  } finally {
    await v.close()
  }
}

export async function growOffline(paths: readonly string[], args: GrowArgs): Promise<number> {
  if (args.add.length === 0 && args.size === undefined) throw new VolumeUsageError('volume grow: give --add NEWDISK... (span) or --size max|SIZE')
  const before = await sizeAndCheck(paths)
  const disks: Disk[] = []
  let result: { name: string; seq: number; grown: boolean }
  try {
    for (const path of paths) disks.push({ path, dev: await ImageFile.open(path) })
    const added: Disk[] = []
    for (const path of args.add) added.push({ path, dev: await ImageFile.open(path) })
    disks.push(...added)
    const volume = await assembleVolume(disks.slice(0, paths.length), LAYERS)
    const r = await growVolume(volume, { add: added, force: args.force, ...(args.size === undefined ? {} : { size: args.size }) })
    result = { name: r.config.name, seq: r.config.seq, grown: r.grown }
  } finally {
    for (const d of disks) await d.dev.close().catch(() => undefined)
  }
  const { name, seq, grown } = result
  if (!grown) {
    process.stdout.write(`volume ${name}: already ${before} bytes; nothing to grow\n`)
    return 0
  }
  const all = [...paths, ...args.add]
  const v = await openVolume(all, { readOnly: true })
  try {
    process.stdout.write(`volume ${name}: ${v.config.root.kind} grown from ${before} to ${v.device.size} bytes (configuration seq ${seq})\n`)
    process.stdout.write(`  grow its file system with: tsnfs resize --volume ${all.join(' ')}\n`)
  } finally {
    await v.close()
  }
  return 0
}
