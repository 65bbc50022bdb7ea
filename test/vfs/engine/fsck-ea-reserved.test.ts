/*
 * tsnfs fsck [--repair]: the extended attribute block of a reserved inode
 * (below s_first_ino: here inode 9, and the boot loader inode 5) and of the
 * root. e2fsck's check_blocks runs check_ext_attr for them as for any inode:
 * the block is claimed, counted against h_refcount, judged (header, entries,
 * checksum) and counted in the inode's i_blocks. Each case is judged by
 * e2fsck -fn first; our check must find the same, our repair must leave what
 * e2fsck -fy leaves (the block's bytes, i_file_acl, i_blocks), and e2fsck -fn
 * must be clean after it.
 */
import t from 'tap'
import fs from 'node:fs'
import { scratch } from './format-helpers.ts'
import { aclOf, blockCount, eaFixture, eaValue, readBlock, setRefcount, share, writeBlock } from './fsck-ea-helpers.ts'
import { debugfs, e2fsck, fsckImage } from './fsck-helpers.ts'
import { buildRepairBase, codes, copyImage, repairFile, tell } from './fsck-repair-helpers.ts'
import { correctedByE2fsck, judgeCleanAfter, judgeSound } from './fsck-judge.ts'

t.setTimeout(180_000)
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (TSNFS_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-ea-reserved')
const base = buildRepairBase(dir, seed)
const { holder, value: VALUE, ea: EA } = eaFixture(base, seed)
const HOLDER = holder.path
const RESERVED = '<9>'

await t.test('the root and reserved inode 9 share the block, h_refcount 3: clean for both, repair writes nothing', async (t) => {
  const image = copyImage(dir, base, 'legit.img')
  share(image, '/', EA)
  share(image, RESERVED, EA)
  await setRefcount(image, EA, 3)
  await judgeSound(t, image, 'exit 0: nothing to do')
  fs.rmSync(image)
})

await t.test('reserved inode 9 names a block outside the file system: e2fsck marks it bad, which only a directory entry would report; clean for both', async (t) => {
  const image = copyImage(dir, base, 'outside.img')
  debugfs(image, `sif ${RESERVED} file_acl 99999`)
  t.equal(e2fsck(image).code, 0, 'e2fsck -fn clean')
  t.strictSame((await fsckImage(image)).problems.filter((p) => p.severity === 'error'), [], 'our check: no problem')
  fs.rmSync(image)
})

interface Case {
  name: string
  damage(image: string): Promise<void>
  e2message: RegExp
  /** e2fsck -fn's exit: 4, or 12 (4 and 8) where it aborts on a block it cannot read as one, after saying why. */
  e2code: number
  found: Array<[string, number | undefined]>
  fixedCodes: string[]
  /** The paths whose i_file_acl and i_blocks must read as e2fsck -fy left them. */
  compare: string[]
}

const CASES: Case[] = [
  {
    name: 'reserved inode 9 and the root name the block, h_refcount 1: should be 3',
    damage: async (img) => {
      share(img, '/', EA)
      share(img, RESERVED, EA)
      await setRefcount(img, EA, 1)
    },
    e2message: new RegExp(`Extended attribute block ${EA} has reference count 1, should be 3`),
    e2code: 4,
    found: [['XATTR_REFCOUNT', undefined]],
    fixedCodes: ['XATTR_REFCOUNT_SET'],
    compare: [HOLDER, '/', RESERVED],
  },
  {
    name: "reserved inode 9 names the block, its i_blocks does not count it",
    damage: async (img) => {
      share(img, RESERVED, EA)
      debugfs(img, `sif ${RESERVED} blocks 0`)
      await setRefcount(img, EA, 2)
    },
    e2message: /Inode 9, i_blocks is 0, should be 2/,
    e2code: 4,
    found: [['INODE_BAD_I_BLOCKS', 9]],
    fixedCodes: ['I_BLOCKS_SET'],
    compare: [HOLDER, RESERVED],
  },
  {
    name: 'a shared block whose checksum alone is wrong, first named by reserved inode 9',
    damage: async (img) => {
      share(img, RESERVED, EA)
      await setRefcount(img, EA, 2)
      const b = readBlock(img, EA)
      b.writeUInt32LE((b.readUInt32LE(0x10) ^ 0x5a5a5a5a) >>> 0, 0x10)
      writeBlock(img, EA, b)
    },
    e2message: /extended attribute block \d+ passes checks, but checksum does not match block/,
    e2code: 4,
    found: [['XATTR_CSUM', 9]],
    fixedCodes: ['XATTR_CSUM_SET'],
    compare: [HOLDER, RESERVED],
  },
  {
    name: 'the boot loader inode 5 names a block that is no attribute block',
    damage: async (img) => {
      // A block of zeros past the files: free, so nothing but inode 5 claims it.
      writeBlock(img, 15000, Buffer.alloc(1024))
      debugfs(img, 'sif <5> file_acl 15000')
      debugfs(img, 'sif <5> blocks 2')
    },
    e2message: /Inode 5 has a bad extended attribute block 15000/,
    e2code: 12,
    found: [['XATTR_BAD_BLOCK', 5], ['BLOCK_BITMAP_DIFF', undefined], ['GROUP_FREE_BLOCKS_WRONG', undefined]],
    fixedCodes: ['XATTR_BLOCK_CLEARED', 'I_BLOCKS_SET'],
    compare: ['<5>', HOLDER],
  },
]

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = copyImage(dir, base, 'damaged.img')
    await c.damage(image)
    const e2 = e2fsck(image)
    t.equal(e2.code, c.e2code, `e2fsck -fn finds it (exit ${c.e2code})`)
    t.match(e2.out, c.e2message, 'e2fsck -fn says what')
    const found = (await fsckImage(image)).problems.filter((p) => p.severity === 'error')
    t.strictSame(found.map((p) => [p.code, p.ino]), c.found, `our check: ${c.found.map(([code]) => code).join(', ')}`)
    const theirs = correctedByE2fsck(t, dir, image, 'theirs.img')
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1, 'exit 1: errors corrected')
    t.strictSame(codes(r, 'fixed'), c.fixedCodes, `fixed: ${c.fixedCodes.join(', ')}`)
    t.strictSame(codes(r, 'left'), [], 'nothing left')
    await judgeCleanAfter(t, image)
    for (const p of c.compare) {
      t.equal(debugfs(image, `stat ${p}`, false).match(/File ACL: \d+/)?.[0], debugfs(theirs, `stat ${p}`, false).match(/File ACL: \d+/)?.[0], `${p}: i_file_acl as e2fsck -fy left it`)
      t.equal(blockCount(image, p), blockCount(theirs, p), `${p}: i_blocks as e2fsck -fy left it`)
    }
    t.ok(readBlock(image, EA).equals(readBlock(theirs, EA)), `block ${EA} reads as e2fsck -fy wrote it`)
    t.equal(aclOf(image, HOLDER), EA, `${HOLDER} still names block ${EA}`)
    t.equal(eaValue(image, HOLDER), VALUE, `${HOLDER}: user.shared reads back`)
    fs.rmSync(theirs)
    fs.rmSync(image)
  })
}
