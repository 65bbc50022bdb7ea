/*
 * Images the reader must refuse, each with its exact code and before any
 * allocation sized by the image: too short for a superblock, not ext4, a
 * superblock counting more blocks than the file holds, a feature we do not
 * read (named), and tsnfs debug reporting each as `tsnfs debug: IMAGE: ...`.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { decodeSuperblock, encodeSuperblock, SUPERBLOCK_CHECKSUM_OFFSET } from '../../../vfs/engine/format/superblock.ts'
import { superblockCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import { unsupportedFeatures } from '../../../vfs/engine/format/features.ts'
import { mkfs, scratch, tsnfsRaw } from './format-helpers.ts'

async function openCode(image: string): Promise<{ code: string; message: string }> {
  const dev = await FileReadAt.open(image)
  try {
    await Ext4Image.open(dev)
    return { code: 'opened', message: '' }
  } catch (err) {
    const e = err as Error & { code?: string }
    return { code: e.code ?? 'none', message: e.message }
  } finally {
    await dev.close()
  }
}

/** The superblock with its metadata_csum checksum recomputed, so the field change is what gets judged. */
function withSuperblockCsum(sb: Buffer): Buffer {
  sb.writeUInt32LE(superblockCsum(sb), SUPERBLOCK_CHECKSUM_OFFSET)
  return sb
}

t.test('a truncated image, a bad magic and a block count past the image end are refused with their codes', async (t) => {
  const dir = scratch(t, 'refuse')
  const good = path.join(dir, 'good.img')
  mkfs(good, 64 << 20, ['-b', '4096'])
  t.equal((await openCode(good)).code, 'opened', 'the untouched image opens')

  const tiny = path.join(dir, 'tiny.img')
  fs.copyFileSync(good, tiny)
  fs.truncateSync(tiny, 1500)
  const r1 = await openCode(tiny)
  t.equal(r1.code, 'EXT4_TRUNCATED', 'cut inside the superblock')
  t.match(r1.message, /1500 bytes ends before the superblock/)

  const half = path.join(dir, 'half.img')
  fs.copyFileSync(good, half)
  fs.truncateSync(half, 32 << 20)
  const r2 = await openCode(half)
  t.equal(r2.code, 'EXT4_IMAGE_TOO_SMALL', 'cut to half: the superblock counts blocks past the end')
  t.match(r2.message, /16384 blocks of 4096 bytes/)

  const magic = path.join(dir, 'magic.img')
  fs.copyFileSync(good, magic)
  const fd = fs.openSync(magic, 'r+')
  fs.writeSync(fd, Buffer.from([0x54, 0xef]), 0, 2, 1024 + 0x38)
  fs.closeSync(fd)
  const r3 = await openCode(magic)
  t.equal(r3.code, 'EXT4_BAD_MAGIC')
  t.match(r3.message, /0xef54/)

  // Same size, but a superblock claiming 2^33 blocks (64bit high word): refused before anything is read from them.
  const huge = path.join(dir, 'huge.img')
  fs.copyFileSync(good, huge)
  const raw = fs.readFileSync(huge).subarray(1024, 2048)
  const sb = decodeSuperblock(raw)
  sb.blocksCountHi = 2
  const hfd = fs.openSync(huge, 'r+')
  fs.writeSync(hfd, withSuperblockCsum(encodeSuperblock(sb, raw)), 0, 1024, 1024)
  fs.closeSync(hfd)
  t.equal((await openCode(huge)).code, 'EXT4_IMAGE_TOO_SMALL', 'a 64-bit block count beyond the image')

  const bs = path.join(dir, 'bs.img')
  fs.copyFileSync(good, bs)
  sb.blocksCountHi = 0
  sb.logBlockSize = 7
  const bfd = fs.openSync(bs, 'r+')
  fs.writeSync(bfd, withSuperblockCsum(encodeSuperblock(sb, raw)), 0, 1024, 1024)
  fs.closeSync(bfd)
  t.equal((await openCode(bs)).code, 'EXT4_BAD_BLOCK_SIZE', 'block size 128 KiB')

  for (const [img, want] of [[tiny, /ends before the superblock \(needs 2048\) \(EXT4_TRUNCATED\)/], [half, /\(EXT4_IMAGE_TOO_SMALL\)/], [magic, /bad magic 0xef54 \(not ext2\/3\/4\) \(EXT4_BAD_MAGIC\)/]] as const) {
    const r = await tsnfsRaw(['debug', img, 'ls', '/'])
    t.equal(r.code, 1, `tsnfs debug on ${path.basename(img)}: exit 1`)
    t.match(r.stderr, new RegExp(`^tsnfs debug: ${img.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `), 'names the image')
    t.match(r.stderr, want)
  }
})

t.test('a feature we do not implement is named', async (t) => {
  const dir = scratch(t, 'feature')
  const inline = path.join(dir, 'inline.img')
  mkfs(inline, 64 << 20, ['-b', '4096', '-O', 'inline_data'])
  const r = await openCode(inline)
  t.equal(r.code, 'EXT4_UNSUPPORTED_FEATURE')
  t.equal(r.message, 'unsupported feature: inline_data')
  const dev = await FileReadAt.open(inline)
  const sb = decodeSuperblock(await dev.read(1024, 1024))
  await dev.close()
  t.same(unsupportedFeatures(sb), ['inline_data'], 'unsupportedFeatures lists it, and only it')

  // orphan_file is a compat feature: readable, but not implemented (refused read-write later).
  const orphan = path.join(dir, 'orphan.img')
  mkfs(orphan, 64 << 20, ['-b', '4096', '-O', 'orphan_file,metadata_csum_seed'])
  t.equal((await openCode(orphan)).code, 'opened', 'orphan_file and metadata_csum_seed do not stop reading')
  const odev = await FileReadAt.open(orphan)
  const osb = decodeSuperblock(await odev.read(1024, 1024))
  await odev.close()
  t.same(unsupportedFeatures(osb), ['orphan_file', 'metadata_csum_seed'])

  const cli = await tsnfsRaw(['debug', inline, 'stat', '/'])
  t.equal(cli.code, 1)
  t.equal(cli.stderr, `tsnfs debug: ${inline}: unsupported feature: inline_data (EXT4_UNSUPPORTED_FEATURE)\n`)
})
