/*
 * tsnfs volume scrub, fail and replace: the offline repairs of a volume. fail and replace act on
 * a member disk wherever a mirror or RAID-5 holds it (vfs/volume/member-repair.ts): --member N
 * is its index in status, or its place in the layout ("0.1": member 1 of the stripe in leg 0).
 */
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import type { AssembledVolume } from '../vfs/volume/assemble.ts'
import { memberAtAddress } from '../vfs/volume/member-place.ts'
import { failVolumeMember, refuseMemberPath, replaceVolumeMember } from '../vfs/volume/member-repair.ts'
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

/** --member: an index, or a layout address ("0.1"). */
export function memberIndexIn(v: AssembledVolume, member: string): number {
  return member.includes('.') ? memberAtAddress(v, member) : Number(member)
}

export async function failMember(paths: string[], member: string): Promise<number> {
  const v = await openVolume(paths)
  try {
    const index = memberIndexIn(v, member)
    const r = await failVolumeMember(v, index, 'failed by hand (tsnfs volume fail)')
    process.stdout.write(`volume ${v.config.name}: member ${index} (${v.config.members[index]?.uuid ?? ''}) marked failed, configuration seq ${r.config.seq}\n`)
    if (!r.place.sole) process.stdout.write(`  out of service with it: ${r.lost}\n`)
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

export async function replaceOffline(paths: string[], member: string, newPath: string, opts: { rate: number; size: number | undefined }): Promise<number> {
  await createMissing(newPath, opts.size)
  const v = await openVolume(paths)
  let fresh: ImageFile | undefined
  try {
    const index = memberIndexIn(v, member)
    refuseMemberPath(v, newPath)
    fresh = await ImageFile.open(newPath)
    const swapped = await replaceVolumeMember(v, index, { path: newPath, dev: fresh }, {
      rateBytesPerSec: opts.rate,
      onProgress: rebuildProgress(index, newPath, (line) => process.stderr.write(line)),
    })
    process.stdout.write(`volume ${v.config.name}: member ${index} rebuilt onto ${newPath} (${swapped.uuid}), configuration seq ${swapped.config.seq}\n`)
    if (!swapped.place.sole) process.stdout.write(`  rebuilt whole: ${swapped.place.path} (the ${swapped.place.child.kind} holding it)\n`)
    return 0
  } finally {
    await v.close()
    await fresh?.close().catch(() => undefined)
  }
}
