/*
 * The primary superblock rebuilt from a backup, as e2fsck does when the primary fails its checksum
 * or does not describe a file system ("Superblock invalid, trying backup blocks...", then the
 * primary rewritten at the end): the first sound backup at the places mkfs puts group 1's copy
 * (where the damaged primary says group 1 starts, if it still says something plausible; else
 * block 8193 with 1 KiB blocks, 16384 with 2 KiB, 32768 with 4 KiB) is copied to byte 1024 with
 * s_block_group_nr 0 and a fresh checksum. A backup is sound when it has the magic, decodes, its
 * checksum holds (metadata_csum) and it says it is the copy of the group it was found in.
 *
 * What a backup does not keep up to date (free counts, mount times, the orphan list head) is the
 * later passes' work: pass 5 rewrites the counts; an orphan list lost with the primary shows up as
 * inodes without a name, which go to lost+found. The needs_recovery flag is taken from the damaged
 * primary when its magic is still there, so a journal with committed transactions is replayed.
 */
import type { BlockDevice } from '../../blockdev/block-device.ts'
import { hasFeature } from '../../format/features.ts'
import { blockSize, decodeSuperblock, EXT4_SUPER_MAGIC, SUPERBLOCK_CHECKSUM_OFFSET, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../format/superblock.ts'
import { superblockCsum } from '../../reader/csum-verifier.ts'
import { errText } from '../problems.ts'
import { fixed, left } from './record.ts'
import type { Repair } from './record.ts'

/** s_block_group_nr: which group's copy this is. */
const GROUP_NR_OFFSET = 0x5a
const MAGIC_OFFSET = 0x38
const INCOMPAT_OFFSET = 0x60
/** EXT4_FEATURE_INCOMPAT_RECOVER. */
const INCOMPAT_RECOVER = 0x4

/** Group 1's superblock for each block size mkfs may have used: 8 × block size blocks per group, as mkfs's default. */
const CANDIDATES = [1024, 2048, 4096, 8192, 16384, 32768, 65536].map((bs) => ({ bs, offset: (bs * 8 + (bs === 1024 ? 1 : 0)) * bs }))

function soundBackup(raw: Buffer, bs: number, offset: number): string | undefined {
  if (raw.readUInt16LE(MAGIC_OFFSET) !== EXT4_SUPER_MAGIC) return 'no magic'
  let sb
  try {
    sb = decodeSuperblock(raw)
  } catch (err) {
    return errText(err)
  }
  if (blockSize(sb) !== bs) return `block size ${blockSize(sb)}, found where ${bs}-byte blocks put it`
  if ((sb.firstDataBlock + sb.blocksPerGroup) * bs !== offset) return `${sb.blocksPerGroup} blocks per group, which does not put group 1 here`
  if (raw.readUInt16LE(GROUP_NR_OFFSET) !== 1) return `it says it is group ${raw.readUInt16LE(GROUP_NR_OFFSET)}'s copy`
  if (hasFeature(sb, 'ro_compat', 'metadata_csum') && superblockCsum(raw) !== raw.readUInt32LE(SUPERBLOCK_CHECKSUM_OFFSET)) return 'its checksum fails'
  return undefined
}

/** Where the damaged primary itself says group 1 starts, when it still says something plausible (mkfs -g). */
function fromPrimary(primary: Buffer): Array<{ bs: number; offset: number }> {
  try {
    const sb = decodeSuperblock(primary)
    const bs = blockSize(sb)
    if (primary.readUInt16LE(MAGIC_OFFSET) !== EXT4_SUPER_MAGIC || bs < 1024 || bs > 65536 || sb.blocksPerGroup < 8 || sb.blocksPerGroup > bs * 8) return []
    return [{ bs, offset: (sb.firstDataBlock + sb.blocksPerGroup) * bs }]
  } catch {
    return []
  }
}

/**
 * The primary's own checksum rewritten in place, for a primary whose fields all check out but
 * that has no sound backup to be rebuilt from (a file system of one group has none): its fields
 * are the newest copy there is. e2fsck 1.47 gives up there ("Superblock invalid"); with the rest
 * sane the sum is the one thing wrong, as a lone inode checksum (checksums.ts).
 */
export async function rewriteSuperblockCsum(dev: BlockDevice, why: string): Promise<Repair> {
  const raw = Buffer.from(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE))
  const was = raw.readUInt32LE(SUPERBLOCK_CHECKSUM_OFFSET)
  const sum = superblockCsum(raw)
  raw.writeUInt32LE(sum, SUPERBLOCK_CHECKSUM_OFFSET)
  await dev.write(SUPERBLOCK_OFFSET, raw)
  await dev.flush()
  return fixed(1, 'SUPERBLOCK_CSUM_SET', `primary superblock checksum 0x${was.toString(16)} → 0x${sum.toString(16)} (the rest of it checks out; no sound backup: ${why})`)
}

/**
 * Rewrites the primary from the first sound backup; 'left' (and nothing written) when there is
 * none. `refused`: copies found (they have the magic) but not sound; 0 means no backup anywhere.
 */
export async function restoreSuperblock(dev: BlockDevice, why: string): Promise<{ repair: Repair; refused: number }> {
  const refused: string[] = []
  const primary = await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)
  const tried = new Set<number>()
  for (const { bs, offset } of [...fromPrimary(primary), ...CANDIDATES]) {
    if (tried.has(offset)) continue
    tried.add(offset)
    if (offset + SUPERBLOCK_SIZE > dev.size) break
    const raw = await dev.read(offset, SUPERBLOCK_SIZE)
    const bad = soundBackup(raw, bs, offset)
    if (bad !== undefined) {
      if (raw.readUInt16LE(MAGIC_OFFSET) === EXT4_SUPER_MAGIC) refused.push(`the copy at byte ${offset}: ${bad}`)
      continue
    }
    const out = Buffer.from(raw)
    out.writeUInt16LE(0, GROUP_NR_OFFSET)
    if (primary.readUInt16LE(MAGIC_OFFSET) === EXT4_SUPER_MAGIC && (primary.readUInt32LE(INCOMPAT_OFFSET) & INCOMPAT_RECOVER) !== 0) {
      out.writeUInt32LE(out.readUInt32LE(INCOMPAT_OFFSET) | INCOMPAT_RECOVER, INCOMPAT_OFFSET)
    }
    if (hasFeature(decodeSuperblock(out), 'ro_compat', 'metadata_csum')) out.writeUInt32LE(superblockCsum(out), SUPERBLOCK_CHECKSUM_OFFSET)
    await dev.write(SUPERBLOCK_OFFSET, out)
    await dev.flush()
    return { repair: fixed(1, 'SUPERBLOCK_RESTORED', `primary superblock (${why}) rewritten from the backup at byte ${offset} (group 1, ${bs}-byte blocks)`), refused: refused.length }
  }
  const repair = left(1, 'SUPERBLOCK_RESTORE', `primary superblock (${why}) not rewritten: no sound backup${refused.length > 0 ? ` (${refused.join('; ')})` : ''}`)
  return { repair, refused: refused.length }
}
