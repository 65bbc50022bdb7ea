import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import { ImageFile } from '../engine/blockdev/image-file.ts'
import type { AssembledVolume } from './assemble.ts'
import { VolumeError } from './layer.ts'
import { refuseMemberPath } from './member-repair.ts'
import type { OriginDevice } from './snapshot.ts'

/**
 * A volume's bytes, or a snapshot's, as one linear image file (issue 14 item 7): what
 * `tsnfs volume export` writes offline and the server writes for a served volume's snapshot, so
 * e2fsck, debugfs and the kernel's loop mount judge what the layers assemble.
 */

const CHUNK = 1024 * 1024
/** Compared against with memcmp (Buffer.equals): a byte-by-byte callback over every MiB of a large volume costs seconds. */
const ZERO = Buffer.alloc(CHUNK)

/** Snapshot `name` of the volume whose origin layer is `origin` (absent: the volume keeps no snapshots), as a read-only device. */
export function snapshotSourceOf(volumeName: string, origin: OriginDevice | undefined, name: string): BlockDevice {
  if (origin === undefined) throw new VolumeError('VOLUME_SNAPSHOT', `volume ${volumeName} has no snapshot store, so no snapshot ${name}`)
  return origin.snapshot(name)
}

/**
 * Writes every byte of `source` to the image file `to` (made, or overwritten, at the source's
 * size, locked while written as any image file), all-zero chunks left as holes; flushed before it
 * resolves with the bytes of data written. `to` may not be one of `volume`'s disks: the export
 * would overwrite the member it reads.
 */
export async function writeImage(volume: AssembledVolume, source: BlockDevice, to: string): Promise<number> {
  refuseMemberPath(volume, to)
  const out = await ImageFile.create(to, source.size, { overwrite: true })
  let written = 0
  try {
    const buf = Buffer.alloc(CHUNK)
    for (let at = 0; at < source.size; at += CHUNK) {
      const chunk = buf.subarray(0, Math.min(CHUNK, source.size - at))
      await source.readInto(at, chunk)
      // The file is as sparse as the volume is empty.
      if (chunk.equals(ZERO.subarray(0, chunk.length))) continue
      await out.write(at, chunk)
      written += chunk.length
    }
    await out.flush()
  } finally {
    await out.close()
  }
  return written
}
