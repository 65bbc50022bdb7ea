/*
 * tsnfs volume export DISK... --to FILE [--snapshot SNAP]: the volume's bytes, or one of its
 * snapshots', as one linear image file, so independent judges (e2fsck -fn, debugfs, the kernel's
 * loop mount) check what the layers assemble without knowing anything of them (issue 14 item 7).
 * A snapshot is read through its copy-on-write view (vfs/volume/snapshot-device.ts): each chunk
 * from the store where the origin changed since, else from the origin, so the image is the file
 * system as it was when the snapshot was taken.
 */
import { open } from 'node:fs/promises'
import type { BlockDevice } from '../vfs/engine/blockdev/block-device.ts'
import { VolumeError } from '../vfs/volume/layer.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import type { OpenVolume } from '../vfs/volume/open-volume.ts'

const CHUNK = 1024 * 1024

/** What the image is read from: the volume's device (the origin, with a store), or the named snapshot. */
function sourceOf(v: OpenVolume, snapshot: string | undefined): BlockDevice {
  if (snapshot === undefined) return v.device
  if (v.origin === undefined) throw new VolumeError('VOLUME_SNAPSHOT', `volume ${v.config.name} has no snapshot store, so no snapshot ${snapshot}`)
  return v.origin.snapshot(snapshot)
}

/** Writes the image; resolves with the exit code (0) once it is synced, after printing what was written. */
export async function exportImage(paths: readonly string[], to: string, snapshot: string | undefined): Promise<number> {
  // Read-only: an export never resyncs or rebuilds, so it shows the members as they are.
  const v = await openVolume(paths, { readOnly: true })
  try {
    const source = sourceOf(v, snapshot)
    const fh = await open(to, 'w')
    let written = 0
    try {
      await fh.truncate(source.size)
      const buf = Buffer.alloc(CHUNK)
      for (let at = 0; at < source.size; at += CHUNK) {
        const chunk = buf.subarray(0, Math.min(CHUNK, source.size - at))
        await source.readInto(at, chunk)
        // All-zero chunks stay holes: the file is as sparse as the volume is empty.
        if (chunk.every((b) => b === 0)) continue
        await fh.write(chunk, 0, chunk.length, at)
        written += chunk.length
      }
      await fh.sync()
    } finally {
      await fh.close()
      if (source !== v.device) await source.close()
    }
    const what = snapshot === undefined ? `volume ${v.config.name}` : `snapshot ${snapshot} of volume ${v.config.name}`
    process.stdout.write(`${to}: ${source.size} bytes of ${what} (${written} bytes of data written)\n`)
    return 0
  } finally {
    await v.close()
  }
}
