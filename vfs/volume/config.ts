import type { MemberState } from './layer.ts'
import { VolumeError } from './layer.ts'
import { MAX_CHUNK, MIN_CHUNK } from './snapshot-format.ts'
import type { ReshapeRecord } from './reshape-state.ts'
import { validateReshape } from './reshape-state.ts'

/**
 * A volume's configuration (issue 14 item 2; seed 004: NT's LDM database on every member): the
 * layer tree, its members and their states, as one JSON-able value. Every member disk carries a
 * copy in its superblock (member-format.ts), so the disks alone rebuild the volume; the copy with
 * the highest `seq` wins.
 */

export const CONFIG_VERSION = 1
export const MAX_MEMBERS = 64
export const MAX_DEPTH = 8
export const MAX_NAME_BYTES = 64
const MAX_REASON_CHARS = 512
/** A unit beyond this is a typo, not a layout (md's largest chunk is far smaller). */
const MAX_UNIT = 64 * 1024 * 1024
const MIN_REGION = 4096
const MAX_REGION = 1024 * 1024 * 1024
/**
 * Intent-bitmap regions at most: a member's 256 KiB intent area (member-format.ts) holds two
 * slots of a 64-byte header and the bits (intent-bitmap.ts), so about a million would fit; half
 * that leaves room for the headers' growth. Checked against the sum of the members' data areas,
 * an upper bound of any redundant layer's size.
 */
export const MAX_INTENT_REGIONS = 512 * 1024
/** The smallest snapshot store: its header, table and map area, and a few chunks (snapshot-format.ts). */
export const MIN_STORE = 1024 * 1024

export type RedundantKind = 'mirror' | 'raid5'
export type ParentKind = 'span' | 'stripe' | RedundantKind

export interface DiskNode {
  readonly kind: 'disk'
  /** The member's uuid (32 hex digits), listed in VolumeConfig.members. */
  readonly member: string
}

export interface ParentNode {
  readonly kind: ParentKind
  /** Stripe unit in bytes (stripe and raid5 only); absent: DEFAULT_UNIT. */
  readonly unit?: number
  readonly children: readonly LayoutNode[]
}

export interface PartitionNode {
  readonly kind: 'partition'
  readonly offset: number
  readonly size: number
  readonly child: LayoutNode
}

export type LayoutNode = DiskNode | ParentNode | PartitionNode

export interface MemberRecord {
  readonly uuid: string
  /** Bytes of the member's data area (the disk after MEMBER_RESERVED), so a missing member's stand-in has the right size. */
  readonly size: number
  readonly state: MemberState
  /** Why it failed, for status and logs. */
  readonly reason?: string
  /**
   * While rebuilding: bytes of the data area from its start already rebuilt and flushed (md's
   * recovery_offset); the next open continues the rebuild from here.
   */
  readonly rebuilt?: number
}

export interface VolumeFlags {
  readonly intentBitmap: boolean
  /** Bytes of the volume one intent bit covers. */
  readonly regionSize: number
}

/**
 * Where the volume keeps its snapshots' exception store: the last `size` bytes of the top layer
 * (so the store is as redundant as the data); the file system gets [0, top size − size).
 */
export interface SnapshotStoreConfig {
  readonly size: number
  /** Copy-on-write unit (snapshot-format.ts). */
  readonly chunkSize: number
}

export interface VolumeConfig {
  readonly version: typeof CONFIG_VERSION
  readonly name: string
  /** 16 bytes as 32 lower-case hex digits. */
  readonly id: string
  readonly seq: number
  readonly root: LayoutNode
  /** A member's index in this list is the index its superblock records. */
  readonly members: readonly MemberRecord[]
  /** Placeholder until snapshots exist (issue 14 item 6): always empty in this format version. */
  readonly snapshots: readonly never[]
  readonly flags: VolumeFlags
  /** Absent: the volume takes no snapshots (every configuration before snapshots). */
  readonly snapshotStore?: SnapshotStoreConfig
  /** A member being added to a stripe or RAID-5 (reshape-state.ts); absent: no reshape in progress. */
  readonly reshape?: ReshapeRecord
}

const MIN_CHILDREN: Record<ParentKind, number> = { span: 1, stripe: 2, mirror: 2, raid5: 3 }
const NAME = /^[A-Za-z0-9._-]+$/
const HEX16 = /^[0-9a-f]{32}$/

function fail(path: string, what: string): never {
  throw new VolumeError('VOLUME_LAYOUT', `${path}: ${what}`)
}

function record(v: unknown, path: string, keys: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'not an object')
  const o = v as Record<string, unknown>
  for (const k of Object.keys(o)) if (!keys.includes(k) && !optional.includes(k)) fail(path, `unknown field '${k}'`)
  for (const k of keys) if (!(k in o)) fail(path, `missing field '${k}'`)
  return o
}

function count(v: unknown, path: string, min: number, max: number, multipleOf = 1): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max || v % multipleOf !== 0) {
    fail(path, `${JSON.stringify(v)} is not an integer in [${min}, ${max}]${multipleOf > 1 ? ` and a multiple of ${multipleOf}` : ''}`)
  }
  return v
}

export function validateName(v: unknown, path = 'name'): string {
  if (typeof v !== 'string' || !NAME.test(v) || Buffer.byteLength(v) > MAX_NAME_BYTES) {
    fail(path, `${JSON.stringify(v)} is not 1 to ${MAX_NAME_BYTES} bytes of [A-Za-z0-9._-]`)
  }
  return v
}

function hex16(v: unknown, path: string): string {
  if (typeof v !== 'string' || !HEX16.test(v)) fail(path, `${JSON.stringify(v)} is not 32 lower-case hex digits`)
  return v
}

function memberRecord(v: unknown, path: string): MemberRecord {
  const o = record(v, path, ['uuid', 'size', 'state'], ['reason', 'rebuilt'])
  const uuid = hex16(o.uuid, `${path}.uuid`)
  const size = count(o.size, `${path}.size`, 512, Number.MAX_SAFE_INTEGER, 512)
  const state = o.state
  if (state !== 'ok' && state !== 'failed' && state !== 'rebuilding') fail(`${path}.state`, `${JSON.stringify(state)} is not ok, failed or rebuilding`)
  let out: MemberRecord = { uuid, size, state }
  if (o.reason !== undefined) {
    if (typeof o.reason !== 'string' || o.reason.length > MAX_REASON_CHARS) fail(`${path}.reason`, `not a string of at most ${MAX_REASON_CHARS} characters`)
    out = { ...out, reason: o.reason }
  }
  if (o.rebuilt !== undefined) {
    if (state !== 'rebuilding') fail(`${path}.rebuilt`, `only a rebuilding member has a rebuild checkpoint, not a member ${state}`)
    out = { ...out, rebuilt: count(o.rebuilt, `${path}.rebuilt`, 0, size, 512) }
  }
  return out
}

/** Rebuilds the node with its fields in a fixed order, so the JSON of equal configs is equal bytes. */
function layoutNode(v: unknown, path: string, depth: number, members: ReadonlySet<string>, seen: Set<string>): LayoutNode {
  if (depth > MAX_DEPTH) fail(path, `layers nest deeper than ${MAX_DEPTH}`)
  const kind = record(v, path, ['kind'], ['member', 'unit', 'children', 'offset', 'size', 'child']).kind
  switch (kind) {
    case 'disk': {
      const o = record(v, path, ['kind', 'member'])
      const member = hex16(o.member, `${path}.member`)
      if (!members.has(member)) fail(`${path}.member`, `${member} is not in the member list`)
      if (seen.has(member)) fail(`${path}.member`, `duplicate member ${member}`)
      seen.add(member)
      return { kind, member }
    }
    case 'partition': {
      const o = record(v, path, ['kind', 'offset', 'size', 'child'])
      const offset = count(o.offset, `${path}.offset`, 0, Number.MAX_SAFE_INTEGER, 512)
      const size = count(o.size, `${path}.size`, 512, Number.MAX_SAFE_INTEGER, 512)
      return { kind, offset, size, child: layoutNode(o.child, `${path}.child`, depth + 1, members, seen) }
    }
    case 'span':
    case 'mirror':
    case 'stripe':
    case 'raid5': {
      const striped = kind === 'stripe' || kind === 'raid5'
      const o = record(v, path, ['kind', 'children'], striped ? ['unit'] : [])
      if (!Array.isArray(o.children)) fail(`${path}.children`, 'not an array')
      const min = MIN_CHILDREN[kind]
      if (o.children.length < min || o.children.length > MAX_MEMBERS) fail(`${path}.children`, `${kind} needs ${min} to ${MAX_MEMBERS} children, has ${o.children.length}`)
      const children = o.children.map((c: unknown, i) => layoutNode(c, `${path}.children[${i}]`, depth + 1, members, seen))
      if (o.unit === undefined) return { kind, children }
      return { kind, unit: count(o.unit, `${path}.unit`, 512, MAX_UNIT, 512), children }
    }
    default:
      return fail(`${path}.kind`, `${JSON.stringify(kind)} is not disk, partition, span, stripe, mirror or raid5`)
  }
}

/**
 * Checks an untrusted value (a member superblock's JSON, a CLI argument) and returns it as a
 * VolumeConfig with fields in a fixed order; anything wrong is VOLUME_LAYOUT naming where.
 */
export function validateConfig(v: unknown): VolumeConfig {
  const o = record(v, 'config', ['version', 'name', 'id', 'seq', 'root', 'members', 'snapshots', 'flags'], ['snapshotStore', 'reshape'])
  if (o.version !== CONFIG_VERSION) fail('version', `${JSON.stringify(o.version)} is not ${CONFIG_VERSION}`)
  const name = validateName(o.name)
  const id = hex16(o.id, 'id')
  const seq = count(o.seq, 'seq', 1, Number.MAX_SAFE_INTEGER)
  if (!Array.isArray(o.members)) fail('members', 'not an array')
  if (o.members.length < 1 || o.members.length > MAX_MEMBERS) fail('members', `${o.members.length} members, not 1 to ${MAX_MEMBERS}`)
  const members = o.members.map((m: unknown, i) => memberRecord(m, `members[${i}]`))
  const uuids = new Set<string>()
  for (const [i, m] of members.entries()) {
    if (uuids.has(m.uuid)) fail(`members[${i}].uuid`, `duplicate member ${m.uuid}`)
    uuids.add(m.uuid)
  }
  const seen = new Set<string>()
  const root = layoutNode(o.root, 'root', 1, uuids, seen)
  for (const m of members) if (!seen.has(m.uuid)) fail('members', `member ${m.uuid} is in no layer`)
  if (!Array.isArray(o.snapshots) || o.snapshots.length !== 0) fail('snapshots', 'must be [] in this format version')
  const f = record(o.flags, 'flags', ['intentBitmap', 'regionSize'])
  if (typeof f.intentBitmap !== 'boolean') fail('flags.intentBitmap', 'not a boolean')
  const regionSize = count(f.regionSize, 'flags.regionSize', MIN_REGION, MAX_REGION, MIN_REGION)
  if ((regionSize & (regionSize - 1)) !== 0) fail('flags.regionSize', `${regionSize} is not a power of two`)
  const regions = Math.ceil(members.reduce((sum, m) => sum + m.size, 0) / regionSize)
  if (f.intentBitmap && regions > MAX_INTENT_REGIONS) fail('flags.regionSize', `${regionSize} makes ${regions} intent regions, more than the ${MAX_INTENT_REGIONS} a member's bitmap area holds`)
  const flags = { intentBitmap: f.intentBitmap, regionSize }
  const base: VolumeConfig = { version: CONFIG_VERSION, name, id, seq, root, members, snapshots: [], flags }
  const withStore = o.snapshotStore === undefined ? base : { ...base, snapshotStore: snapshotStoreConfig(o.snapshotStore, members.reduce((sum, m) => sum + m.size, 0)) }
  if (o.reshape === undefined) return withStore
  if (withStore.snapshotStore !== undefined) fail('reshape', 'a volume with a snapshot store is never reshaped')
  return { ...withStore, reshape: validateReshape(o.reshape, root.kind, root.kind === 'disk' || root.kind === 'partition' ? 0 : root.children.length) }
}

/** The store's size is capped by the members' total, an upper bound of any top layer's size. */
function snapshotStoreConfig(v: unknown, total: number): SnapshotStoreConfig {
  const o = record(v, 'snapshotStore', ['size', 'chunkSize'])
  const chunkSize = count(o.chunkSize, 'snapshotStore.chunkSize', MIN_CHUNK, MAX_CHUNK, MIN_CHUNK)
  if ((chunkSize & (chunkSize - 1)) !== 0) fail('snapshotStore.chunkSize', `${chunkSize} is not a power of two`)
  const size = count(o.size, 'snapshotStore.size', MIN_STORE, Math.max(MIN_STORE, total), chunkSize)
  return { size, chunkSize }
}

/** The member uuids a layout node reaches, in tree order. */
export function membersUnder(node: LayoutNode): string[] {
  switch (node.kind) {
    case 'disk':
      return [node.member]
    case 'partition':
      return membersUnder(node.child)
    default:
      return node.children.flatMap(membersUnder)
  }
}
