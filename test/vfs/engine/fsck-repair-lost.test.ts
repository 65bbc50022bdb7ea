/*
 * tsnfs fsck --repair, pass 3: an unreachable directory and an unattached
 * file are linked into /lost+found as '#ino' (made first when missing, grown
 * by a block when full), link counts follow (pass 4), the new lost+found's
 * bits and counts too (pass 5); then e2fsck -fn clean, our check clean, and
 * every file as before, the reconnected ones under their new names.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import type { TreeDump } from './engine-helpers.ts'
import { scratch, sh } from './format-helpers.ts'
import { debugfs, e2fsck, fsckImage, inodeOf } from './fsck-helpers.ts'
import { buildRepairBase, codes, dumpImage, dumpLost, repairFile, tell } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-lost')
const base = buildRepairBase(dir, seed)
const baseDump = await dumpImage(base)

/** baseDump split: what stays (paths not under from), and what moves (under from, renamed to under to). */
function split(from: string, to: string): { stays: TreeDump; moves: TreeDump } {
  const stays: TreeDump = {}
  const moves: TreeDump = {}
  for (const [p, e] of Object.entries(baseDump)) {
    if (p === from || p.startsWith(`${from}/`)) moves[to + p.slice(from.length)] = e
    else stays[p] = e
  }
  return { stays, moves }
}

async function repaired(t: Test, image: string, want: string[]): Promise<void> {
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), want)
  t.strictSame(codes(r, 'left'), [])
  const e2 = e2fsck(image)
  t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
  t.equal((await fsckImage(image)).clean, true, 'our check clean')
}

await t.test('an unreachable directory: connected to /lost+found', async (t) => {
  const image = path.join(dir, 'dir.img')
  sh('cp', ['--sparse=always', base, image])
  const ino = inodeOf(image, '/a/b/c')
  debugfs(image, 'unlink /a/b/c')
  await repaired(t, image, ['RECONNECTED', 'LINK_COUNT_WRONG', 'LINK_COUNT_WRONG'])
  const { stays, moves } = split('/a/b/c', `/#${ino}`)
  t.strictSame(await dumpImage(image), stays, 'the rest as before')
  t.strictSame((await dumpLost(image)).tree, moves, 'the directory and its file, under lost+found')
  fs.rmSync(image)
})

await t.test('an unattached file, no lost+found: lost+found made, the file connected', async (t) => {
  const image = path.join(dir, 'file.img')
  sh('cp', ['--sparse=always', base, image])
  const ino = inodeOf(image, '/one.txt')
  debugfs(image, 'unlink /one.txt')
  debugfs(image, 'rmdir /lost+found')
  await repaired(t, image, ['LOST_FOUND_CREATED', 'RECONNECTED', 'LINK_COUNT_WRONG', 'GROUP_REWRITTEN', 'SUPER_COUNTS_REWRITTEN'])
  const { stays, moves } = split('/one.txt', `/#${ino}`)
  t.strictSame(await dumpImage(image), stays, 'the rest as before')
  const lost = await dumpLost(image)
  t.strictSame(lost.tree, moves, 'the file, under lost+found')
  t.equal(lost.mode, 0o700, 'lost+found is mode 0700')
  fs.rmSync(image)
})

await t.test('an unattached file, lost+found full: lost+found grown by a block, the file connected', async (t) => {
  const image = path.join(dir, 'full.img')
  sh('cp', ['--sparse=always', base, image])
  // A lost+found of one 1 KiB block (debugfs mkdir), filled by four empty files whose names leave 8 bytes: no room for '#ino'.
  debugfs(image, 'rmdir /lost+found')
  debugfs(image, 'mkdir /lost+found')
  for (const [c, n] of [['a', 255], ['b', 255], ['c', 255], ['d', 180]] as const) debugfs(image, `write /dev/null /lost+found/${c.repeat(n)}`)
  const before = await dumpLost(image)
  t.equal(e2fsck(image).code, 0, 'e2fsck -fn: clean before the damage')
  const ino = inodeOf(image, '/one.txt')
  debugfs(image, 'unlink /one.txt')
  t.equal(e2fsck(image).code, 4, 'e2fsck -fn: damaged')
  t.ok((await fsckImage(image)).problems.some((p) => p.code === 'INODE_UNATTACHED' && p.ino === ino), 'our check: the file is unattached')
  // The file kept its one link (debugfs unlink leaves the count), so pass 4 has nothing to do; pass 5 marks the new block.
  await repaired(t, image, ['LOST_FOUND_EXPANDED', 'RECONNECTED', 'GROUP_REWRITTEN', 'SUPER_COUNTS_REWRITTEN'])
  const { stays, moves } = split('/one.txt', `/#${ino}`)
  t.strictSame(await dumpImage(image), stays, 'the rest as before')
  const lost = await dumpLost(image)
  t.strictSame(lost.tree, { ...before.tree, ...moves }, 'the four files and the reconnected one, under lost+found')
  t.match(debugfs(image, 'stat /lost+found', false), /Size: 2048\b/, 'lost+found holds two blocks')
  fs.rmSync(image)
})
