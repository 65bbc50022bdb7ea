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
