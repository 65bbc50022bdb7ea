/*
 * The verdicts the fsck and repair tests ask of an image, judged by e2fsck and by our own check
 * side by side: a sound image both leave alone, e2fsck -fy's corrected copy (what our repair is
 * compared with), and an image both call clean after a repair. Each test asks them in its own
 * order around its own damage and its own comparisons.
 */
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { e2fsck, fsckImage } from './fsck-helpers.ts'
import { copyImage, repairFile, tell } from './fsck-repair-helpers.ts'

/**
 * A sound image: e2fsck -fn and our check find nothing, and our repair writes nothing (exit 0,
 * the image byte-identical). `exit` names the exit assertion as the test wants it said.
 */
export async function judgeSound(t: Test, image: string, exit = 'exit 0'): Promise<void> {
  const e2 = e2fsck(image)
  t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
  const ours = await fsckImage(image)
  t.strictSame(ours.problems.filter((p) => p.severity === 'error').map((p) => `${p.code}: ${p.message}`), [], 'our check: no problem')
  t.equal(ours.clean, true, 'our check clean')
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 0, exit)
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
}

/** A copy of the damaged image as `e2fsck -fy` corrects it (exit 1), for comparing our repair with. */
export function correctedByE2fsck(t: Test, dir: string, image: string, name: string): string {
  const theirs = copyImage(dir, image, name)
  t.equal(spawnSync('e2fsck', ['-fy', theirs], { encoding: 'utf8' }).status, 1, 'e2fsck -fy corrects it')
  return theirs
}

/** After a repair: e2fsck -fn (its output shown when not) and our check both clean. */
export async function judgeCleanAfter(t: Test, image: string): Promise<void> {
  const after = e2fsck(image)
  t.equal(after.code, 0, `e2fsck -fn clean${after.code === 0 ? '' : `\n${after.out}`}`)
  t.equal((await fsckImage(image)).clean, true, 'our check clean')
}
