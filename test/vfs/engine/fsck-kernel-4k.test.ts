/*
 * tsnfs fsck against e2fsck -fn on a 4 KiB-block image the kernel filled
 * (needs root and loop devices; skips, saying why, without them): both call
 * the base image clean, and both find each injected damage.
 */
import t from 'tap'
import { scratch, whyNoLoopMount } from './format-helpers.ts'
import { buildBase, e2fsck, fsckImage, runCases } from './fsck-helpers.ts'

const BLOCK_SIZE = 4096
const why = whyNoLoopMount()
if (why !== undefined) {
  t.comment(`skipped: ${why}`)
  t.pass('no loop devices here')
} else {
  t.setTimeout(240_000)
  const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
  const dir = scratch(t, 'fsck4k')
  const base = await buildBase(t, dir, BLOCK_SIZE, seed)
  await t.test('kernel-filled image: e2fsck -fn and ours both clean', async (t) => {
    const e2 = e2fsck(base)
    const ours = await fsckImage(base)
    t.comment(`base: e2fsck -fn exit ${e2.code}; ours ${ours.clean ? 'clean' : 'problems'}`)
    t.equal(e2.code, 0, e2.out)
    t.same(ours.problems.filter((p) => p.severity === 'error'), [], 'no problems')
    t.equal(ours.clean, true)
  })
  await runCases(t, base, dir, BLOCK_SIZE)
}
