/*
 * Reader bugs the fuzz of fuzz-reader.test.ts led to, each as the exact
 * damage that shows it, applied to a kernel-filled image (offsets found by
 * the reader itself, so they do not depend on where the kernel put things).
 * Needs root and loop devices (skips, saying why, without them).
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { decodeExtentNode } from '../../../vfs/engine/format/extent.ts'
import { I_BLOCK_OFFSET, INODE_CHECKSUM_HI_OFFSET, INODE_CHECKSUM_LO_OFFSET } from '../../../vfs/engine/format/inode.ts'
import { csumSeed, inodeCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import { mkfs, scratch, whyNoLoopMount, withMount } from './format-helpers.ts'

const noLoop = whyNoLoopMount()
if (noLoop !== undefined) t.comment(`skipping: ${noLoop}`)

/** Ten separate 3000-byte runs: more extents than i_block holds, so the file gets a leaf block. */
function fragmented(file: string, fillByte: number): void {
  const fd = fs.openSync(file, 'w')
  for (let i = 0; i < 10; i++) fs.writeSync(fd, Buffer.alloc(3000, fillByte), 0, 3000, i * 64 * 1024)
  fs.closeSync(fd)
}

async function kernelImage(t: Test, fill: (mnt: string) => void): Promise<Buffer> {
  const dir = scratch(t, 'fuzz-regress')
  const image = path.join(dir, 'fs.img')
  mkfs(image, 16 << 20, ['-b', '1024'])
  await withMount(t, image, fill)
  return fs.readFileSync(image)
}

async function inodeOffset(img: Ext4Image, ino: number): Promise<number> {
  const gd = await img.groupDesc(Math.floor((ino - 1) / img.sb.inodesPerGroup))
  return gd.inodeTable * img.blockSize + ((ino - 1) % img.sb.inodesPerGroup) * img.inodeSize
}

/** Write the inode's checksum as it now is, so the damage is past the verifier (as a bad writer's would be). */
function resumInode(bytes: Buffer, img: Ext4Image, ino: number, at: number): void {
  const raw = bytes.subarray(at, at + img.inodeSize)
  const sum = inodeCsum(csumSeed(img.sb), ino, raw.readUInt32LE(0x64), raw)
  raw.writeUInt16LE(sum & 0xffff, INODE_CHECKSUM_LO_OFFSET)
  raw.writeUInt16LE(sum >>> 16, INODE_CHECKSUM_HI_OFFSET)
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    if (err instanceof FormatError) return `${err.code}: ${err.message}`
    throw err
  }
}

t.test('an extent block verified for one inode is verified again when another inode names it', { skip: noLoop ?? false }, async (t) => {
  // The cache of decoded extent nodes was keyed by block alone, so once inode A's leaf was read (and verified
  // against A), inode B pointing at the same block got it unchecked: B's checksum chains B's number and generation.
  const bytes = await kernelImage(t, (mnt) => {
    fragmented(path.join(mnt, 'a'), 0xaa)
    fragmented(path.join(mnt, 'b'), 0xbb)
  })
  const plain = await Ext4Image.open(MemoryDevice.fromBuffer(bytes), { verifier: NO_VERIFY })
  const a = await plain.lookup('/a')
  const b = await plain.lookup('/b')
  const leafOf = async (ino: number): Promise<number> => {
    const root = decodeExtentNode((await plain.readInode(ino)).block, 60, 'root')
    t.equal(root.header.depth, 1, `inode ${ino} has a leaf block`)
    return root.indexes[0]?.leaf ?? -1
  }
  const leafA = await leafOf(a)
  const leafB = await leafOf(b)
  // B's first index entry (ei_leaf_lo, after the 12-byte header and ei_block) now names A's leaf.
  const atB = await inodeOffset(plain, b)
  t.equal(bytes.readUInt32LE(atB + I_BLOCK_OFFSET + 12 + 4), leafB, 'ei_leaf_lo of inode b found')
  bytes.writeUInt32LE(leafA, atB + I_BLOCK_OFFSET + 12 + 4)
  resumInode(bytes, plain, b, atB)

  const cold = await Ext4Image.open(MemoryDevice.fromBuffer(bytes))
  const expected = `EXT4_BAD_CHECKSUM: extent-block of inode ${b} in block ${leafA}: checksum`
  t.match(await codeOf(cold.readFile(b, await cold.readInode(b), 0, 4096)), expected, 'read first: caught')
  const warm = await Ext4Image.open(MemoryDevice.fromBuffer(bytes))
  t.equal((await warm.readFile(a, await warm.readInode(a), 0, 3000)).toString('hex'), 'aa'.repeat(3000), 'a reads (its leaf is now cached)')
  t.match(await codeOf(warm.readFile(b, await warm.readInode(b), 0, 4096)), expected, 'read after a: caught too')
})

t.test('loops in the structure end: an extent node naming itself, a directory naming its parent, symlinks naming each other (and chains of symlinks resolve)', { skip: noLoop ?? false }, async (t) => {
  const bytes = await kernelImage(t, (mnt) => {
    fragmented(path.join(mnt, 'a'), 0xaa)
    fs.mkdirSync(path.join(mnt, 'd'))
    fs.mkdirSync(path.join(mnt, 'd', 'e'))
    fs.symlinkSync('loop-b', path.join(mnt, 'loop-a'))
    fs.symlinkSync('loop-a', path.join(mnt, 'loop-b'))
    fs.symlinkSync('d', path.join(mnt, 'to-d'))
    fs.symlinkSync('to-d', path.join(mnt, 'chain'))
  })
  const plain = await Ext4Image.open(MemoryDevice.fromBuffer(bytes), { verifier: NO_VERIFY })
  const a = await plain.lookup('/a')
  const d = await plain.lookup('/d')
  const bs = plain.blockSize
  const leaf = decodeExtentNode((await plain.readInode(a)).block, 60, 'root').indexes[0]?.leaf ?? -1
  // The root now claims depth 2; the leaf becomes an index node (depth 1) whose one entry names the leaf itself.
  const atA = await inodeOffset(plain, a)
  bytes.writeUInt16LE(2, atA + I_BLOCK_OFFSET + 6)
  bytes.writeUInt16LE(1, leaf * bs + 2)
  bytes.writeUInt16LE(1, leaf * bs + 6)
  bytes.writeUInt32LE(0, leaf * bs + 12)
  bytes.writeUInt32LE(leaf, leaf * bs + 12 + 4)
  bytes.writeUInt16LE(0, leaf * bs + 12 + 8)
  // d/e's entry now names d itself: /d/e/e/e/... is d, as deep as the path goes.
  const dirD = await plain.readDir(d)
  const e = dirD.find((x) => x.text === 'e')
  t.ok(e, 'd/e listed')
  // lookup stopped at the end of a symlink's target even mid-path, so a link to a link to a directory was not one (ENOTDIR).
  t.equal(await plain.lookup('/chain/e'), e?.inode, 'a symlink to a symlink to a directory is followed mid-path')
  const dBlock = (await plain.mapBlock(d, await plain.readInode(d), 0)).extent?.start ?? -1
  t.equal(bytes.readUInt32LE(dBlock * bs + (e?.offset ?? 0)), e?.inode, 'the entry of e found in d\'s block')
  bytes.writeUInt32LE(d, dBlock * bs + (e?.offset ?? 0))

  const img = await Ext4Image.open(MemoryDevice.fromBuffer(bytes), { verifier: NO_VERIFY })
  t.equal(await codeOf(img.readFile(a, await img.readInode(a), 0, 4096)), `EXT4_CORRUPT: inode ${a}: extent block ${leaf} at depth 1 under depth 1`)
  t.equal(await img.lookup(`/d${'/e'.repeat(200)}`), d, 'a directory naming its parent: a path through it ends where the path does')
  await t.rejects(img.lookup('/loop-a/x'), { name: 'VfsError', code: 'ELOOP' }, 'symlinks naming each other: ELOOP after 40 follows')
})
