/*
 * A volume of image files with the engine's file system on it, made in-process (no CLI starts):
 * the setup of the tests that serve, fail and rebuild a volume.
 */
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { makeFileSystem } from '../../vfs/engine/mkfs/mkfs.ts'
import type { ParentKind } from '../../vfs/volume/config.ts'
import { createVolume } from '../../vfs/volume/create-volume.ts'
import { openVolume } from '../../vfs/volume/open-volume.ts'

/** Creates each of `disks` as a sparse image of `bytes`, makes them volume `name` of `level`, and formats it. */
export async function formattedVolume(name: string, level: ParentKind, disks: readonly string[], bytes: number): Promise<void> {
  const open = []
  for (const p of disks) open.push({ path: p, dev: await ImageFile.create(p, bytes) })
  try {
    await createVolume(name, level, open)
  } finally {
    for (const d of open) await d.dev.close()
  }
  const v = await openVolume(disks)
  try {
    await makeFileSystem(v.device, { zeroed: true })
  } finally {
    await v.close()
  }
}

/** The volume `disks` assemble (read-only, degraded as they may be) written to `image`, as `tsnfs volume export` does, in-process. */
export async function exportImage(disks: readonly string[], image: string): Promise<void> {
  const v = await openVolume(disks, { readOnly: true })
  try {
    const out = await ImageFile.create(image, v.device.size)
    try {
      const chunk = Buffer.alloc(1024 * 1024)
      for (let at = 0; at < v.device.size; at += chunk.length) {
        const part = chunk.subarray(0, Math.min(chunk.length, v.device.size - at))
        await v.device.readInto(at, part)
        await out.write(at, part)
      }
      await out.flush()
    } finally {
      await out.close()
    }
  } finally {
    await v.close()
  }
}
