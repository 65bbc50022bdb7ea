/*
 * What the fsck --repair tests share: a small image made by mkfs.ext4 -d (no
 * mount needed) with files of several blocks, a hard link, symlinks, a
 * sparse file whose extent tree has a leaf block, a subdirectory tree and an
 * htree directory of 200 entries (/many); a repair run through the library on a damaged copy; and
 * the judges afterwards: e2fsck -fn, our own check, and the tree read back
 * through the engine (read-only) to compare with the tree before the damage.
 */
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { repairImage } from '../../../vfs/engine/fsck/repair/repair.ts'
import type { RepairResult } from '../../../vfs/engine/fsck/repair/repair.ts'
import { dumpVfs } from './engine-helpers.ts'
import type { TreeDump } from './engine-helpers.ts'
import { mkfs, seededBytes, sh } from './format-helpers.ts'
import { MKFS_FEATURES } from './fsck-helpers.ts'

/** mkfs.ext4 -d a 16 MiB image of 1 KiB blocks (two groups) from a tree of seeded bytes. */
export function buildRepairBase(dir: string, seed: number): string {
  const tree = path.join(dir, 'tree')
  const rand = seededBytes(seed)
  fs.mkdirSync(path.join(tree, 'a/b/c'), { recursive: true })
  fs.mkdirSync(path.join(tree, 'many'))
  fs.writeFileSync(path.join(tree, 'a/data.bin'), rand(300_000))
  fs.linkSync(path.join(tree, 'a/data.bin'), path.join(tree, 'a/b/hard.bin'))
  fs.writeFileSync(path.join(tree, 'a/b/c/f.txt'), 'deep in the tree\n')
  fs.writeFileSync(path.join(tree, 'one.txt'), rand(5000))
  fs.writeFileSync(path.join(tree, 'two.txt'), rand(5000))
  fs.symlinkSync('a/b/c/f.txt', path.join(tree, 'fast'))
  fs.symlinkSync(`${'far/away/'.repeat(12)}target`, path.join(tree, 'slow'))
  // Eight runs between holes: more than the inode's four extents, so a tree with one leaf block.
  const fd = fs.openSync(path.join(tree, 'sparse'), 'w')
  for (let i = 0; i < 8; i++) fs.writeSync(fd, rand(3000), 0, 3000, i * 40960)
  fs.ftruncateSync(fd, 8 * 40960)
  fs.closeSync(fd)
  for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(tree, `many/f${i}`), rand(i * 37))
  const image = path.join(dir, 'base.img')
  mkfs(image, 16 << 20, ['-b', '1024', ...MKFS_FEATURES, '-d', tree])
  // mkfs -d writes linear directories; e2fsck -D indexes those of several blocks (/many), as the kernel would have.
  const r = spawnSync('e2fsck', ['-fyD', image], { encoding: 'utf8' })
  if (r.status !== 0 && r.status !== 1) throw new Error(`e2fsck -fyD: exit ${r.status}: ${r.stdout}${r.stderr}`)
  return image
}

/** The tree as the engine serves it, read-only (no lock, nothing written). */
/** A sparse copy of base called name in dir, to damage without touching base. */
export function copyImage(dir: string, base: string, name: string): string {
  const image = path.join(dir, name)
  sh('cp', ['--sparse=always', base, image])
  return image
}

export async function dumpImage(image: string): Promise<TreeDump> {
  const e = await openEngine(image, { readOnly: true })
  try {
    return await dumpVfs(e)
  } finally {
    await e.close()
  }
}

/** The tree under /lost+found (which dumpVfs leaves out of a whole-tree dump), and the lost+found entry's own mode. */
export async function dumpLost(image: string): Promise<{ tree: TreeDump; mode: number }> {
  const e = await openEngine(image, { readOnly: true })
  try {
    const { ref, attr } = await e.lookup(e.root(), Buffer.from('lost+found'))
    return { tree: await dumpVfs(e, ref), mode: attr.mode }
  } finally {
    await e.close()
  }
}

/** repairImage on image, opened as the CLI opens it (read-write, locked). */
export async function repairFile(image: string): Promise<RepairResult> {
  const dev = await ImageFile.open(image)
  try {
    return await repairImage(dev)
  } finally {
    await dev.close()
  }
}

/** The codes of what a repair did ('fixed') or refused ('left'). */
export function codes(r: RepairResult, outcome: 'fixed' | 'left'): string[] {
  return r.repairs.filter((x) => x.outcome === outcome).map((x) => x.code)
}

/** Comment what the repair said, so a failing run shows it. */
export function tell(t: Test, r: RepairResult): void {
  for (const x of r.repairs) t.comment(`  ${x.outcome} pass ${x.pass} ${x.code}: ${x.message}`)
  t.comment(`  exit ${r.exitCode}; before ${r.before.problems.length} problems, after ${r.after.problems.filter((p) => p.severity === 'error').length}`)
}
