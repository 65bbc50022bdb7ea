/*
 * tsnfs fsck --repair, passes 4 and 5: one damage at a time on a copy of a
 * small mkfs.ext4 -d image (debugfs -w does the damage), then the repair, then
 * the judges: the exit code (1, errors corrected), the repairs it names,
 * e2fsck -fn clean, our check clean, and every file read back through the
 * engine as it was before the damage. A clean image repairs to exit 0 with
 * its bytes unchanged; damage we do not repair gives exit 4 and no write.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { mkfs, scratch, sh } from './format-helpers.ts'
import { bmap, debugfs, e2fsck, fsckImage, MKFS_FEATURES } from './fsck-helpers.ts'
import { buildRepairBase, codes, dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair')
const base = buildRepairBase(dir, seed)
const baseDump = await dumpImage(base)

interface RepairCase {
  name: string
  /** What our check finds before. */
  found: string
  /** Codes of the repairs made. */
  repairs: string[]
  inject(image: string): void
}

// A free block marked in use is fsck-repair-groups.test.ts's, an inode's bit cleared the two-damage case's below.
const CASES: RepairCase[] = [
  { name: 'links_count off by two', found: 'LINK_COUNT_WRONG', repairs: ['LINK_COUNT_WRONG'], inject: (img) => void debugfs(img, 'sif /a/data.bin links_count 4') },
  { name: "a directory's links_count wrong", found: 'LINK_COUNT_WRONG', repairs: ['LINK_COUNT_WRONG'], inject: (img) => void debugfs(img, 'sif /a/b links_count 7') },
  { name: "a used block's bitmap bit cleared", found: 'BLOCK_BITMAP_DIFF', repairs: ['GROUP_REWRITTEN'], inject: (img) => void debugfs(img, `freeb ${bmap(img, '/a/data.bin', 5)} 3`) },
  { name: "a descriptor's free blocks count wrong", found: 'GROUP_FREE_BLOCKS_WRONG', repairs: ['GROUP_REWRITTEN'], inject: (img) => void debugfs(img, 'set_bg 0 free_blocks_count 7') },
  { name: "a block bitmap's checksum wrong", found: 'BITMAP_CSUM', repairs: ['GROUP_REWRITTEN'], inject: (img) => void debugfs(img, 'set_bg 0 block_bitmap_csum 0x1234') },
  { name: "a descriptor's checksum wrong", found: 'GROUP_DESC_CSUM', repairs: ['GROUP_REWRITTEN'], inject: (img) => void debugfs(img, 'set_bg 1 checksum 0x4321') },
  { name: "a file's i_blocks wrong", found: 'INODE_BAD_I_BLOCKS', repairs: ['I_BLOCKS_SET'], inject: (img) => void debugfs(img, 'sif /one.txt blocks 2') },
  { name: "a directory's i_blocks wrong", found: 'INODE_BAD_I_BLOCKS', repairs: ['I_BLOCKS_SET'], inject: (img) => void debugfs(img, 'sif /many blocks 4') },
  // e2fsck checks a reserved inode's blocks too: inode 6 maps nothing, so i_blocks must be 0 (a random-damage round found this).
  { name: "a reserved inode's i_blocks wrong", found: 'INODE_BAD_I_BLOCKS', repairs: ['I_BLOCKS_SET'], inject: (img) => void debugfs(img, 'sif <6> blocks 8') },
]

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = path.join(dir, 'case.img')
    sh('cp', ['--sparse=always', base, image])
    c.inject(image)
    const found = await fsckImage(image)
    t.ok(found.problems.some((p) => p.code === c.found), `our check finds ${c.found}`, { problems: found.problems.slice(0, 5) })
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1, 'exit 1: errors corrected')
    t.same(new Set(codes(r, 'fixed')), new Set(c.repairs), `repairs named: ${c.repairs.join(', ')}`)
    t.strictSame(codes(r, 'left'), [], 'nothing left')
    t.equal(r.after.clean, true, 'the check after the repairs is clean')
    const e2 = e2fsck(image)
    t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
    t.equal((await fsckImage(image)).clean, true, 'our check clean')
    t.strictSame(await dumpImage(image), baseDump, 'every file reads as before the damage')
    fs.rmSync(image)
  })
}

await t.test("sizes short of the blocks: set to cover the last block, as e2fsck's 'i_size is X, should be Y'", async (t) => {
  const image = path.join(dir, 'size.img')
  sh('cp', ['--sparse=always', base, image])
  // /one.txt holds 5,000 bytes in 1 KiB blocks 0..4; /a/b/c is one block.
  debugfs(image, 'sif /one.txt size 100')
  debugfs(image, 'sif /a/b/c size 5000')
  const found = (await fsckImage(image)).problems.map((p) => p.code)
  t.ok(found.includes('INODE_BAD_SIZE') && found.includes('DIR_BAD_SIZE'), `our check finds both: ${found.join(' ')}`)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['I_SIZE_SET', 'I_SIZE_SET'])
  t.strictSame(r.repairs.map((x) => x.message.replace(/^inode \d+: /, '')).sort(), ['i_size 100 → 5120', 'i_size 5000 → 1024'])
  const e2 = e2fsck(image)
  t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
  const after = await dumpImage(image)
  t.equal(after['/one.txt']?.size, 5120, 'the file covers its last block')
  const rest = (d: typeof after): typeof after => Object.fromEntries(Object.entries(d).filter(([k]) => k !== '/one.txt'))
  t.strictSame(rest(after), rest(baseDump), 'every other file reads as before the damage')
  fs.rmSync(image)
})

/** XOR one byte of the image at offset. */
function flipByte(image: string, offset: number, mask: number): void {
  const fd = fs.openSync(image, 'r+')
  const b = Buffer.alloc(1)
  fs.readSync(fd, b, 0, 1, offset)
  b[0] = (b[0] ?? 0) ^ mask
  fs.writeSync(fd, b, 0, 1, offset)
  fs.closeSync(fd)
}

const SB = 1024
const BACKUP = (8192 + 1) * 1024

for (const [name, at, found] of [
  ['a flipped bit in the primary superblock (its volume name): caught by its checksum', SB + 0x78, 'SUPERBLOCK_CSUM'],
  ['the primary superblock\'s magic gone: the image does not open until the backup is used', SB + 0x38, 'EXT4_BAD_MAGIC'],
  // Without bigalloc a cluster is a block: e2fsck's open calls such a superblock corrupt.
  ['the primary superblock\'s s_log_cluster_size without bigalloc', SB + 0x1c, 'SUPERBLOCK_BAD_FIELD'],
] as const) {
  await t.test(`${name}: rewritten from group 1's backup`, async (t) => {
    const image = path.join(dir, 'sb.img')
    sh('cp', ['--sparse=always', base, image])
    flipByte(image, at, 0x40)
    const check = await fsckImage(image).then((r) => r.problems.map((p) => p.code), (err: unknown) => [(err as { code?: string }).code ?? 'thrown'])
    t.ok(check.includes(found), `our check says ${found}: ${check.join(' ')}`)
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1)
    t.equal(codes(r, 'fixed')[0], 'SUPERBLOCK_RESTORED')
    t.match(r.repairs[0]?.message, new RegExp(`rewritten from the backup at byte ${BACKUP} \\(group 1, 1024-byte blocks\\)$`))
    const e2 = e2fsck(image)
    t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
    t.equal((await fsckImage(image)).clean, true, 'our check clean')
    t.strictSame(await dumpImage(image), baseDump, 'every file reads as before the damage')
    fs.rmSync(image)
  })
}

await t.test('the primary superblock and its backup both damaged: refused, naming both, not a byte written', async (t) => {
  const image = path.join(dir, 'sb2.img')
  sh('cp', ['--sparse=always', base, image])
  flipByte(image, SB + 0x38, 0x40)
  flipByte(image, BACKUP + 0x78, 0x40)
  const bytes = fs.readFileSync(image)
  await t.rejects(repairFile(image), { code: 'EXT4_BAD_MAGIC', message: new RegExp(`no sound backup \\(the copy at byte ${BACKUP}: its checksum fails\\)`) })
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})

for (const [name, make, damage] of [
  [
    'a file system of one group (no backup at all)',
    // 8 MiB of 1 KiB blocks is one group: mkfs writes no backup superblock.
    (image: string): void => {
      mkfs(image, 8 << 20, ['-b', '1024', ...MKFS_FEATURES, '-d', path.join(dir, 'tree')])
    },
    (image: string): void => {
      flipByte(image, SB + 0x3fc, 0x01)
    },
  ],
  [
    "two groups, group 1's backup damaged too",
    (image: string): void => void sh('cp', ['--sparse=always', base, image]),
    (image: string): void => {
      flipByte(image, SB + 0x3fc, 0x01)
      flipByte(image, BACKUP + 0x78, 0x40)
    },
  ],
] as const) {
  await t.test(`only the primary superblock's checksum wrong, ${name}: the checksum rewritten in place`, async (t) => {
    const image = path.join(dir, 'sbsum.img')
    make(image)
    // Read before the damage: the engine does not open an image whose superblock fails its checksum.
    const before = await dumpImage(image)
    damage(image)
    t.not(e2fsck(image).code, 0, 'e2fsck -fn finds it')
    t.strictSame((await fsckImage(image)).problems.map((p) => p.code), ['SUPERBLOCK_CSUM'], 'our check: the superblock checksum, nothing else')
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1)
    t.strictSame(codes(r, 'fixed'), ['SUPERBLOCK_CSUM_SET'])
    t.strictSame(codes(r, 'left'), [])
    const e2 = e2fsck(image)
    t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
    t.equal((await fsckImage(image)).clean, true, 'our check clean')
    t.strictSame(await dumpImage(image), before, 'every file reads as before')
    fs.rmSync(image)
  })
}

await t.test("a one-group file system's s_log_cluster_size without bigalloc: left (no backup), its checksum not rewritten over it", async (t) => {
  const image = path.join(dir, 'sbfield.img')
  mkfs(image, 8 << 20, ['-b', '1024', ...MKFS_FEATURES, '-d', path.join(dir, 'tree')])
  flipByte(image, SB + 0x1c, 0x40)
  const bytes = fs.readFileSync(image)
  t.not(e2fsck(image).code, 0, 'e2fsck -fn refuses it')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4, 'exit 4: errors left')
  t.strictSame(codes(r, 'left'), ['SUPERBLOCK_RESTORE'], 'the superblock left')
  t.ok(r.after.problems.some((p) => p.code === 'SUPERBLOCK_BAD_FIELD'), 'and the field still found')
  t.strictSame(codes(r, 'fixed'), [], 'nothing written')
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})

await t.test('a clean image: exit 0, not a byte written', async (t) => {
  const image = path.join(dir, 'clean.img')
  sh('cp', ['--sparse=always', base, image])
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  t.equal(r.exitCode, 0)
  t.strictSame(r.repairs, [])
  t.equal(r.after.clean, true)
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})

await t.test('damage we do not repair: exit 4, said, and not a byte written', async (t) => {
  const image = path.join(dir, 'left.img')
  sh('cp', ['--sparse=always', base, image])
  // A zeroed extent header hides the file's blocks: rebuilding the bitmaps would free them.
  debugfs(image, 'sif /a/data.bin block[0] 0')
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4, 'exit 4: errors left uncorrected')
  t.strictSame(codes(r, 'fixed'), [], 'nothing repaired')
  t.ok(codes(r, 'left').includes('BLOCK_BITMAP_DIFF'), 'the bitmap differences are left, and said')
  t.match(r.repairs.find((x) => x.code === 'BLOCK_BITMAP_DIFF')?.message, /not rewritten: pass 1 found EXTENT_BAD_HEADER, which may hide blocks in use/)
  t.ok(r.after.problems.some((p) => p.code === 'EXTENT_BAD_HEADER'), 'the check after still finds the bad header')
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})

await t.test('two damages at once: a link count and a bitmap', async (t) => {
  const image = path.join(dir, 'two.img')
  sh('cp', ['--sparse=always', base, image])
  debugfs(image, 'sif /one.txt links_count 2')
  debugfs(image, 'freei /two.txt')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['LINK_COUNT_WRONG', 'GROUP_REWRITTEN'], 'pass 4 then pass 5')
  t.equal(e2fsck(image).code, 0, 'e2fsck -fn clean')
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before the damage')
  fs.rmSync(image)
})
