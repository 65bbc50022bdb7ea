/*
 * The pieces of mkfs's layout on their own: which groups hold superblock
 * copies, the journal and size-type tables of mke2fs, the free-run search
 * placement is built on, geometry refusals with their codes and messages,
 * and an image formatted in memory read back by our checksum-verifying reader.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { BlockMap } from '../../../vfs/engine/mkfs/block-map.ts'
import { backupGroups, computeGeometry, defaultJournalBlocks, groupHasSuper, sizeType } from '../../../vfs/engine/mkfs/geometry.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { probeFileSystem } from '../../../vfs/engine/mkfs/probe.ts'

const MiB = 2 ** 20

t.test('sparse_super groups: 0, 1 and powers of 3, 5, 7', async (t) => {
  const withSuper = Array.from({ length: 400 }, (_, g) => g).filter(groupHasSuper)
  t.strictSame(withSuper, [0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343])
  t.strictSame(backupGroups(400), [1, 3, 5, 7, 9, 25, 27, 49, 81, 125, 243, 343], 'in list_backups order')
  t.strictSame(backupGroups(1), [], 'one group: no backups')
  t.strictSame(backupGroups(8), [1, 3, 5, 7])
})

t.test("mke2fs's tables: journal size by blocks, size types", async (t) => {
  const cases: Array<[number, number]> = [
    [2047, -1], [2048, 1024], [32767, 1024], [32768, 4096], [262143, 4096], [262144, 8192], [524288, 16384],
    [4096 * 1024, 32768], [8192 * 1024, 65536], [16384 * 1024, 131072], [32768 * 1024, 262144],
  ]
  for (const [blocks, journal] of cases) t.equal(defaultJournalBlocks(blocks), journal, `${blocks} blocks`)
  t.equal(sizeType(2 * MiB).name, 'floppy')
  t.strictSame(sizeType(511 * MiB), { name: 'small', blockSize: 1024, bytesPerInode: 4096 })
  t.strictSame(sizeType(512 * MiB), { name: 'default', blockSize: 4096, bytesPerInode: 16384 })
  t.equal(sizeType(4 * 2 ** 40).name, 'big')
  t.equal(sizeType(16 * 2 ** 40).name, 'huge')
})

t.test('geometry: counts and refusals', async (t) => {
  const g = computeGeometry({ size: 8 * 2 ** 30 })
  t.strictSame(
    [g.blockSize, g.blocksCount, g.groupCount, g.inodesPerGroup, g.reservedGdtBlocks, g.journalBlocks, g.rBlocksCount],
    [4096, 2097152, 64, 8192, 1023, 16384, 104857],
    '8 GiB: as dumpe2fs reports for mkfs.ext4',
  )
  t.equal(computeGeometry({ size: 64 * MiB, bytesPerInode: 1024, blockSize: 4096 }).inodesCount, 16384, 'a ratio below the block size is raised to it')
  t.throws(() => computeGeometry({ size: MiB }), { code: 'MKFS_TOO_SMALL', message: '1024 blocks is too small for a journal (at least 2048 blocks)' })
  t.throws(() => computeGeometry({ size: 16 * 1024 }), { code: 'MKFS_TOO_SMALL', message: '16384 bytes is too small for a file system' })
  t.throws(() => computeGeometry({ size: 2 ** 32 * 4096 + 8192 }), { code: 'MKFS_TOO_LARGE', message: '4294967298 blocks of 4096 bytes: more than the 4294967296 we format' })
  t.throws(() => computeGeometry({ size: 64 * MiB, bytesPerInode: 2 ** 30 }), { code: 'MKFS_BAD_OPTION' })
})

t.test('the free-run search of ext2fs_get_free_blocks2', async (t) => {
  const m = new BlockMap(100, 0)
  m.mark(0, 10)
  m.mark(15, 1)
  t.equal(m.getFree(0, 0, 1), 10, 'first free from the start')
  t.equal(m.getFree(0, 0, 6), 16, 'a run of 6 skips the used block at 15')
  t.equal(m.getFree(12, 20, 1), 12, 'from start')
  t.equal(m.getFree(95, 99, 10), -1, 'a search that may not wrap fails at the end')
  t.equal(m.getFree(95, 50, 10), 16, 'one that may wraps to the first data block')
  m.mark(16, 84)
  t.equal(m.getFree(10, 10, 1), 10, 'start itself')
  m.mark(10, 5)
  t.equal(m.getFree(50, 50, 1), -1, 'a full map: -1, no endless loop')
  t.equal(m.countUsed(0, 100), 100)
  t.throws(() => { m.mark(99, 2); }, RangeError)
})

t.test('makeFileSystem in memory: refusals, then an image our reader verifies', async (t) => {
  const dev = new MemoryDevice(32 * MiB)
  await t.rejects(makeFileSystem(dev, { zeroed: true, label: 'x'.repeat(17) }), { code: 'MKFS_BAD_OPTION', message: 'label "xxxxxxxxxxxxxxxxx" is 17 bytes; at most 16' })
  await t.rejects(makeFileSystem(dev, { zeroed: true, uuid: Buffer.alloc(4) }), { code: 'MKFS_BAD_OPTION', message: 'a UUID is 16 bytes, got 4' })
  t.equal(await probeFileSystem(dev), undefined, 'nothing written by a refusal')
  const r = await makeFileSystem(dev, { zeroed: true, label: 'mem' })
  t.equal(r.geometry.blockSize, 1024)
  t.equal((await probeFileSystem(dev))?.type, 'ext4')
  const img = await Ext4Image.open(dev)
  t.equal(img.sb.volumeName.subarray(0, 3).toString(), 'mem')
  for (let g = 0; g < img.groupCount; g++) await img.checkBitmaps(g)
  for (const ino of [1, 2, 3, 7, 8, 11]) await img.readInode(ino)
  t.strictSame((await img.readDir(2)).map((e) => e.text), ['.', '..', 'lost+found'])
})
