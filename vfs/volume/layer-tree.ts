import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { LayoutNode, MemberRecord, VolumeConfig } from './config.ts'
import type { IntentLog, RedundantOptions, VolumeEventSink } from './layer.ts'
import { DEFAULT_UNIT, VolumeError } from './layer.ts'
import { INTENT_LENGTH, INTENT_OFFSET } from './member-format.ts'
import { MissingDevice } from './missing-device.ts'

/**
 * Builds the layers a configuration describes. The classes come from the caller (the server and
 * the CLI pass the real PartitionDevice, SpanDevice, ...; tests pass recorders), so this file
 * knows the tree, not the layers' arithmetic.
 */
export interface LayerFactory {
  partition(inner: BlockDevice, offset: number, size: number): BlockDevice
  span(members: BlockDevice[]): BlockDevice
  stripe(members: BlockDevice[], options: { unit: number }): BlockDevice
  mirror(legs: BlockDevice[], options: RedundantOptions): BlockDevice
  raid5(members: BlockDevice[], options: { unit: number } & RedundantOptions): BlockDevice
}

/** Where one member keeps its copy of a redundant layer's write-intent bitmap. */
export interface IntentCopy {
  readonly dev: BlockDevice
  readonly offset: number
  readonly length: number
}

/** Opens a redundant layer's write-intent log (IntentBitmap.open, in the server). */
export type IntentOpener = (copies: IntentCopy[], volumeSize: number, regionSize: number) => Promise<IntentLog>

/** A member disk found at assembly, with where its data area starts. */
export interface PresentMember {
  /** The disk's name now, for messages. */
  readonly path: string
  readonly dev: BlockDevice
  readonly dataOffset: number
}

export interface BuildOptions {
  onEvent?: VolumeEventSink
  openIntent?: IntentOpener
}

export interface BuiltTree {
  readonly device: BlockDevice
  /** Members the layers start without (absent, failed or mid-rebuild), with why. */
  readonly missing: readonly { readonly uuid: string; readonly index: number; readonly reason: string }[]
  readonly intents: readonly IntentLog[]
}

type Usable = (m: MemberRecord) => boolean

/** Why a subtree cannot serve, or null when it can (mirror: one leg; RAID-5: all but one member). */
function unavailable(node: LayoutNode, config: VolumeConfig, usable: Usable, why: (uuid: string) => string): string | null {
  switch (node.kind) {
    case 'disk': {
      const m = config.members.find((r) => r.uuid === node.member)
      return m !== undefined && usable(m) ? null : why(node.member)
    }
    case 'partition': {
      const r = unavailable(node.child, config, usable, why)
      return r === null ? null : `partition: ${r}`
    }
    default: {
      const lost = node.children.map((c) => unavailable(c, config, usable, why)).filter((r) => r !== null)
      const tolerated = node.kind === 'mirror' ? node.children.length - 1 : node.kind === 'raid5' ? 1 : 0
      return lost.length > tolerated ? `${node.kind} of ${node.children.length} lost ${lost.length} (${lost.join('; ')})` : null
    }
  }
}

/** Disks whose intent-bitmap area serves this redundant node: those with no redundant layer between. */
function intentDisks(node: LayoutNode): string[] {
  switch (node.kind) {
    case 'disk':
      return [node.member]
    case 'partition':
      return intentDisks(node.child)
    case 'mirror':
    case 'raid5':
      return []
    default:
      return node.children.flatMap(intentDisks)
  }
}

/**
 * Builds the layer tree of `config` over the members found. A member that is absent, marked
 * failed or mid-rebuild is replaced by a MissingDevice of its size; so is any subtree that
 * cannot serve under a mirror or RAID-5, so the layer above marks it failed at its first touch
 * and never reads stale data from the part of it that is present. A volume that cannot serve at
 * all (a span or stripe missing a member, a mirror without legs, RAID-5 short of two):
 * VOLUME_INCOMPLETE naming what is missing.
 */
export async function buildLayerTree(config: VolumeConfig, present: ReadonlyMap<string, PresentMember>, factory: LayerFactory, options: BuildOptions = {}): Promise<BuiltTree> {
  const usable: Usable = (m) => m.state === 'ok' && present.has(m.uuid)
  const why = (uuid: string): string => {
    const index = config.members.findIndex((r) => r.uuid === uuid)
    const m = config.members[index]
    if (m?.state === 'failed') return `member ${index} (${uuid}) marked failed${m.reason === undefined ? '' : `: ${m.reason}`}`
    if (m?.state === 'rebuilding') return `member ${index} (${uuid}) was rebuilding`
    return `member ${index} (${uuid}) not among the disks given`
  }
  const missing = config.members.flatMap((m, index) => (usable(m) ? [] : [{ uuid: m.uuid, index, reason: why(m.uuid) }]))
  const top = unavailable(config.root, config, usable, why)
  if (top !== null) throw new VolumeError('VOLUME_INCOMPLETE', `volume ${config.name} cannot start: ${top}`)

  const intents: IntentLog[] = []

  // The size a subtree has, from the layer classes themselves: built over stand-ins and closed.
  const sizeOf = async (node: LayoutNode): Promise<number> => {
    const shadow = await build(node, true)
    const size = shadow.size
    await shadow.close()
    return size
  }

  const build = async (node: LayoutNode, shadow: boolean): Promise<BlockDevice> => {
    if (node.kind === 'disk') {
      const m = config.members.find((r) => r.uuid === node.member)
      if (m === undefined) throw new VolumeError('VOLUME_LAYOUT', `member ${node.member} is not in the member list`)
      const disk = present.get(m.uuid)
      if (shadow || disk === undefined || !usable(m)) return new MissingDevice(m.size, shadow ? 'sizing' : why(m.uuid))
      if (disk.dev.size < disk.dataOffset + m.size) {
        throw new VolumeError('VOLUME_LAYOUT', `${disk.path}: ${disk.dev.size} bytes, shorter than member ${m.uuid}'s data area (${m.size} bytes at ${disk.dataOffset}): truncated?`)
      }
      return factory.partition(disk.dev, disk.dataOffset, m.size)
    }
    if (!shadow) {
      const lost = unavailable(node, config, usable, why)
      if (lost !== null) return new MissingDevice(await sizeOf(node), lost)
    }
    if (node.kind === 'partition') return factory.partition(await build(node.child, shadow), node.offset, node.size)
    const children: BlockDevice[] = []
    for (const c of node.children) children.push(await build(c, shadow))
    const unit = node.unit ?? DEFAULT_UNIT
    if (node.kind === 'span') return factory.span(children)
    if (node.kind === 'stripe') return factory.stripe(children, { unit })
    const redundant: RedundantOptions = {}
    if (!shadow) {
      if (options.onEvent !== undefined) redundant.onEvent = options.onEvent
      const copies = intentDisks({ kind: 'span', children: node.children }).flatMap((uuid) => {
        const disk = present.get(uuid)
        const m = config.members.find((r) => r.uuid === uuid)
        return disk !== undefined && m !== undefined && usable(m) ? [{ dev: disk.dev, offset: INTENT_OFFSET, length: INTENT_LENGTH }] : []
      })
      if (config.flags.intentBitmap && options.openIntent !== undefined && copies.length > 0) {
        const intent = await options.openIntent(copies, await sizeOf(node), config.flags.regionSize)
        intents.push(intent)
        redundant.intent = intent
      }
    }
    return node.kind === 'mirror' ? factory.mirror(children, redundant) : factory.raid5(children, { unit, ...redundant })
  }

  try {
    return { device: await build(config.root, false), missing, intents }
  } catch (err) {
    // Nothing half-built stays open; the disks themselves are the caller's.
    for (const intent of intents) await intent.close().catch(() => undefined)
    throw err
  }
}
