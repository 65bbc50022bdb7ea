/*
 * tsnfs fsck --repair on a multi-group 4 KiB image (mkfs.ext4, 600 MiB
 * sparse: groups whose inode bitmaps are still uninitialised) filled by a
 * seeded engine workload: counts wrong in such a group are repaired and its
 * inode bitmap stays uninitialised; a block marked in use in another group is
 * freed. Then e2fsck -fn and our check are clean, and the tree reads as
 * before through the engine.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { runWorkload } from './engine-helpers.ts'
import { mkfs, scratch, sh } from './format-helpers.ts'
import { debugfs, e2fsck, fsckImage, MKFS_FEATURES } from './fsck-helpers.ts'
import { codes, dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-groups')
const base = path.join(dir, 'base.img')
mkfs(base, 600 << 20, ['-b', '4096', ...MKFS_FEATURES])
{
  const e = await openEngine(base)
  await runWorkload([e], seed, { ops: 150 })
  await e.close()
}
/** Group g's flags as dumpe2fs prints them ('INODE_UNINIT, BLOCK_UNINIT', ...). */
function flags(image: string, g: number): string {
  const m = new RegExp(`^Group ${g}: .*?(?:\\[([A-Z_, ]*)\\])?$`, 'm').exec(sh('dumpe2fs', [image]))
  return m?.[1] ?? ''
}

const baseDump = await dumpImage(base)
/** The first group whose inode bitmap the workload left uninitialised (the engine writes every block bitmap it searches). */
const uninit = (() => {
  const out = sh('dumpe2fs', [base])
  const m = /^Group (\d+): .*\[INODE_UNINIT[^\]]*\]/m.exec(out)
  if (m?.[1] === undefined) throw new Error(`no group with INODE_UNINIT after the workload:\n${out}`)
  return Number(m[1])
})()
const uninitFlags = flags(base, uninit)
t.comment(`group ${uninit}: [${uninitFlags}]`)

const CASES: Array<{ name: string; found: string; inject(image: string): void; after?(t: Test, image: string): void }> = [
  {
    name: 'a group with an uninitialised inode bitmap: its free blocks count wrong',
    found: 'GROUP_FREE_BLOCKS_WRONG',
    inject: (img) => void debugfs(img, `set_bg ${uninit} free_blocks_count 5`),
    after: (t, img) => {
      t.equal(flags(img, uninit), uninitFlags, 'the group keeps its flags (its inode bitmap stays uninitialised)')
    },
  },
  { name: 'a free block marked in use far out', found: 'BLOCK_BITMAP_DIFF', inject: (img) => void debugfs(img, 'setb 140000 3') },
]

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = path.join(dir, 'case.img')
    sh('cp', ['--sparse=always', base, image])
    c.inject(image)
    t.ok((await fsckImage(image)).problems.some((p) => p.code === c.found), `our check finds ${c.found}`)
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1)
    t.ok(codes(r, 'fixed').includes('GROUP_REWRITTEN'), 'a group rewritten')
    t.strictSame(codes(r, 'left'), [])
    const e2 = e2fsck(image)
    t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
    t.equal((await fsckImage(image)).clean, true, 'our check clean')
    c.after?.(t, image)
    t.strictSame(await dumpImage(image), baseDump, 'the tree reads as before')
    fs.rmSync(image)
  })
}
