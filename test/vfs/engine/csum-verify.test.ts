/*
 * metadata_csum verification against images the real tools made: mkfs.ext4
 * formats, the kernel's loop mount fills (an htree directory two levels deep,
 * a file whose extent tree has a leaf block, symlinks), and the reader must
 * verify every structure of a full walk cleanly. Then one byte flipped in
 * each kind of structure must give EXT4_BAD_CHECKSUM naming that structure,
 * its block and both sums; an image without metadata_csum is read unverified.
 * Needs root and loop devices (skips, saying why, without them).
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { hasFeature } from '../../../vfs/engine/format/features.ts'
import { decodeDxRoot } from '../../../vfs/engine/format/dirent.ts'
import { decodeExtentHeader } from '../../../vfs/engine/format/extent.ts'
import { isDir, isReg, isSymlink } from '../../../vfs/engine/format/inode.ts'
import { SUPERBLOCK_OFFSET } from '../../../vfs/engine/format/superblock.ts'
import { csumSeed, hasMetadataCsum, metadataCsumVerifier, superblockCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import { Ext4Image, ROOT_INO } from '../../../vfs/engine/reader/image.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import type { MetadataContext, MetadataKind, Verifier } from '../../../vfs/engine/reader/verify.ts'
import { mkfs, readerSha, scratch, seededBytes, sh, whyNoLoopMount, withMount } from './format-helpers.ts'

const KINDS: MetadataKind[] = ['superblock', 'group-desc', 'inode', 'extent-block', 'dir-block', 'dx-block', 'block-bitmap', 'inode-bitmap']
const BIG_DIR_ENTRIES = 3000

interface Seen {
  kind: MetadataKind
  ctx: MetadataContext
}

/** The checksum verifier, recording what it was asked to check. */
function recording(inner: Verifier, seen: Seen[]): Verifier {
  return {
    verify(kind, bytes, ctx) {
      seen.push({ kind, ctx })
      inner.verify(kind, bytes, ctx)
    },
  }
}

async function open(t: Test, image: string, verifier?: Verifier): Promise<Ext4Image> {
  const dev = await FileReadAt.open(image)
  t.teardown(() => dev.close())
  return Ext4Image.open(dev, verifier === undefined ? {} : { verifier })
}

/** Every group's bitmaps, then every directory, inode, file byte and link target reachable from the root; returns the count of inodes. */
async function walk(img: Ext4Image): Promise<number> {
  for (let g = 0; g < img.groupCount; g++) await img.checkBitmaps(g)
  const seen = new Set<number>()
  const visit = async (ino: number): Promise<void> => {
    if (seen.has(ino)) return
    seen.add(ino)
    const inode = await img.readInode(ino)
    if (isDir(inode)) {
      for (const e of await img.readDir(ino, inode)) if (e.text !== '.' && e.text !== '..') await visit(e.inode)
    } else if (isReg(inode)) {
      await readerSha(img, ino, inode)
    } else if (isSymlink(inode)) {
      await img.readlink(ino, inode)
    }
  }
  await visit(ROOT_INO)
  return seen.size
}

function fill(root: string, seed: number): void {
  const rand = seededBytes(seed)
  fs.mkdirSync(path.join(root, 'small'))
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(root, 'small', `file-${i}`), rand(100 + i))
  fs.symlinkSync('small/file-0', path.join(root, 'fast'))
  fs.symlinkSync(`${'x/'.repeat(100)}far`, path.join(root, 'slow'))
  // Ten separate runs: more than the four extents i_block holds, so the tree gets a leaf block.
  const fd = fs.openSync(path.join(root, 'fragmented'), 'w')
  for (let i = 0; i < 10; i++) fs.writeSync(fd, rand(3000), 0, 3000, i * 64 * 1024)
  fs.closeSync(fd)
  fs.mkdirSync(path.join(root, 'big'))
  for (let i = 0; i < BIG_DIR_ENTRIES; i++) fs.writeFileSync(path.join(root, 'big', `entry-with-a-longish-name-${i.toString().padStart(5, '0')}`), '')
}

function flip(image: string, at: number): void {
  const fd = fs.openSync(image, 'r+')
  const b = Buffer.alloc(1)
  fs.readSync(fd, b, 0, 1, at)
  b[0] = b[0]! ^ 0xff
  fs.writeSync(fd, b, 0, 1, at)
  fs.closeSync(fd)
}

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p
    return { code: 'ok', message: '' }
  } catch (err) {
    if (err instanceof FormatError) return { code: err.code, message: err.message }
    throw err
  }
}

const noLoop = whyNoLoopMount()
if (noLoop !== undefined) t.comment(`skipping: ${noLoop}`)

t.test('a kernel-filled metadata_csum image verifies end to end, and one flipped byte in each structure is caught', { skip: noLoop ?? false }, async (t) => {
  const seed = Number(process.env.FORMAT_SEED ?? Math.floor(Math.random() * 2 ** 32))
  t.comment(`seed ${seed} (FORMAT_SEED=${seed} to repeat)`)
  const dir = scratch(t, 'csum')
  const image = path.join(dir, 'fs.img')
  mkfs(image, 32 << 20, ['-b', '1024'])
  await withMount(t, image, (mnt) => { fill(mnt, seed); })

  const plain = await open(t, image, NO_VERIFY)
  t.ok(hasMetadataCsum(plain.sb), 'mkfs.ext4 enables metadata_csum')
  const seen: Seen[] = []
  const img = await open(t, image, recording(metadataCsumVerifier(plain.sb), seen))
  const inodes = await walk(img)
  t.ok(inodes > BIG_DIR_ENTRIES, `walked ${inodes} inodes`)
  for (const kind of KINDS) t.ok(seen.some((s) => s.kind === kind), `${kind}: verified at least once (${seen.filter((s) => s.kind === kind).length})`)
  t.equal(await walk(await open(t, image)), inodes, 'the default verifier (metadata_csum found) walks the same tree')

  // Where each structure is, from the reader itself.
  const bs = img.blockSize
  const fragIno = await img.lookup('/fragmented')
  const fragInode = await img.readInode(fragIno)
  t.equal(decodeExtentHeader(fragInode.block).depth, 1, 'the fragmented file has an extent leaf block')
  const bigIno = await img.lookup('/big')
  const smallIno = await img.lookup('/small')
  const fileIno = await img.lookup('/small/file-3')
  const blockOf = (kind: MetadataKind, ino: number): number => {
    const s = seen.find((x) => x.kind === kind && x.ctx.ino === ino)
    if (s === undefined) throw new Error(`no ${kind} of inode ${ino} seen`)
    return s.ctx.block
  }
  const dxRootBlock = blockOf('dx-block', bigIno)
  const rootBytes = fs.readFileSync(image).subarray(dxRootBlock * bs, (dxRootBlock + 1) * bs)
  const dxRoot = decodeDxRoot(rootBytes, bs, false, 'big')
  t.equal(dxRoot.indirectLevels, 1, 'the big directory has interior htree nodes')
  const dxNodeBlock = seen.find((s) => s.kind === 'dx-block' && s.ctx.ino === bigIno && s.ctx.block !== dxRootBlock)?.ctx.block ?? -1
  t.ok(dxNodeBlock > 0, `an interior htree node at block ${dxNodeBlock}`)
  const dirBlock = blockOf('dir-block', smallIno)
  const dirBytes = fs.readFileSync(image).subarray(dirBlock * bs, (dirBlock + 1) * bs)
  const nameAt = dirBytes.indexOf('file-3')
  t.ok(nameAt > 0, 'file-3 is named in the small directory block')
  const group = Math.floor((fileIno - 1) / img.sb.inodesPerGroup)
  const gd = await img.groupDesc(group)
  const inodeAt = gd.inodeTable * bs + ((fileIno - 1) % img.sb.inodesPerGroup) * img.inodeSize
  const gdTable = (img.sb.firstDataBlock + 1) * bs
  const gd0 = await img.groupDesc(0)

  const cases: Array<{ kind: MetadataKind; at: number; block: number; owner: string; read: (img: Ext4Image) => Promise<unknown> }> = [
    // s_volume_name: nothing the reader checks, so only the checksum can object.
    { kind: 'superblock', at: SUPERBLOCK_OFFSET + 0x78, block: 1, owner: '', read: async () => undefined },
    // s_checksum_type: damage, not an unknown algorithm.
    { kind: 'superblock', at: SUPERBLOCK_OFFSET + 0x175, block: 1, owner: '', read: async () => undefined },
    // bg_free_blocks_count_lo of group 0.
    { kind: 'group-desc', at: gdTable + 0x0c, block: gdTable / bs, owner: ' of group 0', read: (i) => i.groupDesc(0) },
    // i_mtime of /small/file-3.
    { kind: 'inode', at: inodeAt + 0x10, block: Math.floor(inodeAt / bs), owner: ` of inode ${fileIno}`, read: (i) => i.readInode(fileIno) },
    // i_extra_isize: the checksum is judged before the field is believed.
    { kind: 'inode', at: inodeAt + 0x80, block: Math.floor(inodeAt / bs), owner: ` of inode ${fileIno}`, read: (i) => i.readInode(fileIno) },
    // ee_block of the leaf's first extent.
    { kind: 'extent-block', at: blockOf('extent-block', fragIno) * bs + 12, block: blockOf('extent-block', fragIno), owner: ` of inode ${fragIno}`, read: async (i) => i.readFile(fragIno, await i.readInode(fragIno), 0, 1 << 20) },
    { kind: 'dir-block', at: dirBlock * bs + nameAt, block: dirBlock, owner: ` of inode ${smallIno}`, read: (i) => i.readDir(smallIno) },
    // The hash of the root's second entry (in use: count >= 2).
    { kind: 'dx-block', at: dxRootBlock * bs + 0x20 + 8, block: dxRootBlock, owner: ` of inode ${bigIno}`, read: (i) => i.readDir(bigIno) },
    // The interior node's second entry's hash.
    { kind: 'dx-block', at: dxNodeBlock * bs + 0x8 + 8, block: dxNodeBlock, owner: ` of inode ${bigIno}`, read: (i) => i.readDir(bigIno) },
    // The first byte of group 0's bitmaps: the superblock's and the root's bits, always set.
    { kind: 'block-bitmap', at: gd0.blockBitmap * bs, block: gd0.blockBitmap, owner: ' of group 0', read: (i) => i.checkBitmaps(0) },
    { kind: 'inode-bitmap', at: gd0.inodeBitmap * bs, block: gd0.inodeBitmap, owner: ' of group 0', read: (i) => i.checkBitmaps(0) },
  ]
  for (const [n, c] of cases.entries()) {
    const copy = path.join(dir, `flip-${n}.img`)
    fs.copyFileSync(image, copy)
    flip(copy, c.at)
    const r = await codeOf(open(t, copy).then(c.read))
    t.equal(r.code, 'EXT4_BAD_CHECKSUM', `${c.kind}: a byte flipped at ${c.at} is caught`)
    t.match(r.message, new RegExp(`^${c.kind}${c.owner} in block ${c.block}: checksum 0x[0-9a-f]{8} on disk, computed 0x[0-9a-f]{8}$`), r.message)
    const unverified = await codeOf(open(t, copy, NO_VERIFY).then(c.read))
    t.not(unverified.code, 'EXT4_BAD_CHECKSUM', `${c.kind}: NO_VERIFY does not check (${unverified.code})`)
    fs.rmSync(copy)
  }
})

t.test('128-byte inodes keep only the low 16 bits of their checksum, and are verified with them', { skip: noLoop ?? false }, async (t) => {
  const dir = scratch(t, 'csum-small-inode')
  const image = path.join(dir, 'fs.img')
  mkfs(image, 16 << 20, ['-b', '4096', '-I', '128'])
  await withMount(t, image, (mnt) => {
    fill(mnt, 3)
  })
  const img = await open(t, image)
  t.equal(img.inodeSize, 128)
  t.ok((await walk(img)) > BIG_DIR_ENTRIES, 'walks cleanly')
  const ino = await img.lookup('/small/file-1')
  const gd = await img.groupDesc(Math.floor((ino - 1) / img.sb.inodesPerGroup))
  const at = gd.inodeTable * img.blockSize + ((ino - 1) % img.sb.inodesPerGroup) * 128
  flip(image, at + 0x10)
  const r = await codeOf(open(t, image).then((i) => i.readInode(ino)))
  t.equal(r.code, 'EXT4_BAD_CHECKSUM')
  t.match(r.message, new RegExp(`^inode of inode ${ino} in block \\d+: checksum 0x0000[0-9a-f]{4} on disk, computed 0x0000[0-9a-f]{4}$`), r.message)
})

t.test('metadata_csum_seed: the seed comes from s_checksum_seed, so a changed UUID still verifies', { skip: noLoop ?? false }, async (t) => {
  const dir = scratch(t, 'csum-seed')
  const image = path.join(dir, 'fs.img')
  mkfs(image, 16 << 20, ['-b', '4096', '-O', 'metadata_csum_seed'])
  await withMount(t, image, (mnt) => { fill(mnt, 1); })
  sh('tune2fs', ['-U', 'random', image])
  const img = await open(t, image)
  t.ok(hasFeature(img.sb, 'incompat', 'metadata_csum_seed'), 'metadata_csum_seed set')
  t.not(csumSeed(img.sb), crc32cUpdate(0xffffffff, img.sb.uuid), 'the seed is no longer the UUID crc')
  t.ok((await walk(img)) > BIG_DIR_ENTRIES, 'walks cleanly')
})

t.test('an intact superblock naming a checksum algorithm other than crc32c is refused', { skip: noLoop ?? false }, async (t) => {
  const dir = scratch(t, 'csum-type')
  const image = path.join(dir, 'fs.img')
  mkfs(image, 16 << 20, ['-b', '4096'])
  const fd = fs.openSync(image, 'r+')
  const raw = Buffer.alloc(1024)
  fs.readSync(fd, raw, 0, 1024, SUPERBLOCK_OFFSET)
  raw[0x175] = 2
  raw.writeUInt32LE(superblockCsum(raw), 0x3fc)
  fs.writeSync(fd, raw, 0, 1024, SUPERBLOCK_OFFSET)
  fs.closeSync(fd)
  const r = await codeOf(open(t, image))
  t.equal(r.code, 'EXT4_UNSUPPORTED_FEATURE')
  t.equal(r.message, 'superblock: s_checksum_type 2 (only 1, crc32c, is defined)')
})

t.test('an image made with -O ^metadata_csum is read without verification', { skip: noLoop ?? false }, async (t) => {
  const dir = scratch(t, 'nocsum')
  const image = path.join(dir, 'fs.img')
  mkfs(image, 16 << 20, ['-b', '4096', '-O', '^metadata_csum'])
  await withMount(t, image, (mnt) => { fill(mnt, 2); })
  // s_checksum means nothing without the feature: garbage there must not matter.
  flip(image, SUPERBLOCK_OFFSET + 0x3fc)
  const seen: Seen[] = []
  const img = await open(t, image)
  t.notOk(hasMetadataCsum(img.sb), 'no metadata_csum')
  t.ok((await walk(img)) > BIG_DIR_ENTRIES, 'walks cleanly')
  const checked = await open(t, image, recording(NO_VERIFY, seen))
  await walk(checked)
  t.ok(seen.length > 0, 'the reader still offers every structure to a verifier it is given')
})
