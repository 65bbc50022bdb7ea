/*
 * Format a block device as ext4 with the features, layout and counts of
 * Debian 12's `mkfs.ext4 -b B` (geometry.ts, place.ts): every structure is
 * built in memory, then written in block order and flushed once.
 *
 * `zeroed` says the device reads as zeros (a new sparse file): then the
 * inode tables are marked ITABLE_ZEROED and the journal is not written over,
 * as mke2fs does after a discard that zeroes. Otherwise the journal is
 * zeroed (a stale block must never look like a transaction) and the inode
 * tables are left for the kernel's lazy init (the flag stays clear), as
 * mke2fs's lazy_itable_init does.
 */
import { randomBytes } from 'node:crypto'
import type { BlockDevice } from '../blockdev/block-device.ts'
import { newJournalSuperblock } from '../jbd2/superblock.ts'
import { crc32cUpdate } from '../crc32c.ts'
import { MkfsError } from './errors.ts'
import { directoryBlocks, inodeTableBlocks, journalBackup, journalLeafBlocks, resizeBlocks, systemInodes } from './files.ts'
import { computeGeometry, groupFirstBlock, groupHasSuper } from './geometry.ts'
import type { Geometry } from './geometry.ts'
import { place } from './place.ts'
import { raidFields } from './raid.ts'
import type { RaidLayout } from './raid.ts'
import { blockBitmap, buildSuperblock, descriptorTable, inodeBitmap, superblockBytes } from './tables.ts'

export interface MkfsOptions {
  blockSize?: 1024 | 4096
  bytesPerInode?: number
  /** s_volume_name: at most 16 bytes of UTF-8. */
  label?: string
  /** s_uuid; random (v4) when absent. */
  uuid?: Buffer
  journalBlocks?: number
  /** The device reads as zeros everywhere (a new sparse file). */
  zeroed: boolean
  /**
   * Write the journal's zeros even on a zeroed device, so a sparse image file gets its log blocks
   * allocated now (as mkfs.ext4, which zeroes the journal unless lazy_journal_init). Every commit
   * flushes the image; a log block still a hole makes that flush also commit the host file
   * system's allocation of it, which here made commits ~3x slower until the log had wrapped once.
   */
  allocateJournal?: boolean
  /** Creation time in seconds (default: now). */
  time?: number
  /** s_hash_seed; random when absent. */
  hashSeed?: Buffer
  /**
   * The striped volume under the file system (raid.ts): recorded as s_raid_stride and
   * s_raid_stripe_width, which the allocator aligns large file-data runs to. Absent: none.
   */
  raid?: RaidLayout
}

export interface MkfsResult {
  geometry: Geometry
  uuid: Buffer
  /** Bytes written. */
  written: number
}

/** Bytes of zeros written at once when the journal is cleared. */
const ZERO_CHUNK = 1024 * 1024

/** A random RFC 4122 version 4 UUID, as libuuid's uuid_generate makes from /dev/urandom. */
export function randomUuid(): Buffer {
  const u = randomBytes(16)
  u[6] = ((u[6] ?? 0) & 0x0f) | 0x40
  u[8] = ((u[8] ?? 0) & 0x3f) | 0x80
  return u
}

export async function makeFileSystem(dev: BlockDevice, opts: MkfsOptions): Promise<MkfsResult> {
  const label = Buffer.from(opts.label ?? '', 'utf8')
  if (label.length > 16) throw new MkfsError('MKFS_BAD_OPTION', `label "${opts.label ?? ''}" is ${label.length} bytes; at most 16`)
  if (opts.uuid !== undefined && opts.uuid.length !== 16) throw new MkfsError('MKFS_BAD_OPTION', `a UUID is 16 bytes, got ${opts.uuid.length}`)
  const geo = computeGeometry({ size: dev.size, ...pick(opts) })
  const plan = place(geo)
  const bs = geo.blockSize
  // mke2fs's limit: the journal may take at most half of what is free before it.
  const freeBefore = plan.freeBlocks + geo.journalBlocks
  if (geo.journalBlocks > freeBefore / 2) {
    throw new MkfsError('MKFS_BAD_OPTION', `a journal of ${geo.journalBlocks} blocks is more than half of the ${freeBefore} free blocks`)
  }
  const uuid = opts.uuid ?? randomUuid()
  const time = opts.time ?? Math.floor(Date.now() / 1000)
  // The metadata_csum seed: crc32c(~0, s_uuid) (no metadata_csum_seed feature).
  const seed = crc32cUpdate(0xffffffff, uuid)
  const blocks = new Map<number, Buffer>()
  const put = (b: number, data: Buffer): void => {
    blocks.set(b, data)
  }

  const resize = resizeBlocks(geo, plan.resizeDind)
  const inodes = systemInodes(plan, time, resize.count, seed)
  const sbFields = buildSuperblock(plan, { uuid, hashSeed: opts.hashSeed ?? randomUuid(), label, time, jnlBlocks: journalBackup(plan), kbytesWritten: 0, raid: raidFields(opts.raid, bs) })
  const gdt = descriptorTable(plan, seed, opts.zeroed)
  for (let g = 0; g < geo.groupCount; g++) {
    if (!groupHasSuper(g)) continue
    const first = groupFirstBlock(geo, g)
    const sbBlock = Buffer.alloc(bs)
    // The primary superblock is at byte 1024: in block 0 of a 4 KiB file system, block 1 of a 1 KiB one.
    superblockBytes(sbFields, g).copy(sbBlock, g === 0 && bs > 1024 ? 1024 : 0)
    put(first, sbBlock)
    for (let i = 0; i < geo.descBlocks; i++) put(first + 1 + i, gdt.subarray(i * bs, (i + 1) * bs))
  }
  plan.groups.forEach((gp, g) => {
    if (!gp.blockUninit) put(gp.blockBitmap, blockBitmap(plan, g))
    if (!gp.inodeUninit) put(gp.inodeBitmap, inodeBitmap(plan, g))
  })
  for (const [b, data] of resize.blocks) put(b, data)
  for (const [b, data] of directoryBlocks(plan, seed)) put(b, data)
  for (const [b, data] of inodeTableBlocks(plan, inodes)) put(b, data)
  for (const [b, data] of journalLeafBlocks(plan, seed)) put(b, data)
  const journalStart = plan.journal[0]?.start ?? 0
  put(journalStart, newJournalSuperblock({ blockSize: bs, maxlen: geo.journalBlocks, uuid }))
  if (bs === 1024) put(0, Buffer.alloc(bs))

  let written = 0
  if (!opts.zeroed || opts.allocateJournal === true) {
    for (const run of plan.journal) {
      for (let b = run.start; b < run.start + run.len; b += ZERO_CHUNK / bs) {
        const n = Math.min(ZERO_CHUNK / bs, run.start + run.len - b)
        await dev.write(b * bs, Buffer.alloc(n * bs))
        written += n * bs
      }
    }
  }
  written += await writeBlocks(dev, blocks, bs)
  await dev.flush()
  return { geometry: geo, uuid, written }
}

function pick(opts: MkfsOptions): { blockSize?: 1024 | 4096; bytesPerInode?: number; journalBlocks?: number } {
  const out: { blockSize?: 1024 | 4096; bytesPerInode?: number; journalBlocks?: number } = {}
  if (opts.blockSize !== undefined) out.blockSize = opts.blockSize
  if (opts.bytesPerInode !== undefined) out.bytesPerInode = opts.bytesPerInode
  if (opts.journalBlocks !== undefined) out.journalBlocks = opts.journalBlocks
  return out
}

/** Write blocks in order, one write per run of consecutive blocks. */
async function writeBlocks(dev: BlockDevice, blocks: Map<number, Buffer>, bs: number): Promise<number> {
  const order = [...blocks.keys()].sort((a, b) => a - b)
  let written = 0
  for (let i = 0; i < order.length; ) {
    let j = i + 1
    while (j < order.length && order[j] === (order[j - 1] ?? 0) + 1 && j - i < 256) j++
    const first = order[i] ?? 0
    const data = Buffer.concat(order.slice(i, j).map((b) => blocks.get(b) ?? Buffer.alloc(bs)))
    await dev.write(first * bs, data)
    written += data.length
    i = j
  }
  return written
}
