/*
 * Our mkfs against Debian 12's mkfs.ext4 on sparse images of the same size,
 * 4 KiB and 1 KiB blocks, including a short last group and one mke2fs drops:
 * e2fsck -fn calls ours clean; dumpe2fs reports the same header fields and
 * the same groups line for line (tables, flags, free counts, free ranges);
 * made with the reference's UUID, hash seed and time, ours is the same image
 * byte for byte except the superblock copies (mke2fs counts the kilobytes it
 * wrote in s_kbytes_written) and the journal superblock (ours already has the
 * 64bit and csum v3 features the kernel would set at first mount); and our
 * reader, checksums verified, opens it and lists lost+found in the root.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { decodeJournalSuperblock } from '../../../vfs/engine/jbd2/superblock.ts'
import { groupHasSuper } from '../../../vfs/engine/mkfs/geometry.ts'
import { openImage, scratch } from './format-helpers.ts'
import { differingBlocks, dumpe2fs, e2fsck, pair, superblockOf } from './mkfs-helpers.ts'

const MiB = 2 ** 20
const GiB = 2 ** 30

/** dumpe2fs -h fields both must agree on. */
const KEY_FIELDS = [
  'Filesystem features', 'Filesystem flags', 'Default mount options', 'Filesystem state', 'Errors behavior', 'Inode count', 'Block count',
  'Reserved block count', 'Overhead clusters', 'Free blocks', 'Free inodes', 'First block', 'Block size', 'Group descriptor size',
  'Reserved GDT blocks', 'Blocks per group', 'Inodes per group', 'Inode blocks per group', 'Flex block group size', 'Maximum mount count',
  'First inode', 'Inode size', 'Required extra isize', 'Desired extra isize', 'Journal inode', 'Default directory hash', 'Journal backup',
  'Checksum type', 'Total journal size', 'Total journal blocks', 'Journal sequence', 'Journal start', 'Filesystem UUID', 'Directory Hash Seed',
]

interface Case {
  name: string
  size: number
  bs: 1024 | 4096
  groups: number
  /** Compare every block holding data (the 200 GiB one by dumpe2fs and its journal inode only, to stay fast). */
  bytes?: false
}

const CASES: Case[] = [
  { name: '4k-64m', size: 64 * MiB, bs: 4096, groups: 1 },
  { name: '4k-1g', size: GiB, bs: 4096, groups: 8 },
  { name: '4k-8g', size: 8 * GiB, bs: 4096, groups: 64 },
  // 5 groups and 20,000 blocks: a short last group with its own tables.
  { name: '4k-short-last', size: (5 * 32768 + 20000) * 4096, bs: 4096, groups: 6 },
  // 300 blocks over 5 groups: too short for a group's tables + 50, mke2fs drops it.
  { name: '4k-dropped-last', size: (5 * 32768 + 300) * 4096, bs: 4096, groups: 5 },
  // A 1 GiB journal: 8 extents, so its tree has a leaf block (placed as extent_node_split places it).
  { name: '4k-200g', size: 200 * GiB, bs: 4096, groups: 1600, bytes: false },
  { name: '1k-64m', size: 64 * MiB, bs: 1024, groups: 8 },
  { name: '1k-1g', size: GiB, bs: 1024, groups: 128 },
  { name: '1k-short-last', size: (7 * 8192 + 1000) * 1024, bs: 1024, groups: 8 },
]

t.setTimeout(240_000)

for (const c of CASES) {
  t.test(`${c.name}: as mkfs.ext4 -b ${c.bs} makes it`, async (t) => {
    const dir = scratch(t, `mkfs-${c.name}`)
    const { ref, ours, result } = await pair(dir, c.name, c.size, c.bs)
    t.equal(result.geometry.groupCount, c.groups, 'group count')

    const fsck = e2fsck(ours)
    if (fsck.status !== 0) t.comment(fsck.out)
    t.equal(fsck.status, 0, 'e2fsck -fn is clean')

    const r = dumpe2fs(ref, false)
    const o = dumpe2fs(ours, false)
    for (const f of KEY_FIELDS) t.equal(o.fields.get(f), r.fields.get(f), f)
    t.equal(o.fields.get('Filesystem features'), 'has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum')
    t.equal(o.fields.get('Default directory hash'), 'half_md4')
    // mke2fs leaves the journal's features to the kernel's first mount; ours carries them from the start.
    t.equal(r.fields.get('Journal features'), '(none)')
    t.equal(o.fields.get('Journal features'), 'journal_64bit journal_checksum_v3')
    t.equal(o.fields.get('Journal checksum type'), 'crc32c')
    t.equal(o.groups.length, r.groups.length, 'as many group lines')
    t.strictSame(o.groups, r.groups, 'every group: tables, flags, free counts and ranges')

    if (c.bytes === false) {
      t.equal(debugfsStat(ours, 8), debugfsStat(ref, 8), 'the journal inode: size, blocks, extent tree (leaf and extents)')
      return
    }
    const geo = result.geometry
    const journalSb = superblockJournalBlock(ours)
    const allowed = new Set<number>([journalSb])
    for (let g = 0; g < geo.groupCount; g++) if (groupHasSuper(g)) allowed.add(geo.firstDataBlock + g * geo.blocksPerGroup)
    const diff = differingBlocks(ref, ours, geo.blockSize)
    t.strictSame(diff.filter((b) => !allowed.has(b)), [], 'only superblocks and the journal superblock differ')
    const sr = superblockOf(ref)
    const so = superblockOf(ours)
    t.strictSame({ ...so, kbytesWritten: 0, checksum: 0 }, { ...sr, kbytesWritten: 0, checksum: 0 }, 'superblock fields equal but s_kbytes_written')

    const img = await openImage(t, ours)
    for (let g = 0; g < img.groupCount; g++) await img.checkBitmaps(g)
    const names = (await img.readDir(2)).map((e) => e.text)
    t.strictSame(names, ['.', '..', 'lost+found'], 'the root lists lost+found')
    const lpf = await img.readInode(await img.lookup('/lost+found'))
    t.equal(lpf.size, Math.min(12, Math.max(2, 16384 / c.bs)) * c.bs, 'lost+found preallocated')
    t.strictSame((await img.readDir(11)).map((e) => e.text), ['.', '..'])
  })
}

/** debugfs's stat of an inode without its checksum line. */
function debugfsStat(file: string, ino: number): string {
  const r = spawnSync('debugfs', ['-R', `stat <${ino}>`, file], { encoding: 'utf8' })
  return r.stdout.replace(/Inode checksum: \S+/, '')
}

/** The journal's first block, from s_jnl_blocks (the first extent's start), checked to hold an empty v2 journal superblock. */
function superblockJournalBlock(file: string): number {
  const sb = superblockOf(file)
  const start = sb.jnlBlocks.readUInt32LE(12 + 8) + sb.jnlBlocks.readUInt16LE(12 + 6) * 2 ** 32
  const raw = Buffer.alloc(1024)
  const fd = fs.openSync(file, 'r')
  try {
    fs.readSync(fd, raw, 0, raw.length, start * (1024 << sb.logBlockSize))
  } finally {
    fs.closeSync(fd)
  }
  const j = decodeJournalSuperblock(raw)
  if (j.start !== 0 || j.sequence !== 1 || j.first !== 1) throw new Error(`journal superblock not empty: start ${j.start} sequence ${j.sequence}`)
  return start
}
