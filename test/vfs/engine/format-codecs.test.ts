/*
 * The codecs on exact bytes: extent headers/indexes/leaves (uninitialized
 * lengths, 48-bit starts), directory records (rec_len for 64 KiB blocks, the
 * checksum tail), group descriptors in both sizes, feature names, and the
 * errors a damaged structure gives.
 */
import t from 'tap'
import {
  decodeExtent, decodeExtentIndex, decodeExtentNode, encodeExtent, encodeExtentHeader, encodeExtentIndex, EXTENT_MAGIC,
} from '../../../vfs/engine/format/extent.ts'
import { decodeDxNode, encodeDirEntry, encodeDirTail, parseDirBlock, recLenFromDisk, recLenToDisk } from '../../../vfs/engine/format/dirent.ts'
import { decodeGroupDesc, encodeGroupDesc } from '../../../vfs/engine/format/group-desc.ts'
import type { GroupDesc } from '../../../vfs/engine/format/group-desc.ts'
import { featureNames, unreadableFeatures, unsupportedFeatures } from '../../../vfs/engine/format/features.ts'
import { decodeInode } from '../../../vfs/engine/format/inode.ts'

t.test('extent entries on exact bytes', async (t) => {
  const e = { block: 0x01020304, len: 100, start: 0x0000_1234_5678_9abc, uninit: true }
  const bytes = encodeExtent(e)
  t.equal(bytes.toString('hex'), '04030201' + '6480' + '3412' + 'bc9a7856', 'ee_block, ee_len + 32768, ee_start_hi, ee_start_lo')
  t.same(decodeExtent(bytes, 0), e)
  t.same(decodeExtent(encodeExtent({ ...e, uninit: false, len: 32768 }), 0), { ...e, uninit: false, len: 32768 }, '32768 is an initialized length')
  const ix = { block: 7, leaf: 2 ** 40 + 5 }
  t.equal(encodeExtentIndex(ix).toString('hex'), '07000000' + '05000000' + '0001' + '0000')
  t.same(decodeExtentIndex(encodeExtentIndex(ix), 0), ix)
})

t.test('extent nodes: damage is refused with EXT4_CORRUPT', async (t) => {
  const node = (entries: Buffer[], depth = 0, max = 4, magic = EXTENT_MAGIC): Buffer => {
    const b = Buffer.alloc(60)
    encodeExtentHeader({ magic, entries: entries.length, max, depth, generation: 0 }).copy(b)
    entries.forEach((x, i) => x.copy(b, 12 + i * 12))
    return b
  }
  const a = encodeExtent({ block: 0, len: 4, start: 100, uninit: false })
  const b = encodeExtent({ block: 10, len: 2, start: 200, uninit: false })
  t.same(decodeExtentNode(node([a, b]), 60, 'x').extents.map((e) => e.block), [0, 10])
  t.throws(() => decodeExtentNode(node([a], 0, 4, 0x1234), 60, 'root'), { code: 'EXT4_CORRUPT', message: 'root: bad extent magic 0x1234' })
  t.throws(() => decodeExtentNode(node([a], 0, 5), 60, 'root'), { code: 'EXT4_CORRUPT', message: /max 5 \(room for 4\)/ })
  // e2fsck's rule (ext2fs_extent_header_verify): eh_max at least the room less two; a random fsck round found a
  // root whose eh_max was damaged to 1, which we took for sound and e2fsck called a corrupt extent header.
  t.same(decodeExtentNode(node([a], 0, 2), 60, 'root').extents.length, 1, 'eh_max two below the room: accepted')
  t.throws(() => decodeExtentNode(node([a], 0, 1), 60, 'root'), { code: 'EXT4_CORRUPT', message: /max 1 \(room for 4\)/ })
  t.throws(() => decodeExtentNode(node([b, a]), 60, 'root'), { code: 'EXT4_CORRUPT', message: /overlaps/ })
  t.throws(() => decodeExtentNode(node([a], 6), 60, 'root'), { code: 'EXT4_CORRUPT', message: 'root: extent depth 6' })
  const i1 = encodeExtentIndex({ block: 5, leaf: 9 })
  t.throws(() => decodeExtentNode(node([i1, i1], 1), 60, 'root'), { code: 'EXT4_CORRUPT', message: /out of order/ })
})

t.test('directory records, the checksum tail and rec_len for 64 KiB blocks', async (t) => {
  const bs = 1024
  const block = Buffer.alloc(bs)
  encodeDirEntry({ inode: 2, recLen: 12, fileType: 2, name: Buffer.from('.') }, bs).copy(block, 0)
  encodeDirEntry({ inode: 11, recLen: 20, fileType: 1, name: Buffer.from('hello') }, bs).copy(block, 12)
  encodeDirEntry({ inode: 0, recLen: bs - 12 - 32, fileType: 0, name: Buffer.alloc(0) }, bs).copy(block, 32)
  encodeDirTail(0xdeadbeef).copy(block, bs - 12)
  t.equal(block.subarray(12, 32).toString('hex'), '0b000000' + '1400' + '05' + '01' + Buffer.from('hello').toString('hex') + '000000000000000000'.slice(0, 14))
  const parsed = parseDirBlock(block, bs, 'b')
  t.same(parsed.entries.map((e) => [e.inode, e.name.toString(), e.fileType, e.offset]), [[2, '.', 2, 0], [11, 'hello', 1, 12]], 'live entries; the empty one is skipped')
  t.equal(parsed.tailChecksum, 0xdeadbeef)
  const bad = Buffer.from(block)
  bad.writeUInt16LE(2000, 12 + 4)
  t.throws(() => parseDirBlock(bad, bs, 'dir 5 block 0'), { code: 'EXT4_CORRUPT', message: 'dir 5 block 0: bad directory entry at 12 (rec_len 2000, name_len 5)' })
  bad.writeUInt16LE(10, 12 + 4)
  t.throws(() => parseDirBlock(bad, bs, 'b'), { code: 'EXT4_CORRUPT' }, 'rec_len below 12')
  t.equal(recLenFromDisk(65535, 65536), 65536)
  t.equal(recLenFromDisk(0, 65536), 65536)
  t.equal(recLenToDisk(65536, 65536), 65535)
  t.equal(recLenFromDisk(recLenToDisk(4096, 4096), 4096), 4096)
  // An htree interior node: one empty entry spanning the block, then limit/count/block and (hash, block) pairs.
  const node = Buffer.alloc(bs)
  node.writeUInt16LE(bs, 4)
  node.writeUInt16LE(126, 8)
  node.writeUInt16LE(2, 10)
  node.writeUInt32LE(3, 12)
  node.writeUInt32LE(0x80000000, 16)
  node.writeUInt32LE(4, 20)
  t.same(decodeDxNode(node, bs, 'n'), { limit: 126, entries: [{ hash: 0, block: 3 }, { hash: 0x80000000, block: 4 }] })
  t.same(parseDirBlock(node, bs, 'n').entries, [], 'a dx_node parses as an empty directory block')
  node.writeUInt16LE(127, 10)
  t.throws(() => decodeDxNode(node, bs, 'n'), { code: 'EXT4_CORRUPT', message: 'n: htree count 127 limit 126' })
})

t.test('group descriptors, 32 and 64 bytes', async (t) => {
  const gd: GroupDesc = {
    blockBitmap: 2 ** 33 + 1, inodeBitmap: 2 ** 32 + 2, inodeTable: 2 ** 34 + 3, freeBlocksCount: 70000, freeInodesCount: 65537, usedDirsCount: 3,
    flags: 4, excludeBitmap: 0, blockBitmapCsum: 0x12345678, inodeBitmapCsum: 0x9abcdef0, itableUnused: 65536 + 9, checksum: 0xbeef,
  }
  const b64 = encodeGroupDesc(gd, 64)
  t.equal(b64.length, 64)
  t.same(decodeGroupDesc(b64, 0, 64), gd, '64-byte form keeps the high halves')
  const lo = decodeGroupDesc(encodeGroupDesc(gd, 32), 0, 32)
  t.equal(lo.inodeTable, 3, '32-byte form: low words only')
  t.equal(lo.freeBlocksCount, 70000 - 65536)
  t.equal(lo.checksum, 0xbeef)
})

t.test('inode times: epoch bits and nanoseconds; owners with high halves', async (t) => {
  const b = Buffer.alloc(256)
  b.writeUInt16LE(0o100644, 0)
  b.writeUInt16LE(0xe240, 2) // uid lo of 123456
  b.writeUInt16LE(1, 0x78) // uid hi
  b.writeInt32LE(-1000, 0x10) // mtime before 1970
  b.writeUInt32LE((250_000_000 << 2) >>> 0, 0x88)
  b.writeUInt32LE(1000, 0xc) // ctime + epoch 1: past 2106
  b.writeUInt32LE((5 << 2) | 1, 0x84)
  b.writeUInt16LE(32, 0x80)
  const i = decodeInode(b, 0, 256, true)
  t.equal(i.uid, 123456)
  t.same(i.mtime, { sec: -1000, nsec: 250_000_000 })
  t.same(i.ctime, { sec: 2 ** 32 + 1000, nsec: 5 })
  b.writeUInt16LE(200, 0x80)
  t.throws(() => decodeInode(b, 0, 256, true), RangeError, 'extra_isize past the inode')
  b.writeUInt16LE(0, 0x80)
  t.equal(decodeInode(b, 0, 256, true).crtime, undefined, 'no extra part: no creation time')
})

t.test('feature names as dumpe2fs prints them', async (t) => {
  const debian = { featureCompat: 0x3c, featureIncompat: 0x2c2, featureRoCompat: 0x46b }
  t.same(featureNames(debian), ['has_journal', 'ext_attr', 'resize_inode', 'dir_index', 'filetype', 'extent', '64bit', 'flex_bg', 'sparse_super', 'large_file', 'huge_file', 'dir_nlink', 'extra_isize', 'metadata_csum'])
  t.same(unsupportedFeatures(debian), [], 'the Debian 12 defaults are all implemented')
  const odd = { featureCompat: 0x1000, featureIncompat: 0x2c2 | 0x8000 | 0x10 | 0x80000000, featureRoCompat: 0x200 }
  t.same(unsupportedFeatures(odd), ['orphan_file', 'meta_bg', 'inline_data', 'FEATURE_I31', 'bigalloc'])
  t.same(unreadableFeatures(odd), ['meta_bg', 'inline_data', 'FEATURE_I31'], 'only incompat features stop reading')
})
