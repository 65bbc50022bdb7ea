/*
 * tsnfs fsck --repair, pass 2: an entry naming a freed inode is removed (and
 * the inode's bitmap bit and blocks freed by pass 5), an entry's wrong file
 * type is set from its inode, a leaf whose checksum alone is wrong gets it
 * rewritten; then e2fsck -fn clean, our check clean, and every file not
 * involved reads as before. A leaf whose records do not parse, and an htree
 * leaf whose checksum fails, are left (exit 4, nothing written).
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { scratch } from './format-helpers.ts'
import { bmap, debugfs, e2fsck, flipBit, fsckImage, patchDirEntry } from './fsck-helpers.ts'
import { buildRepairBase, codes, copyImage, dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-dirs')
const base = buildRepairBase(dir, seed)
const baseDump = await dumpImage(base)
const BS = 1024

const copy = (name: string): string => copyImage(dir, base, name)

async function judged(t: Test, image: string): Promise<void> {
  const e2 = e2fsck(image)
  t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
  t.equal((await fsckImage(image)).clean, true, 'our check clean')
}

await t.test('an entry naming a freed inode: removed, the inode and its blocks freed', async (t) => {
  const image = copy('clri.img')
  debugfs(image, 'clri /a/b/c/f.txt')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['DIRENT_REMOVED', 'GROUP_REWRITTEN', 'SUPER_COUNTS_REWRITTEN'])
  t.match(r.repairs[0]?.message, /^directory \d+: entry 'f.txt' removed \(inode \d+ not in use\)$/)
  await judged(t, image)
  const want = { ...baseDump }
  delete want['/a/b/c/f.txt']
  t.strictSame(await dumpImage(image), want, 'every other file reads as before')
  fs.rmSync(image)
})

await t.test("an entry's wrong file type: set from the inode", async (t) => {
  const image = copy('type.img')
  await patchDirEntry(image, '/a/b/c', 'f.txt', (b, off) => void b.writeUInt8(2, off + 7))
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['DIRENT_FILETYPE_SET'])
  t.match(r.repairs[0]?.message, /entry 'f.txt' file type 2 → 1$/)
  await judged(t, image)
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before')
  fs.rmSync(image)
})

await t.test('a leaf whose checksum alone is wrong: the sum rewritten', async (t) => {
  const image = copy('csum.img')
  // Four bytes before the tail: slack of the leaf's last record, covered by the checksum only.
  flipBit(image, bmap(image, '/a/b/c', 0) * BS + BS - 12 - 4, 5)
  t.ok((await fsckImage(image)).problems.some((p) => p.code === 'DIR_CSUM'), 'our check finds DIR_CSUM')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['DIR_CSUM_SET'])
  await judged(t, image)
  t.strictSame(await dumpImage(image), baseDump, 'every file reads as before')
  fs.rmSync(image)
})

await t.test("an htree leaf whose checksum fails: left (a name may have changed its hash), exit 4, not a byte written", async (t) => {
  const image = copy('htree.img')
  flipBit(image, bmap(image, '/many', 1) * BS + BS - 12 - 4, 5)
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4)
  t.strictSame(codes(r, 'fixed'), [])
  t.match(r.repairs.find((x) => x.code === 'DIR_CSUM')?.message, /not repaired: a leaf of an htree directory whose checksum fails/)
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})

await t.test('a leaf whose records do not parse: left, exit 4, not a byte written', async (t) => {
  const image = copy('reclen.img')
  await patchDirEntry(image, '/a/b/c', 'f.txt', (b, off) => void b.writeUInt16LE(10, off + 4))
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4)
  t.strictSame(codes(r, 'fixed'), [])
  t.ok(r.after.problems.some((p) => p.code === 'DIRENT_BAD_REC_LEN'), 'the check after still finds it')
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})
