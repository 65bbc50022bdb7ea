/*
 * A proof run as a command (about two minutes, so not in the suite):
 *   npm run proof:fsck-repair
 * tsnfs fsck --repair over every damage case of the fsck tests (fsck-helpers
 * CASES) on a 4 KiB-block image the kernel filled (needs root and loop
 * devices; skips, saying why, without them). Each case has its expected exit:
 * 1, and then e2fsck -fn and our check are clean and every file not involved
 * in the damage reads as before through the engine; or 4, and then e2fsck -fn
 * still finds it too (we left it, and say so).
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import type { TreeDump } from './engine-helpers.ts'
import { scratch, sh, whyNoLoopMount } from './format-helpers.ts'
import { buildBase, CASES, e2fsck, fsckImage } from './fsck-helpers.ts'
import { dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'

const BLOCK_SIZE = 4096
/** Per case: the exit we give, and the paths the damage involves (left out of the comparison). */
const EXPECT: Record<string, { exit: 1 | 4; involved?: string[] }> = {
  "zero an inode's extent header": { exit: 4 },
  'links_count off by one': { exit: 1 },
  "a used block's bitmap bit cleared": { exit: 1 },
  "a used inode's bitmap bit cleared": { exit: 1 },
  // Cloned (pass 1B-1D): /one.txt now reads /two.txt's blocks, its own copy.
  'one block claimed by two files': { exit: 1, involved: ['/one.txt', '/two.txt'] },
  'a dirent naming a free inode': { exit: 1, involved: ['/a/b/c/d/e/f.txt'] },
  'wrong file type in a dirent': { exit: 1 },
  'an unreachable directory': { exit: 1, involved: ['/a/b/c/d'] },
  // Salvaged: the names from the bad record on go to lost+found.
  'a bad rec_len': { exit: 1, involved: ['/a/b/c/d/e'] },
  "a descriptor's free count wrong": { exit: 1 },
  'a flipped bit in a checksummed block (an inode)': { exit: 1 },
  // The index cleared, the leaf's sum rewritten: the name with the flipped bit is served as it now reads.
  'a flipped bit in a checksummed block (a directory leaf)': { exit: 1, involved: ['/big'] },
  'a flipped bit in a checksummed block (the htree root)': { exit: 1 },
}

function without(dump: TreeDump, involved: string[]): TreeDump {
  return Object.fromEntries(Object.entries(dump).filter(([p]) => !involved.some((i) => p === i || p.startsWith(`${i}/`))))
}

const why = whyNoLoopMount()
if (why !== undefined) {
  t.comment(`skipped: ${why}`)
  t.pass('no loop devices here')
} else {
  // Minutes under load: it is a proof command, not a suite test.
  t.setTimeout(1_200_000)
  const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
  const dir = scratch(t, 'fsck-repair-kernel')
  const base = await buildBase(t, dir, BLOCK_SIZE, seed)
  const baseDump = await dumpImage(base)
  for (const c of CASES) {
    await t.test(c.name, async (t) => {
      const want = EXPECT[c.name]
      if (want === undefined) throw new Error(`no expected outcome for case '${c.name}'`)
      const image = path.join(dir, 'case.img')
      sh('cp', ['--sparse=always', base, image])
      await c.inject(image, BLOCK_SIZE)
      const r = await repairFile(image)
      tell(t, r)
      const e2 = e2fsck(image)
      t.equal(r.exitCode, want.exit, `exit ${want.exit}`)
      if (want.exit === 1) {
        t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
        t.equal((await fsckImage(image)).clean, true, 'our check clean')
        const involved = want.involved ?? []
        t.strictSame(without(await dumpImage(image), involved), without(baseDump, involved), 'every file not involved reads as before')
      } else {
        t.ok(e2.code !== null && (e2.code & 4) !== 0, `e2fsck -fn finds what we left (exit ${e2.code})`)
        t.ok(r.after.problems.some((p) => p.code === c.code), `our check after still says ${c.code}`)
      }
      fs.rmSync(image)
    })
  }
}
