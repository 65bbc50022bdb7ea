/*
 * A wrecked image never crashes the checker: random bytes written over the
 * metadata at the front of a small image (superblock, descriptors, bitmaps,
 * inode table, directories), seeded and printed, and checkImage must either
 * return a verdict or throw a FormatError with a code, never anything else.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { mkfs, scratch, seededBytes } from './format-helpers.ts'
import { fsckImage, MKFS_FEATURES, SMALL_METADATA_BYTES, smallDamageBase } from './fsck-helpers.ts'

const ROUNDS = Number(process.env.FSCK_ROUNDS ?? 60)

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-corrupt')
const { original } = smallDamageBase(dir)

t.test(`${ROUNDS} corrupted images: a verdict or a FormatError`, async (t) => {
  const rand = seededBytes(seed)
  const image = path.join(dir, 'case.img')
  const codes = new Map<string, number>()
  for (let round = 0; round < ROUNDS; round++) {
    const bytes = Buffer.from(original)
    const r = rand(64)
    const n = 1 + ((r[0] ?? 0) % 16)
    for (let k = 0; k < n; k++) {
      // Half the writes in the first 48 KiB, where the superblock, descriptors, bitmaps and first inodes are.
      const at = (r.readUInt32LE(4 + k * 3) >>> 8) % (k % 2 === 0 ? 48 * 1024 : SMALL_METADATA_BYTES)
      bytes[1024 + (at % (SMALL_METADATA_BYTES - 1024))] = r[k + 1] ?? 0
    }
    fs.writeFileSync(image, bytes)
    try {
      const res = await fsckImage(image)
      const key = res.clean ? 'clean' : 'problems'
      codes.set(key, (codes.get(key) ?? 0) + 1)
    } catch (err) {
      if (!(err instanceof FormatError)) {
        t.fail(`round ${round}: ${err instanceof Error ? err.stack : String(err)}`)
        continue
      }
      if (!codes.has(err.code)) t.comment(`round ${round}: ${err.code}: ${err.message}`)
      codes.set(err.code, (codes.get(err.code) ?? 0) + 1)
    }
  }
  t.comment(`verdicts: ${[...codes].map(([k, v]) => `${k} ${v}`).join(', ')}`)
  t.equal([...codes.values()].reduce((a, b) => a + b, 0), ROUNDS, 'every round ended in a verdict or a FormatError')
})

t.test('a superblock asking for more inodes than the image can hold is refused before anything is allocated', async (t) => {
  const img = path.join(dir, 'many-inodes.img')
  mkfs(img, 8 << 20, ['-b', '4096', ...MKFS_FEATURES])
  const sb = Buffer.alloc(1024)
  const fd = fs.openSync(img, 'r+')
  fs.readSync(fd, sb, 0, 1024, 1024)
  // One group of 2048 blocks: 32768 inodes of 256 bytes need 2048 blocks of table alone.
  sb.writeUInt32LE(32768, 0x0)
  sb.writeUInt32LE(32768, 0x28)
  fs.writeSync(fd, sb, 0, 1024, 1024)
  fs.closeSync(fd)
  await t.rejects(fsckImage(img), {
    code: 'EXT4_BAD_GEOMETRY',
    message: '1 groups of 32768 inodes need 2050 blocks of inode tables and bitmaps, the file system has 2048',
  })
})
