/*
 * tsnfs volume scrub, fail and replace: the offline repairs of a volume. fail and replace act on
 * a member of the top layer (a mirror's leg, a RAID-5 member), which is every layout
 * `tsnfs volume create` makes.
 */
import { resolve } from 'node:path'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { redundantLayers, LAYERS } from '../vfs/volume/factory.ts'
import { VolumeError } from '../vfs/volume/layer.ts'
import { MEMBER_RESERVED } from '../vfs/volume/member-format.ts'
import { rebuildMember, replaceMember, setMemberState } from '../vfs/volume/member-state.ts'
import { MirrorDevice } from '../vfs/volume/mirror.ts'
import type { OpenVolume } from '../vfs/volume/open-volume.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { Raid5Device } from '../vfs/volume/raid5.ts'
import { createMissing } from './volume-args.ts'

export async function scrubVolume(paths: string[], repair: boolean): Promise<number> {
  const v = await openVolume(paths, { readOnly: !repair })
  try {
    let found = 0
    const layers = redundantLayers(v.device)
    if (layers.length === 0) process.stdout.write(`volume ${v.config.name}: ${v.config.root.kind}, no redundancy to check\n`)
    for (const layer of layers) {
      if (layer instanceof Raid5Device) {
        const r = await layer.scrub({ repair })
        found += r.mismatches
        process.stdout.write(`raid5: ${r.stripes} stripes, ${r.mismatches} parity mismatches, ${r.repaired} repaired\n`)
      } else {
        const r = await layer.scrub({ repair })
        found += r.mismatchRanges
        process.stdout.write(`mirror: ${r.bytes} bytes, ${r.mismatchRanges} mismatched ranges (${r.mismatchBytes} bytes), ${r.repaired} repaired\n`)
      }
    }
    return found > 0 ? 1 : 0
  } finally {
    await v.close()
  }
}

/** Member `index` of the configuration, and its place among the top layer's children. */
function topMember(v: OpenVolume, index: number): { uuid: string; place: number; layer: MirrorDevice | Raid5Device } {
  const c = v.config
  const m = c.members[index]
  if (m === undefined) throw new VolumeError('VOLUME_MEMBER', `volume ${c.name} has no member ${index} (members 0 … ${c.members.length - 1})`)
  const root = c.root
  const layer = v.device
  const place = root.kind === 'mirror' || root.kind === 'raid5' ? root.children.findIndex((n) => n.kind === 'disk' && n.member === m.uuid) : -1
  if (place < 0 || !(layer instanceof MirrorDevice || layer instanceof Raid5Device)) {
    throw new VolumeError('VOLUME_LAYOUT', `volume ${c.name} is a ${root.kind}: only a member of a top-level mirror or RAID-5 can be failed or replaced`)
  }
  return { uuid: m.uuid, place, layer }
}

export async function failMember(paths: string[], index: number): Promise<number> {
  const v = await openVolume(paths)
  try {
    const { uuid } = topMember(v, index)
    const c = v.config
    const m = c.members[index]
    if (m?.state === 'failed') throw new VolumeError('VOLUME_MEMBER', `member ${index} (${uuid}) of volume ${c.name} is already failed`)
    // The same rule the assembly applies: a change that would leave the volume unable to serve is refused.
    const others = c.root.kind === 'mirror' || c.root.kind === 'raid5' ? c.root.children.length - 1 : 0
    const lost = v.missing.filter((x) => x.uuid !== uuid).length
    if (c.root.kind === 'raid5' ? lost > 0 : lost >= others) {
      throw new VolumeError('VOLUME_FAILED', `volume ${c.name} already runs without ${v.missing.map((x) => `member ${x.index}`).join(', ')}; failing member ${index} too would lose it`)
    }
    const r = await setMemberState(v, uuid, 'failed', 'failed by hand (tsnfs volume fail)')
    process.stdout.write(`volume ${c.name}: member ${index} (${uuid}) marked failed, configuration seq ${r.config.seq}\n`)
    for (const u of r.unreachable) process.stderr.write(`  ${u.path}: could not take the configuration: ${u.error instanceof Error ? u.error.message : String(u.error)}\n`)
    return 0
  } finally {
    await v.close()
  }
}

export async function replaceOffline(paths: string[], index: number, newPath: string, opts: { rate: number; size: number | undefined }): Promise<number> {
  await createMissing(newPath, opts.size)
  const v = await openVolume(paths)
  let fresh: ImageFile | undefined
  try {
    const { uuid, place, layer } = topMember(v, index)
    const c = v.config
    const size = c.members[index]?.size ?? 0
    if (v.disks.some((d) => resolve(d.path) === resolve(newPath))) throw new VolumeError('VOLUME_MEMBER', `${newPath} is one of the volume's disks already`)
    fresh = await ImageFile.open(newPath)
    const dev = fresh
    const swapped = await replaceMember(v, uuid, { path: newPath, dev })
    // RAID-5 rebuilds only a member it no longer uses; a mirror takes any leg.
    if (layer instanceof Raid5Device && layer.status().members[place]?.state !== 'failed') layer.fail(place)
    let shown = -1
    // Checkpointed in the configuration: if this process dies, the next read-write open of the volume continues from the last checkpoint.
    await rebuildMember(v, swapped.uuid, layer, place, LAYERS.partition(dev, MEMBER_RESERVED, size), {
      rateBytesPerSec: opts.rate,
      onProgress: (done, total) => {
        const pct = Math.floor((done * 100) / total)
        if (pct === shown) return
        shown = pct
        process.stderr.write(`rebuild of member ${index} onto ${newPath}: ${pct}% (${done} of ${total} bytes)\n`)
      },
    })
    process.stdout.write(`volume ${c.name}: member ${index} rebuilt onto ${newPath} (${swapped.uuid}), configuration seq ${v.config.seq}\n`)
    return 0
  } finally {
    await v.close()
    await fresh?.close().catch(() => undefined)
  }
}
