/*
 * What the fsck tests share: a base image made by mkfs.ext4 and filled by
 * the kernel's loop mount (built once per test file), and the damage cases,
 * each injected into a sparse copy of it with debugfs -w or by rewriting
 * bytes (recomputing checksums where the damage is meant to be semantic).
 * Each case asks e2fsck -fn and checkImage for their verdicts.
 */
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { parseDirBlock } from '../../../vfs/engine/format/dirent.ts'
import { checkImage } from '../../../vfs/engine/fsck/check.ts'
import type { FsckResult } from '../../../vfs/engine/fsck/problems.ts'
import { csumSeed, inodeSeed } from '../../../vfs/engine/reader/csum-verifier.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import { mkfs, seededBytes, sh, withMount } from './format-helpers.ts'

export const BIG_DIR_ENTRIES = 20000
/** Debian 12's default features, spelled out. */
export const MKFS_FEATURES = ['-O', 'has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,sparse_super,large_file,huge_file,dir_nlink,extra_isize,metadata_csum', '-E', 'lazy_itable_init=1']

/** mkfs.ext4 an image of 64 MiB with blockSize blocks and fill it through the kernel. */
export async function buildBase(t: Test, dir: string, blockSize: number, seed: number): Promise<string> {
  const image = path.join(dir, `base-${blockSize}.img`)
  mkfs(image, 64 << 20, ['-b', String(blockSize), '-N', '32768', ...MKFS_FEATURES])
  const rand = seededBytes(seed)
  await withMount(t, image, (root) => {
    const p = (rel: string): string => path.join(root, rel)
    fs.mkdirSync(p('a/b/c/d/e'), { recursive: true })
    fs.writeFileSync(p('a/b/c/d/e/f.txt'), 'deep in the tree\n')
    fs.writeFileSync(p('a/data.bin'), rand(300_000))
    fs.linkSync(p('a/data.bin'), p('a/b/hard.bin'))
    fs.writeFileSync(p('one.txt'), rand(1000))
    fs.writeFileSync(p('two.txt'), rand(1000))
    fs.symlinkSync('a/b/c/d/e/f.txt', p('fast'))
    fs.symlinkSync(`${'far/away/'.repeat(12)}target`, p('slow'))
    const fd = fs.openSync(p('sparse'), 'w')
    fs.writeSync(fd, rand(5000), 0, 5000, 0)
    fs.writeSync(fd, rand(5000), 0, 5000, 40 << 20)
    fs.ftruncateSync(fd, 50 << 20)
    fs.closeSync(fd)
    sh('mkfifo', [p('fifo')])
    sh('mknod', [p('chr'), 'c', '1', '3'])
    sh('mknod', [p('blk'), 'b', '7', '0'])
    fs.mkdirSync(p('big'))
    for (let i = 0; i < BIG_DIR_ENTRIES; i++) fs.closeSync(fs.openSync(p(`big/entry-${i}-${'n'.repeat(i % 30)}`), 'w'))
  })
  return image
}

/** debugfs -w -R cmd on image; its stdout. */
/** The first blocks hold nearly all the metadata of smallDamageBase's 4 MiB, 1 KiB-block image. */
export const SMALL_METADATA_BYTES = 600 * 1024

/**
 * A 4 MiB, 1 KiB-block image made by mkfs.ext4 -d from a small tree (40 files of growing size, a
 * nested directory, a fast symlink): the base random damage is laid on. Returns its path and bytes.
 */
export function smallDamageBase(dir: string): { base: string; original: Buffer } {
  const tree = path.join(dir, 'tree')
  fs.mkdirSync(path.join(tree, 'd1/d2'), { recursive: true })
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(tree, `d1/f${i}`), `file ${i}\n`.repeat(i * 30))
  fs.symlinkSync('d1/f1', path.join(tree, 'fast'))
  const base = path.join(dir, 'base.img')
  mkfs(base, 4 << 20, ['-b', '1024', ...MKFS_FEATURES, '-d', tree])
  return { base, original: fs.readFileSync(base) }
}

export function debugfs(image: string, cmd: string, write = true): string {
  const r = spawnSync('debugfs', [...(write ? ['-w'] : []), '-R', cmd, image], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`debugfs ${cmd}: exit ${r.status}: ${r.stderr}`)
  return r.stdout
}

/** Physical block of logical block lblk of path. */
export function bmap(image: string, p: string, lblk = 0): number {
  return Number(debugfs(image, `bmap ${p} ${lblk}`, false).trim())
}

export function inodeOf(image: string, p: string): number {
  const m = /Inode: (\d+)/.exec(debugfs(image, `stat ${p}`, false))
  if (m?.[1] === undefined) throw new Error(`no inode for ${p}`)
  return Number(m[1])
}

/** Byte offset of inode ino in the image. */
export function inodeOffset(image: string, p: string, blockSize: number): number {
  const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(debugfs(image, `imap ${p}`, false))
  if (m?.[1] === undefined || m[2] === undefined) throw new Error(`imap ${p}`)
  return Number(m[1]) * blockSize + parseInt(m[2], 16)
}

/** Rewrite block 0 of directory dirPath: mutate the entry named name, then recompute the block's checksum tail. */
export async function patchDirEntry(image: string, dirPath: string, name: string, mutate: (block: Buffer, off: number) => void): Promise<void> {
  const dev = await FileReadAt.open(image)
  let block: Buffer
  let at: number
  let seed: number
  try {
    const img = await Ext4Image.open(dev, { verifier: NO_VERIFY })
    const ino = await img.lookup(dirPath)
    const inode = await img.readInode(ino)
    const m = await img.mapBlock(ino, inode, 0)
    if (m.extent === undefined) throw new Error(`${dirPath}: block 0 is a hole`)
    at = m.extent.start * img.blockSize
    block = await img.readBlocks(m.extent.start, 1, dirPath)
    const entry = parseDirBlock(block, img.blockSize, dirPath).entries.find((e) => e.name.toString() === name)
    if (entry === undefined) throw new Error(`${dirPath}: no entry ${name}`)
    mutate(block, entry.offset)
    seed = inodeSeed(csumSeed(img.sb), ino, inode.generation)
  } finally {
    await dev.close()
  }
  const t = block.length - 12
  block.writeUInt32LE(crc32cUpdate(seed, block.subarray(0, t)), t + 8)
  const fd = fs.openSync(image, 'r+')
  fs.writeSync(fd, block, 0, block.length, at)
  fs.closeSync(fd)
}

export function flipBit(image: string, offset: number, bit: number): void {
  const fd = fs.openSync(image, 'r+')
  const b = Buffer.alloc(1)
  fs.readSync(fd, b, 0, 1, offset)
  b[0] = (b[0] ?? 0) ^ (1 << bit)
  fs.writeSync(fd, b, 0, 1, offset)
  fs.closeSync(fd)
}

export function e2fsck(image: string): { code: number | null; out: string } {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  return { code: r.status, out: r.stdout + r.stderr }
}

/**
 * Whether `e2fsck -fn` finds anything: a non-zero exit, or a problem it reported and was told to
 * leave (-n answers every question no). Its exit alone is not the verdict: a group descriptor
 * whose checksum is wrong ("... checksums are invalid. Fix? no ... IGNORED") still exits 0.
 */
export function e2fsckFinds(image: string): boolean {
  const { code, out } = e2fsck(image)
  return code !== 0 || /\? no$|IGNORED/m.test(out)
}

export async function fsckImage(image: string): Promise<FsckResult> {
  const dev = await FileReadAt.open(image)
  try {
    return await checkImage(dev)
  } finally {
    await dev.close()
  }
}

export interface DamageCase {
  name: string
  /** What our fsck must report. */
  pass: number
  code: string
  inject(image: string, blockSize: number): Promise<void> | void
}

/** One damage per case, as the brief lists them. */
export const CASES: DamageCase[] = [
  { name: "zero an inode's extent header", pass: 1, code: 'EXTENT_BAD_HEADER', inject: (img) => void debugfs(img, 'sif /a/data.bin block[0] 0') },
  { name: 'links_count off by one', pass: 4, code: 'LINK_COUNT_WRONG', inject: (img) => void debugfs(img, 'sif /a/data.bin links_count 3') },
  { name: "a used block's bitmap bit cleared", pass: 5, code: 'BLOCK_BITMAP_DIFF', inject: (img) => void debugfs(img, `freeb ${bmap(img, '/a/data.bin', 5)}`) },
  { name: "a used inode's bitmap bit cleared", pass: 5, code: 'INODE_BITMAP_DIFF', inject: (img) => void debugfs(img, 'freei /a/b/c/d/e/f.txt') },
  {
    name: 'one block claimed by two files',
    pass: 1,
    code: 'BLOCK_MULTIPLY_CLAIMED',
    // i_block[5] is ee_start_lo of the root's only extent: point one.txt at two.txt's block.
    inject: (img) => void debugfs(img, `sif /one.txt block[5] ${bmap(img, '/two.txt')}`),
  },
  { name: 'a dirent naming a free inode', pass: 2, code: 'DIRENT_UNUSED_INODE', inject: (img) => void debugfs(img, 'clri /a/b/c/d/e/f.txt') },
  {
    name: 'wrong file type in a dirent',
    pass: 2,
    code: 'DIRENT_BAD_FILETYPE',
    inject: (img) => patchDirEntry(img, '/a/b/c/d/e', 'f.txt', (b, off) => void b.writeUInt8(2, off + 7)),
  },
  { name: 'an unreachable directory', pass: 3, code: 'DIR_UNCONNECTED', inject: (img) => void debugfs(img, 'unlink /a/b/c/d') },
  {
    name: 'a bad rec_len',
    pass: 2,
    code: 'DIRENT_BAD_REC_LEN',
    inject: (img) => patchDirEntry(img, '/a/b/c/d/e', 'f.txt', (b, off) => void b.writeUInt16LE(10, off + 4)),
  },
  { name: "a descriptor's free count wrong", pass: 5, code: 'GROUP_FREE_BLOCKS_WRONG', inject: (img) => void debugfs(img, 'set_bg 0 free_blocks_count 7') },
  {
    name: 'a flipped bit in a checksummed block (an inode)',
    pass: 1,
    code: 'INODE_CSUM',
    // Byte 0x8 is i_atime: the inode still decodes; only its checksum tells.
    inject: (img, bs) => { flipBit(img, inodeOffset(img, '/a/data.bin', bs) + 0x8, 3); },
  },
  {
    name: 'a flipped bit in a checksummed block (a directory leaf)',
    pass: 2,
    code: 'DIR_CSUM',
    // Offset 40 is inside the names of the block's first entries.
    inject: (img, bs) => {
      flipBit(img, bmap(img, '/big', 5) * bs + 40, 0)
    },
  },
  {
    name: 'a flipped bit in a checksummed block (the htree root)',
    pass: 2,
    code: 'HTREE_CSUM',
    // 0x28 is the second dx entry's hash. (Not its block: e2fsck 1.47.0 crashes on an out-of-range one, which we report.)
    inject: (img, bs) => {
      flipBit(img, bmap(img, '/big', 0) * bs + 0x2a, 3)
    },
  },
]

/** Run every case against a copy of base; print both verdicts. */
export async function runCases(t: Test, base: string, dir: string, blockSize: number): Promise<void> {
  for (const c of CASES) {
    await t.test(c.name, async (t) => {
      const image = path.join(dir, 'case.img')
      sh('cp', ['--sparse=always', base, image])
      await c.inject(image, blockSize)
      const e2 = e2fsck(image)
      const ours = await fsckImage(image)
      const hit = ours.problems.find((p) => p.pass === c.pass && p.code === c.code)
      t.comment(`${c.name}: e2fsck -fn exit ${e2.code}; ours ${ours.clean ? 'clean' : `${ours.problems.filter((p) => p.severity === 'error').length} problems (${[...new Set(ours.problems.map((p) => p.code))].join(' ')})`}`)
      // e2fsck -n exits 4 (errors left uncorrected), or 12 when it gives up on a directory it may not salvage.
      t.ok(e2.code !== null && (e2.code & 4) !== 0, `e2fsck -fn finds it (exit ${e2.code}: 4 or 12)${e2.code === 4 ? '' : `\n${e2.out}`}`)
      t.equal(ours.clean, false, 'ours finds it')
      t.ok(hit, `ours reports pass ${c.pass} ${c.code}`, { problems: ours.problems.slice(0, 10) })
      fs.rmSync(image)
    })
  }
}
