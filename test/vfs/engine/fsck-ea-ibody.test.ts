/*
 * tsnfs fsck [--repair]: extended attributes kept in the inode body (after
 * i_extra_isize). debugfs ea_set gives a file a small attribute, which lives
 * there with e_hash 0 (as old kernels wrote it): clean for both checkers.
 * Then one field of the entry is damaged (its hash, its value size, its name
 * length) and the inode's checksum rewritten here, so the entry is all that
 * is wrong: e2fsck -fn and our check find it, e2fsck -fy and our repair clear
 * the inode's attributes (the magic zeroed), leaving the same record, and
 * e2fsck -fn is clean after ours.
 */
import t from 'tap'
import fs from 'node:fs'
import { crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { csumSeed } from '../../../vfs/engine/reader/csum-verifier.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import { scratch } from './format-helpers.ts'
import { debugfs, e2fsck, fsckImage, inodeOf, inodeOffset } from './fsck-helpers.ts'
import { buildRepairBase, codes, copyImage, repairFile, tell } from './fsck-repair-helpers.ts'
import { correctedByE2fsck, judgeCleanAfter, judgeSound } from './fsck-judge.ts'

t.setTimeout(180_000)
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (TSNFS_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-ea-ibody')
const base = buildRepairBase(dir, seed)
const FILE = '/one.txt'
debugfs(base, `ea_set ${FILE} user.small hello-${seed % 1000}`)
const INO = inodeOf(base, FILE)
const ISIZE = 256

function readRecord(image: string): Buffer {
  const fd = fs.openSync(image, 'r')
  const b = Buffer.alloc(ISIZE)
  fs.readSync(fd, b, 0, ISIZE, inodeOffset(image, FILE, 1024))
  fs.closeSync(fd)
  return b
}

/** Change the record's first in-body entry (at: its offset), then store the inode checksum ext4 defines: crc32c from the fs seed over le32 ino, le32 generation, the record with both checksum halves zero. */
async function patchEntry(image: string, mutate: (raw: Buffer, at: number) => void): Promise<void> {
  const raw = readRecord(image)
  const header = 128 + raw.readUInt16LE(0x80)
  if (raw.readUInt32LE(header) !== 0xea020000) throw new Error(`inode ${INO} has no in-body attributes`)
  mutate(raw, header + 4)
  const dev = await FileReadAt.open(image)
  let seedCsum: number
  try {
    seedCsum = csumSeed((await Ext4Image.open(dev, { verifier: NO_VERIFY })).sb)
  } finally {
    await dev.close()
  }
  const le = Buffer.alloc(8)
  le.writeUInt32LE(INO, 0)
  le.writeUInt32LE(raw.readUInt32LE(0x64), 4)
  const z = Buffer.from(raw)
  z.writeUInt16LE(0, 0x7c)
  z.writeUInt16LE(0, 0x82)
  const sum = crc32cUpdate(crc32cUpdate(seedCsum, le), z)
  raw.writeUInt16LE(sum & 0xffff, 0x7c)
  raw.writeUInt16LE(sum >>> 16, 0x82)
  const fd = fs.openSync(image, 'r+')
  fs.writeSync(fd, raw, 0, ISIZE, inodeOffset(image, FILE, 1024))
  fs.closeSync(fd)
}

await t.test('an attribute in the inode body with e_hash 0: clean for both, repair writes nothing', async (t) => {
  const image = copyImage(dir, base, 'legit.img')
  await judgeSound(t, image)
  fs.rmSync(image)
})

const CASES: Array<{ name: string; mutate: (raw: Buffer, at: number) => void; e2message: RegExp }> = [
  { name: 'e_hash not the hash of name and value', mutate: (raw, at) => raw.writeUInt32LE(0x1, at + 12), e2message: new RegExp(`Extended attribute in inode ${INO} has a hash \\(1\\) which is invalid`) },
  { name: 'e_value_size past the space', mutate: (raw, at) => raw.writeUInt32LE(200, at + 8), e2message: new RegExp(`Extended attribute in inode ${INO} has a value size \\(200\\) which is invalid`) },
  // The entry itself then runs past the inode: e2fsck's region check says so before the name's.
  { name: 'e_name_len past the inode', mutate: (raw, at) => raw.writeUInt8(120, at), e2message: new RegExp(`Inode ${INO} extended attribute is corrupt \\(allocation collision\\)`) },
]

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = copyImage(dir, base, 'damaged.img')
    await patchEntry(image, c.mutate)
    const e2 = e2fsck(image)
    t.equal(e2.code, 4, 'e2fsck -fn finds it')
    t.match(e2.out, c.e2message, 'e2fsck -fn says what')
    const found = (await fsckImage(image)).problems.filter((p) => p.severity === 'error')
    t.strictSame(found.map((p) => [p.code, p.ino]), [['XATTR_IBODY_BAD', INO]], 'our check: XATTR_IBODY_BAD, nothing else')
    const theirs = correctedByE2fsck(t, dir, image, 'theirs.img')
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1, 'exit 1: errors corrected')
    t.strictSame(codes(r, 'fixed'), ['XATTR_IBODY_CLEARED'], 'the attributes in the inode cleared')
    t.strictSame(codes(r, 'left'), [], 'nothing left')
    await judgeCleanAfter(t, image)
    t.ok(readRecord(image).equals(readRecord(theirs)), `inode ${INO} reads as e2fsck -fy wrote it`)
    t.notMatch(debugfs(image, `ea_list ${FILE}`, false), /user\.small/, 'debugfs lists no attribute')
    fs.rmSync(theirs)
    fs.rmSync(image)
  })
}
