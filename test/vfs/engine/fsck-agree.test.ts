/*
 * tsnfs fsck and e2fsck -fn agree (issue 13: both clean, or both find it)
 * on randomly damaged images: a few random bytes written at a random place
 * of a small image made by mkfs.ext4 -d (directories, files, symlinks fast
 * and slow, an htree directory), 4 KiB and 1 KiB blocks. Seeded and printed;
 * each disagreement is named with the offset and both verdicts.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { mkfs, scratch, seededBytes } from './format-helpers.ts'
import { e2fsckFinds, fsckImage, MKFS_FEATURES } from './fsck-helpers.ts'

const ROUNDS = Number(process.env.FSCK_ROUNDS ?? 40)
const BYTES_PER_ROUND = 4
const METADATA_END = 768 * 1024

t.setTimeout(240_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-agree')
const tree = path.join(dir, 'tree')
const gen = seededBytes(seed)
fs.mkdirSync(path.join(tree, 'd1/d2/d3'), { recursive: true })
for (let i = 0; i < 30; i++) fs.writeFileSync(path.join(tree, `d1/f${i}`), gen(i * 700))
fs.linkSync(path.join(tree, 'd1/f3'), path.join(tree, 'd1/d2/hard'))
fs.symlinkSync('d1/f1', path.join(tree, 'fast'))
fs.symlinkSync(`${'x/'.repeat(60)}t`, path.join(tree, 'slow'))
fs.mkdirSync(path.join(tree, 'big'))
for (let i = 0; i < 400; i++) fs.writeFileSync(path.join(tree, `big/a-long-name-for-an-entry-${i}`), '')

for (const [blockSize, size] of [[4096, 8 << 20], [1024, 4 << 20]] as const) {
  t.test(`${blockSize}-byte blocks: ${ROUNDS} damaged images, the same verdict`, async (t) => {
    const base = path.join(dir, `base-${blockSize}.img`)
    mkfs(base, size, ['-b', String(blockSize), ...MKFS_FEATURES, '-d', tree])
    const original = fs.readFileSync(base)
    const image = path.join(dir, `case-${blockSize}.img`)
    const rand = seededBytes(seed + blockSize)
    const tally = { clean: 0, found: 0 }
    for (let round = 0; round < ROUNDS; round++) {
      const bytes = Buffer.from(original)
      const r = rand(4 + 2 * BYTES_PER_ROUND)
      // Past the boot block, in the first 768 KiB where the metadata and directories are; within a
      // small window, so several bytes hit one structure.
      const at = 1024 + (r.readUInt32LE(0) % (METADATA_END - 1024))
      for (let k = 0; k < BYTES_PER_ROUND; k++) bytes[Math.min(size - 1, at + (r[4 + 2 * k] ?? 0) * 4)] = r[5 + 2 * k] ?? 0
      fs.writeFileSync(image, bytes)
      const theirs = e2fsckFinds(image) ? 'found' : 'clean'
      let ours: string
      let codes: string
      try {
        const res = await fsckImage(image)
        ours = res.clean ? 'clean' : 'found'
        codes = [...new Set(res.problems.filter((p) => p.severity === 'error').map((p) => p.code))].join(' ')
      } catch (err) {
        // Not checkable at all (bad magic, impossible geometry): e2fsck cannot check it either.
        if (!(err instanceof FormatError)) throw err
        ours = 'found'
        codes = err.code
      }
      if (theirs === ours) tally[ours === 'clean' ? 'clean' : 'found']++
      else t.fail(`round ${round}: bytes near ${at} (block ${Math.floor(at / blockSize)}): e2fsck -fn ${theirs}, ours ${ours} ${codes}`)
    }
    t.comment(`agreed: ${tally.clean} clean, ${tally.found} damaged`)
    t.equal(tally.clean + tally.found, ROUNDS, 'every verdict the same as e2fsck -fn')
  })
}
