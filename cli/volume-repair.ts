/*
 * tsnfs volume scrub, fail and replace: the offline repairs of a volume. fail and replace act on
 * a member of the top layer (a mirror's leg, a RAID-5 member), which is every layout
 * `tsnfs volume create` makes.
 */
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { failTopMember, refuseMemberPath, replaceTopMember } from '../vfs/volume/member-repair.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { scrubLayers } from '../vfs/volume/scrub-volume.ts'
import { createMissing } from './volume-args.ts'

export async function scrubVolume(paths: string[], repair: boolean): Promise<number> {
  const v = await openVolume(paths, { readOnly: !repair })
  try {
    const layers = await scrubLayers(v.top, { repair })
    if (layers.length === 0) process.stdout.write(`volume ${v.config.name}: ${v.config.root.kind}, no redundancy to check\n`)
    for (const l of layers) process.stdout.write(`${l.line}\n`)
    const found = layers.reduce((sum, l) => sum + l.mismatches, 0)
    return found > 0 ? 1 : 0
  } finally {
    await v.close()
  }
}

export async function failMember(paths: string[], index: number): Promise<number> {
  const v = await openVolume(paths)
  try {
    const r = await failTopMember(v, index, 'failed by hand (tsnfs volume fail)')
    process.stdout.write(`volume ${v.config.name}: member ${index} (${v.config.members[index]?.uuid ?? ''}) marked failed, configuration seq ${r.config.seq}\n`)
    for (const u of r.unreachable) process.stderr.write(`  ${u.path}: could not take the configuration: ${u.error instanceof Error ? u.error.message : String(u.error)}\n`)
    return 0
  } finally {
    await v.close()
  }
}

/** Progress lines of a rebuild, one per whole percent, as offline and online replace print them. */
export function rebuildProgress(index: number, newPath: string, write: (line: string) => void): (done: number, total: number) => void {
  let shown = -1
  return (done, total) => {
    const pct = Math.floor((done * 100) / total)
    if (pct === shown) return
    shown = pct
    write(`rebuild of member ${index} onto ${newPath}: ${pct}% (${done} of ${total} bytes)\n`)
  }
}

export async function replaceOffline(paths: string[], index: number, newPath: string, opts: { rate: number; size: number | undefined }): Promise<number> {
  await createMissing(newPath, opts.size)
  const v = await openVolume(paths)
  let fresh: ImageFile | undefined
  try {
    refuseMemberPath(v, newPath)
    fresh = await ImageFile.open(newPath)
    const swapped = await replaceTopMember(v, index, { path: newPath, dev: fresh }, {
      rateBytesPerSec: opts.rate,
      onProgress: rebuildProgress(index, newPath, (line) => process.stderr.write(line)),
    })
    process.stdout.write(`volume ${v.config.name}: member ${index} rebuilt onto ${newPath} (${swapped.uuid}), configuration seq ${swapped.config.seq}\n`)
    return 0
  } finally {
    await v.close()
    await fresh?.close().catch(() => undefined)
  }
}
