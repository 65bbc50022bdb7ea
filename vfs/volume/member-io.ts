import type { BlockDevice } from '../engine/blockdev/block-device.ts'
import type { VolumeConfig } from './config.ts'
import { VolumeError } from './layer.ts'
import type { MemberSuperblock } from './member-format.ts'
import { configLengthOf, decodeMemberSuperblock, encodeMemberSuperblock, HEADER_SIZE, MEMBER_RESERVED, SUPERBLOCK_OFFSETS, SUPERBLOCK_SLOT } from './member-format.ts'

/** A disk given by the user: the name it has now (for messages) and the open device. */
export interface Disk {
  readonly path: string
  readonly dev: BlockDevice
}

/** A disk known to be a member, with its uuid. */
export interface MemberDisk extends Disk {
  readonly uuid: string
}

/**
 * A volume's members and the configuration they carry, as assembleVolume and createVolume return
 * it; updateConfig replaces `config`, and a replace adds the new member's disk to `disks`.
 */
export interface VolumeMembers {
  config: VolumeConfig
  readonly disks: MemberDisk[]
}

export interface MemberRead {
  readonly superblock: MemberSuperblock
  /** Which copy won (0 or 1). */
  readonly copy: number
  /** Why the other copy, if any, was not used (torn, damaged, older): for status and logs. */
  readonly problems: readonly string[]
}

async function readCopy(dev: BlockDevice, at: number): Promise<MemberSuperblock> {
  const header = await dev.read(at, HEADER_SIZE)
  // The length is capped (and the magic checked) before the configuration is read.
  const length = configLengthOf(header)
  const copy = Buffer.concat([header, await dev.read(at + HEADER_SIZE, length)])
  return decodeMemberSuperblock(copy)
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/**
 * Reads a disk's member superblock: both copies, and the valid one with the higher sequence
 * number wins (the other may be torn by a crash mid-update, or one update behind).
 * Neither valid: VOLUME_NO_SUPERBLOCK, or VOLUME_LAYOUT when a checksummed copy held an invalid
 * configuration (a writer's bug, not a foreign disk).
 */
export async function readMember(dev: BlockDevice): Promise<MemberRead> {
  if (dev.size < MEMBER_RESERVED) {
    throw new VolumeError('VOLUME_NO_SUPERBLOCK', `${dev.size} bytes, smaller than a member's reserved area (${MEMBER_RESERVED})`)
  }
  const results: { sb?: MemberSuperblock; err?: unknown }[] = []
  for (const at of SUPERBLOCK_OFFSETS) {
    try {
      results.push({ sb: await readCopy(dev, at) })
    } catch (err) {
      results.push({ err })
    }
  }
  let best = -1
  for (const [i, r] of results.entries()) {
    const seq = r.sb?.seq
    if (seq !== undefined && (best < 0 || seq > (results[best]?.sb?.seq ?? 0))) best = i
  }
  const problems = results.flatMap((r, i) => {
    if (r.sb === undefined) return [`copy ${i}: ${describe(r.err)}`]
    if (i !== best && r.sb.seq !== results[best]?.sb?.seq) return [`copy ${i}: sequence ${r.sb.seq} is older`]
    return []
  })
  const won = results[best]?.sb
  if (won !== undefined) return { superblock: won, copy: best, problems }
  const layoutErr = results.some((r) => r.err instanceof VolumeError && r.err.code === 'VOLUME_LAYOUT')
  throw new VolumeError(layoutErr ? 'VOLUME_LAYOUT' : 'VOLUME_NO_SUPERBLOCK', `no valid member superblock (${problems.join('; ')})`, { cause: results[0]?.err })
}

/**
 * Writes both copies of a member superblock, one after the other with a flush after each, so a
 * crash at any moment leaves at least one whole copy (the old one or the new one).
 */
export async function writeMember(dev: BlockDevice, sb: MemberSuperblock): Promise<void> {
  const copy = encodeMemberSuperblock(sb)
  // Padded to whole sectors with zeros: a torn write keeps whole sectors, and stale bytes of a
  // longer earlier copy never sit right after this one.
  const sector = Math.max(dev.sectorSize, 512)
  const padded = Buffer.alloc(Math.ceil(copy.length / sector) * sector)
  if (padded.length > SUPERBLOCK_SLOT) throw new VolumeError('VOLUME_LAYOUT', `superblock of ${copy.length} bytes exceeds its ${SUPERBLOCK_SLOT}-byte slot`)
  copy.copy(padded)
  for (const at of SUPERBLOCK_OFFSETS) {
    await dev.write(at, padded)
    await dev.flush()
  }
}
