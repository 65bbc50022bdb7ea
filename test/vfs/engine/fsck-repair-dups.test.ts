/*
 * tsnfs fsck --repair, pass 1B-1D: blocks claimed twice are cloned, as
 * e2fsck -fy's "Clone multiply-claimed blocks? yes". debugfs -w points a
 * file's extent at blocks another file (or the file system's metadata)
 * holds; e2fsck -fn and our check find it; after the repair (exit 1) both are
 * clean, and every file reads what it read before the repair (the shared
 * blocks' contents, now each file's own copy), the same as e2fsck -fy makes
 * of the same damage. A shared extent tree leaf is copied too; there e2fsck
 * -fy deletes one of the two files and we keep both.
 */
import t from 'tap'
import fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { scratch } from './format-helpers.ts'
import { bmap, debugfs, e2fsck, fsckImage, inodeOf } from './fsck-helpers.ts'
import { buildRepairBase, codes, copyImage, dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'
import { correctedByE2fsck, judgeCleanAfter } from './fsck-judge.ts'
import type { TreeDump } from './engine-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-dups')
const base = buildRepairBase(dir, seed)
const baseDump = await dumpImage(base)

/** i_blocks as debugfs reads it (Blockcount, in 512-byte units). */
function blockCount(image: string, p: string): number {
  const m = /Blockcount: (\d+)/.exec(debugfs(image, `stat ${p}`, false))
  if (m === null) throw new Error(`no Blockcount for ${p} in debugfs stat`)
  return Number(m[1])
}

/** Group 0's inode table, from dumpe2fs: [first, last]. */
function inodeTable(image: string): [number, number] {
  const out = spawnSync('dumpe2fs', [image], { encoding: 'utf8' }).stdout
  const m = /Group 0:[\s\S]*?Inode table at (\d+)-(\d+)/.exec(out)
  if (m === null) throw new Error('no inode table for group 0 in dumpe2fs')
  return [Number(m[1]), Number(m[2])]
}

interface DupCase {
  name: string
  /** Files that get a copy (the later claimants). */
  cloned: string[]
  /** Repairs the case may need besides the clones and pass 5. */
  alsoFixed?: string[]
  /**
   * What every file reads after the repair, when the damaged image cannot be read as it is (a
   * shared tree block's checksum is right for one owner only); else what it reads damaged.
   */
  reads?: (base: TreeDump) => TreeDump
  /** Files e2fsck -fy deletes where we keep them (e2fsck's own limit; the case says which). */
  e2fsckDeletes?: string[]
  inject(image: string): void
}

// i_block[5] is ee_start_lo of the root's first extent: /one.txt and /two.txt hold 5,000 bytes in one extent of five 1 KiB blocks.
const CASES: DupCase[] = [
  { name: 'two files share five blocks', cloned: ['/two.txt'], inject: (img) => void debugfs(img, `sif /one.txt block[5] ${bmap(img, '/two.txt')}`) },
  {
    name: 'three files share blocks (two of them a part of a larger file)',
    cloned: ['/one.txt', '/two.txt'],
    inject: (img) => {
      const at = bmap(img, '/a/data.bin', 3)
      debugfs(img, `sif /one.txt block[5] ${at}`)
      debugfs(img, `sif /two.txt block[5] ${at + 1}`)
    },
  },
  {
    name: 'a file shares blocks with the inode table (file system metadata)',
    cloned: ['/one.txt'],
    // Five blocks near the end of group 0's table: inodes nobody uses, so nothing the repair writes changes them.
    inject: (img) => void debugfs(img, `sif /one.txt block[5] ${inodeTable(img)[1] - 10}`),
  },
  {
    name: "a block of a file whose extents live in a leaf block (the leaf's entry is moved)",
    cloned: ['/sparse'],
    // A one-block file inode-numbered before /sparse (it claims first and keeps the block): /sparse gets the copy.
    inject: (img) => void debugfs(img, `sif ${firstOneBlockFile(img)} block[5] ${bmap(img, '/sparse')}`),
  },
  {
    name: "a file's extent tree points at another file's leaf block (the leaf and its data are copied, each copy of the leaf gets its owner's checksum)",
    // The later claimant in inode order gets the copy. When that is /sparse, /one.txt keeps the original leaf, whose checksum was /sparse's: the next sweep rewrites it.
    cloned: [inodeOf(base, '/one.txt') > inodeOf(base, '/sparse') ? '/one.txt' : '/sparse'],
    alsoFixed: ['EXTENT_CSUM_SET'],
    reads: (d) => ({ ...d, '/one.txt': { ...d['/one.txt']!, size: d['/sparse']!.size, content: d['/sparse']!.content } }),
    // e2fsck 1.47 rewrites the shared leaf's checksum for each owner in pass 1 (the last wins), then
    // cannot iterate the other owner's tree in pass 1B ("Couldn't clone file: Extent block checksum
    // does not match extent block"), and deletes that file.
    e2fsckDeletes: ['/one.txt'],
    inject: (img) => {
      // /one.txt's root becomes one index entry naming /sparse's leaf: it now reads as /sparse.
      const stat = debugfs(img, 'stat /sparse', false)
      const leaf = Number(/\(ETB0\):(\d+)/.exec(stat)?.[1])
      const size = /Size: (\d+)/.exec(stat)?.[1]
      if (!(leaf > 0) || size === undefined) throw new Error(`fixture: /sparse has no leaf block or size:\n${stat}`)
      for (const [field, value] of [['block[0]', 0x0001f30a], ['block[1]', 0x00010004], ['block[2]', 0], ['block[3]', 0], ['block[4]', leaf], ['block[5]', 0], ['size', size], ['blocks', blockCount(img, '/sparse')]] as const) {
        debugfs(img, `sif /one.txt ${field} ${value}`)
      }
    },
  },
]

/** Of the one-block files, the one with the lowest inode number; it must come before /sparse. */
function firstOneBlockFile(img: string): string {
  const files = ['/a/b/c/f.txt', ...Array.from({ length: 27 }, (_, i) => `/many/f${i + 1}`)]
  const [ino, file] = files.map((f) => [inodeOf(img, f), f] as const).sort((x, y) => x[0] - y[0])[0] ?? [0, '']
  if (ino >= inodeOf(img, '/sparse')) throw new Error(`fixture: no one-block file before /sparse (lowest ${file}, inode ${ino})`)
  return file
}

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = copyImage(dir, base, 'dup.img')
    c.inject(image)
    const e2 = e2fsck(image)
    t.equal(e2.code, 4, 'e2fsck -fn finds the damage')
    t.match(e2.out, /multiply-claimed/i, 'e2fsck -fn: multiply-claimed blocks')
    const found = await fsckImage(image)
    t.ok(found.problems.some((p) => p.code === 'BLOCK_MULTIPLY_CLAIMED'), 'our check finds BLOCK_MULTIPLY_CLAIMED', { problems: found.problems.slice(0, 5) })
    // What every file reads with the damage in place: what each must read after (each with its own copy).
    const damaged = c.reads?.(baseDump) ?? (await dumpImage(image))
    const theirs = copyImage(dir, image, 'theirs.img')
    const y = spawnSync('e2fsck', ['-fy', theirs], { encoding: 'utf8' })
    t.equal(y.status, 1, 'e2fsck -fy corrects it')
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1, 'exit 1: errors corrected')
    const cloned = r.repairs.filter((x) => x.code === 'BLOCKS_CLONED').map((x) => x.ino)
    t.strictSame(cloned.sort(), c.cloned.map((p) => inodeOf(base, p)).sort(), `cloned: ${c.cloned.join(' ')}`)
    // The copies may land on the blocks the redirected file held alone (still marked in use), so pass 5 may have nothing to do.
    t.strictSame(codes(r, 'fixed').filter((x) => !['BLOCKS_CLONED', 'GROUP_REWRITTEN', 'SUPER_COUNTS_REWRITTEN', ...(c.alsoFixed ?? [])].includes(x)), [], 'only clones, then pass 5')
    t.strictSame(codes(r, 'left'), [], 'nothing left')
    await judgeCleanAfter(t, image)
    const ours = await dumpImage(image)
    t.strictSame(ours, damaged, 'every file reads as before the repair')
    const lost = c.e2fsckDeletes ?? []
    const without = (d: TreeDump): TreeDump => Object.fromEntries(Object.entries(d).filter(([k]) => !lost.includes(k)))
    const fixedByE2fsck = await dumpImage(theirs)
    t.strictSame(lost.filter((f) => f in fixedByE2fsck), [], lost.length === 0 ? 'e2fsck -fy deletes no file' : `e2fsck -fy deletes ${lost.join(' ')}; we keep it`)
    t.strictSame(without(ours), fixedByE2fsck, lost.length === 0 ? 'and as after e2fsck -fy' : 'every other file as after e2fsck -fy')
    const changed = new Set(Object.keys(baseDump).filter((k) => JSON.stringify(damaged[k]) !== JSON.stringify(baseDump[k])))
    t.ok(changed.size >= 1 && changed.size <= 2, `the damage changed what one or two files read: ${[...changed].join(' ')}`)
    const untouched = (d: typeof ours): typeof ours => Object.fromEntries(Object.entries(d).filter(([k]) => !changed.has(k)))
    t.strictSame(untouched(ours), untouched(baseDump), 'every other file as before the damage')
    fs.rmSync(image)
    fs.rmSync(theirs)
  })
}

await t.test('a shared block in a file whose checksum fails too: left, exit 4, not a byte written', async (t) => {
  const image = copyImage(dir, base, 'dupsum.img')
  debugfs(image, `sif /one.txt block[5] ${bmap(image, '/two.txt')}`)
  // The later claimant's record changed behind its checksum: its map is not to be trusted.
  debugfs(image, 'sif /two.txt checksum 0x1234')
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4, 'exit 4: errors left')
  t.ok(r.repairs.some((x) => x.outcome === 'left' && x.code === 'BLOCK_MULTIPLY_CLAIMED' && /not cloned: the inode also has INODE_CSUM/.test(x.message)), 'the shared blocks are left, and said why')
  t.strictSame(codes(r, 'fixed'), [], 'nothing repaired')
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})

await t.test("a file's extended attribute block is another file's data: no attribute block, so the inode forgets it (as e2fsck -fy), nothing cloned, exit 1", async (t) => {
  const image = copyImage(dir, base, 'dupacl.img')
  // /two.txt comes after /one.txt in inode order: its i_file_acl claims a block /one.txt already holds.
  const [first, later] = inodeOf(image, '/one.txt') < inodeOf(image, '/two.txt') ? ['/one.txt', '/two.txt'] : ['/two.txt', '/one.txt']
  const held = bmap(image, first)
  debugfs(image, `sif ${later} file_acl ${held}`)
  const blocksBefore = blockCount(image, later)
  const dataBefore = fs.readFileSync(image).subarray(held * 1024, (held + 1) * 1024)
  const damaged = await dumpImage(image)
  const found = await fsckImage(image)
  t.ok(found.problems.some((p) => p.code === 'BLOCK_MULTIPLY_CLAIMED'), 'our check finds BLOCK_MULTIPLY_CLAIMED')
  const ino = inodeOf(image, later)
  t.ok(found.problems.some((p) => p.code === 'XATTR_BAD_BLOCK' && p.ino === ino && p.block === held), `our check finds XATTR_BAD_BLOCK: inode ${ino}, block ${held}`)
  const e2 = e2fsck(image)
  t.not(e2.code, 0, 'e2fsck -fn finds it')
  t.match(e2.out, new RegExp(`Inode ${ino} has a bad extended attribute block ${held}`), 'e2fsck -fn: a bad extended attribute block')
  const theirs = correctedByE2fsck(t, dir, image, 'dupacl-theirs.img')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1, 'exit 1: errors corrected')
  t.notOk(codes(r, 'fixed').includes('BLOCKS_CLONED'), 'nothing cloned')
  t.ok(r.repairs.some((x) => x.outcome === 'fixed' && x.code === 'XATTR_BLOCK_CLEARED' && x.ino === ino), `inode ${ino}: attribute block cleared`)
  t.strictSame(codes(r, 'left'), [], 'nothing left')
  await judgeCleanAfter(t, image)
  t.match(debugfs(image, `stat ${later}`, false), /File ACL: 0\b/, `${later}: i_file_acl 0`)
  // debugfs set i_file_acl without counting the block: the record's i_blocks was right for the data alone.
  t.equal(blockCount(image, later), blocksBefore, `${later}: i_blocks unchanged (${blocksBefore})`)
  t.notOk(codes(r, 'fixed').includes('I_BLOCKS_SET'), 'no i_blocks repair recorded')
  t.ok(fs.readFileSync(image).subarray(held * 1024, (held + 1) * 1024).equals(dataBefore), `block ${held} (${first}'s data) not written`)
  t.strictSame(await dumpImage(image), damaged, 'every file reads as before the repair')
  t.strictSame(await dumpImage(image), await dumpImage(theirs), 'and as after e2fsck -fy')
  t.match(debugfs(theirs, `stat ${later}`, false), /File ACL: 0\b/, `e2fsck -fy: ${later}'s i_file_acl 0 too`)
  fs.rmSync(image)
  fs.rmSync(theirs)
})

await t.test('a cloned file whose i_blocks is wrong too: cloned first, then its i_blocks set (next sweep), exit 1', async (t) => {
  const image = copyImage(dir, base, 'dupblocks.img')
  debugfs(image, `sif /one.txt block[5] ${bmap(image, '/two.txt')}`)
  // /two.txt (the later claimant, cloned) holds five 1 KiB blocks: 10 sectors, stored here as 8.
  const want = blockCount(image, '/two.txt')
  debugfs(image, `sif /two.txt blocks ${want - 2}`)
  const found = await fsckImage(image)
  t.ok(found.problems.some((p) => p.code === 'INODE_BAD_I_BLOCKS'), 'our check finds INODE_BAD_I_BLOCKS')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1, 'exit 1: errors corrected')
  const fixedCodes = codes(r, 'fixed')
  t.ok(fixedCodes.indexOf('BLOCKS_CLONED') >= 0 && fixedCodes.indexOf('BLOCKS_CLONED') < fixedCodes.indexOf('I_BLOCKS_SET'), `cloned, then i_blocks set: ${fixedCodes.join(' ')}`)
  t.strictSame(codes(r, 'left'), [], 'nothing left (the held-back i_blocks repair was made)')
  t.equal(blockCount(image, '/two.txt'), want, `/two.txt: i_blocks ${want}`)
  const after = e2fsck(image)
  t.equal(after.code, 0, `e2fsck -fn clean${after.code === 0 ? '' : `\n${after.out}`}`)
  fs.rmSync(image)
})
