/*
 * tsnfs fsck --repair, pass 1: a checksum that is the only thing wrong is
 * rewritten (an inode with a flipped bit in i_atime; an extent tree leaf
 * block with a flipped bit in its unused entries), the resize inode's map is
 * rewritten to its layout, then e2fsck -fn clean,
 * our check clean, every file as before; deletion times are set on a freed
 * inode without one and cleared on an inode in use. An inode whose sum is
 * wrong and which has another fault is left: exit 4, not a byte written.
 */
import t from 'tap'
import fs from 'node:fs'
import { scratch } from './format-helpers.ts'
import { debugfs, e2fsck, flipBit, fsckImage, inodeOf, inodeOffset } from './fsck-helpers.ts'
import { buildRepairBase, codes, copyImage, dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-sums')
const base = buildRepairBase(dir, seed)
const baseDump = await dumpImage(base)
const BS = 1024

const copy = (name: string): string => copyImage(dir, base, name)

/** The leaf block under /sparse's one-level extent tree, from debugfs's listing. */
function leafBlock(image: string): number {
  const m = /^\s*0\/\s*1\s+\d+\/\s*\d+\s+\d+\s+-\s+\d+\s+(\d+)/m.exec(debugfs(image, 'ex /sparse', false))
  if (m?.[1] === undefined) throw new Error('no index entry in the extent tree of /sparse')
  return Number(m[1])
}

const CASES: Array<{ name: string; found: string; repair: string; inject(image: string): void }> = [
  // i_atime: the inode still decodes and checks out; only its checksum tells.
  { name: 'an inode with a flipped bit in i_atime', found: 'INODE_CSUM', repair: 'INODE_CSUM_SET', inject: (img) => { flipBit(img, inodeOffset(img, '/a/data.bin', BS) + 0x8, 3) } },
  // Byte 500 of the leaf lies in its unused entries (9 of 84 used), which the checksum covers.
  { name: 'an extent leaf block with a flipped bit in its unused entries', found: 'EXTENT_CSUM', repair: 'EXTENT_CSUM_SET', inject: (img) => { flipBit(img, leafBlock(img) * BS + 500, 1) } },
  // Block 3 is the first reserved GDT block (superblock at 1, one descriptor block at 2); entry 100 must be 0 with one backup group.
  { name: "a reserved GDT block's entry of the resize inode set", found: 'RESIZE_INODE_INVALID', repair: 'RESIZE_INODE_REWRITTEN', inject: (img) => { writeU32(img, 3 * BS + 100 * 4, 0x12345678) } },
]

function writeU32(image: string, offset: number, v: number): void {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(v)
  const fd = fs.openSync(image, 'r+')
  fs.writeSync(fd, b, 0, 4, offset)
  fs.closeSync(fd)
}

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = copy('case.img')
    c.inject(image)
    t.ok((await fsckImage(image)).problems.some((p) => p.code === c.found), `our check finds ${c.found}`)
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1)
    t.strictSame(codes(r, 'fixed'), [c.repair])
    const e2 = e2fsck(image)
    t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
    t.equal((await fsckImage(image)).clean, true, 'our check clean')
    t.strictSame(await dumpImage(image), baseDump, 'every file reads as before')
    fs.rmSync(image)
  })
}

await t.test('deletion times: set on a freed inode that has none, cleared on an inode in use', async (t) => {
  const image = copy('dtime.img')
  const gone = inodeOf(image, '/one.txt')
  debugfs(image, 'rm /one.txt')
  debugfs(image, `sif <${gone}> dtime 0`)
  debugfs(image, 'sif /two.txt dtime 12345')
  const found = (await fsckImage(image)).problems.map((p) => p.code)
  t.ok(found.includes('INODE_ZERO_DTIME') && found.includes('INODE_DTIME_SET'), 'our check finds both')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.same(new Set(codes(r, 'fixed')), new Set(['DTIME_SET', 'DTIME_CLEARED']))
  t.match(r.repairs.find((x) => x.code === 'DTIME_CLEARED')?.message, /: i_dtime 12345 → 0$/)
  const e2 = e2fsck(image)
  t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
  t.equal((await fsckImage(image)).clean, true, 'our check clean')
  const want = { ...baseDump }
  delete want['/one.txt']
  t.strictSame(await dumpImage(image), want, 'every other file reads as before')
  fs.rmSync(image)
})

await t.test('a bad inode checksum beside another fault: left, exit 4, not a byte written', async (t) => {
  const image = copy('both.img')
  debugfs(image, 'sif /one.txt block[0] 0')
  flipBit(image, inodeOffset(image, '/one.txt', BS) + 0x8, 3)
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4)
  t.strictSame(codes(r, 'fixed'), [])
  t.match(r.repairs.find((x) => x.code === 'INODE_CSUM')?.message, /\(not rewritten: the inode also has EXTENT_BAD_HEADER\)$/)
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})
