/*
 * tsnfs volume grow DISK... [--add NEWDISK...] [--size max|SIZE]: grows a volume offline
 * (vfs/volume/grow.ts). The volume is opened read-write first, which resyncs whatever a crash left
 * dirty, and closed; then the disks are opened bare, grown, and the volume assembled once more
 * read-only to report the new size. The file system on it grows with `tsnfs resize --volume`.
 * A member added to a stripe or raid5 is a reshape (vfs/volume/reshape.ts), progress on stderr.
 */
import { growDisks } from '../vfs/volume/grow.ts'
import { VolumeError } from '../vfs/volume/layer.ts'
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
  // A reshape (a member added to a stripe or raid5) reports its checkpoints on stderr, every tenth.
  let shown = -1
  const onProgress = (done: number, total: number): void => {
    const tenth = Math.floor((done * 10) / total)
    if (tenth === shown) return
    shown = tenth
    process.stderr.write(`reshape: ${done} of ${total} bytes in the new layout (${Math.floor((done * 100) / total)}%)\n`)
  }
  const r = await growDisks(paths, args.add, { force: args.force, reshape: { onProgress }, ...(args.size === undefined ? {} : { size: args.size }) })
  const { name, seq } = r.config
  if (!r.grown) {
    process.stdout.write(`volume ${name}: already ${before} bytes; nothing to grow\n`)
    return 0
  }
  const all = r.paths
  const v = await openVolume(all, { readOnly: true })
  try {
    process.stdout.write(`volume ${name}: ${v.config.root.kind} grown from ${before} to ${v.device.size} bytes (configuration seq ${seq})\n`)
    process.stdout.write(`  grow its file system with: tsnfs resize --volume ${all.join(' ')}\n`)
  } finally {
    await v.close()
  }
  return 0
}
