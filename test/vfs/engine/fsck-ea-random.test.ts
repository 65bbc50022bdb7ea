/*
 * tsnfs fsck [--repair] against e2fsck on seeded damage to a shared extended
 * attribute block: a few bits flipped (most in the header and the first
 * entry, some anywhere), the checksum rewritten in most rounds so that the
 * structure rules (magic, h_blocks, entries, values, e_hash) and h_refcount
 * are what is judged, not only the sum. Each round: our check finds a
 * problem exactly when e2fsck -fn does; a repair that reports errors
 * corrected (exit 1) leaves e2fsck -fn and our check clean; one that leaves
 * errors says so (exit 4). The seed is printed; TSNFS_SEED replays a run.
 */
import t from 'tap'
import fs from 'node:fs'
import { prng } from '../../helpers/prng.ts'
import { scratch } from './format-helpers.ts'
import { eaFixture, readBlock, share, writeBlock, writeWithCsum, setRefcount } from './fsck-ea-helpers.ts'
import { e2fsck, e2fsckFinds, fsckImage } from './fsck-helpers.ts'
import { buildRepairBase, copyImage, repairFile } from './fsck-repair-helpers.ts'

t.setTimeout(300_000)
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (TSNFS_SEED=${seed} repeats it)`)
const ROUNDS = Number(process.env.EA_ROUNDS ?? 40)
const dir = scratch(t, 'fsck-ea-random')
const base = buildRepairBase(dir, seed)
const { holder, ea } = eaFixture(base, seed)
const sharers = [holder.path, '/two.txt']
share(base, '/two.txt', ea)
await setRefcount(base, ea, sharers.length)
if (e2fsck(base).code !== 0) throw new Error('fixture: the shared block is not clean')

const rand = prng(seed)
const below = (n: number): number => Math.floor(rand() * n)

await t.test(`${ROUNDS} damaged attribute blocks: our verdict is e2fsck's, and a repair that corrects leaves both clean`, async (t) => {
  let corrected = 0
  for (let round = 0; round < ROUNDS; round++) {
    const image = copyImage(dir, base, 'round.img')
    const b = readBlock(image, ea)
    const flips: number[] = []
    for (let k = 1 + below(3); k > 0; k--) {
      // The header (32 bytes) and the first entry's head and name hold the rules; a value byte only its hash.
      const at = rand() < 0.7 ? below(64) : below(b.length)
      b[at] = (b[at] ?? 0) ^ (1 << below(8))
      flips.push(at)
    }
    const resum = rand() < 0.7
    if (resum) await writeWithCsum(image, ea, b)
    else writeBlock(image, ea, b)
    const what = `round ${round}: bytes ${flips.join(' ')} flipped${resum ? ', checksum rewritten' : ''}`
    const theirs = e2fsckFinds(image)
    const ours = await fsckImage(image)
    t.equal(!ours.clean, theirs, `${what}: ours ${ours.clean ? 'clean' : ours.problems.map((p) => p.code).join(' ')}, e2fsck -fn ${theirs ? 'finds it' : 'clean'}`)
    const r = await repairFile(image)
    // Nothing here is beyond repair (no inode is damaged): found means corrected.
    t.equal(r.exitCode, theirs ? 1 : 0, `${what}: repair exit ${r.exitCode}${r.exitCode === 4 ? ` (${r.repairs.filter((x) => x.outcome === 'left').map((x) => x.message).join('; ')})` : ''}`)
    if (r.exitCode === 1) {
      corrected++
      const after = e2fsck(image)
      t.equal(after.code, 0, `${what}: after the repair e2fsck -fn clean${after.code === 0 ? '' : `\n${after.out}`}`)
      t.equal((await fsckImage(image)).clean, true, `${what}: after the repair our check clean`)
    }
    fs.rmSync(image)
  }
  t.comment(`${corrected} of ${ROUNDS} rounds repaired`)
})
