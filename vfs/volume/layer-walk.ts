import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { LayoutNode } from './config.ts'
import { membersUnder } from './config.ts'
import type { MemberState } from './layer.ts'
import { MirrorDevice } from './mirror.ts'
import { Raid5Device } from './raid5.ts'

/**
 * What each redundant layer of a running volume says about each of its children, found by
 * walking the configuration's layout and the built layers side by side (buildLayerTree makes
 * child i of a node the layer's member i). A layer's event names only its kind and a member
 * index; this walk turns that into a place in the tree and, where the child is one disk, the
 * configuration member it stands for.
 */
export interface ChildState {
  /** Where the child sits: `raid5[1]`, `mirror[0]/stripe[2]` (kind of each parent, child index). */
  readonly path: string
  readonly layer: 'mirror' | 'raid5'
  readonly index: number
  readonly state: MemberState
  readonly reason?: string
  readonly rebuilt?: number
  /** The member uuid when the child is one disk (or partitions of one). */
  readonly member?: string
  /** Every member uuid under the child. */
  readonly members: readonly string[]
}

function soleDisk(node: LayoutNode): string | undefined {
  if (node.kind === 'disk') return node.member
  if (node.kind === 'partition') return soleDisk(node.child)
  return undefined
}

function membersOf(dev: BlockDevice): readonly BlockDevice[] {
  return 'members' in dev && Array.isArray(dev.members) ? (dev.members as BlockDevice[]) : []
}

export function redundantChildren(root: LayoutNode, device: BlockDevice): ChildState[] {
  const out: ChildState[] = []
  const walk = (node: LayoutNode, dev: BlockDevice, prefix: string): void => {
    if (node.kind === 'disk') return
    if (node.kind === 'partition') {
      const inner = membersOf(dev)[0]
      if (inner !== undefined) walk(node.child, inner, prefix)
      return
    }
    // A subtree that could not serve at assembly is a MissingDevice: nothing below it runs.
    const members = membersOf(dev)
    if (members.length !== node.children.length) return
    const status = dev instanceof MirrorDevice || dev instanceof Raid5Device ? dev.status() : undefined
    node.children.forEach((child, index) => {
      const path = `${prefix}${node.kind}[${index}]`
      const s = status?.members[index]
      if (status !== undefined && s !== undefined && (node.kind === 'mirror' || node.kind === 'raid5')) {
        const member = soleDisk(child)
        out.push({
          path,
          layer: node.kind,
          index,
          state: s.state,
          ...(s.reason === undefined ? {} : { reason: s.reason }),
          ...(s.rebuilt === undefined ? {} : { rebuilt: s.rebuilt }),
          ...(member === undefined ? {} : { member }),
          members: membersUnder(child),
        })
      }
      const next = members[index]
      if (next !== undefined) walk(child, next, `${path}/`)
    })
  }
  walk(root, device, '')
  return out
}
