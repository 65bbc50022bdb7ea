/*
 * tsnfs fsck --repair, the inode flags e2fsck judges on their own (pass 1):
 * one flag damaged at a time with debugfs -w on a copy of a small mkfs.ext4 -d
 * image. Judges: e2fsck -fn finds the damage too (exit 4), our check names
 * it, the repair answers it with one flags write (exit 1), i_flags is then
 * what it was before the damage, e2fsck -fn and our check call the image
 * clean, and every file reads as before. Beside the flags, the fields the same
 * checks ask to be zero: i_faddr, the root's i_dtime, a reserved inode's
 * orphan-list link.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { scratch, sh } from './format-helpers.ts'
import { debugfs, e2fsck, fsckImage } from './fsck-helpers.ts'
import { buildRepairBase, codes, dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const seed = Number(process.env.FSCK_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (FSCK_SEED=${seed} repeats it)`)
const dir = scratch(t, 'fsck-repair-flags')
const base = buildRepairBase(dir, seed)
const baseDump = await dumpImage(base)

/** i_flags of path as debugfs stat prints it ("Flags: 0x80000"). */
function flagsOf(image: string, file: string): number {
  // -n: read the inode even where its checksum fails.
  const r = spawnSync('debugfs', ['-n', '-R', `stat ${file}`, image], { encoding: 'utf8' })
  const m = /Flags: (0x[0-9a-f]+)/.exec(r.stdout)
  if (m?.[1] === undefined) throw new Error(`no flags in debugfs stat ${file}`)
  return Number(m[1])
}

interface FlagCase {
  name: string
  file: string
  /** i_flags written: from the flags the file has. */
  damage(flags: number): number
  found: string
  /** Damage to the superblock first, where the flag is judged against a feature. */
  feature?: string
  /** e2fsck -n reports it and still exits 0 (PR_NO_OK); -y clears it: a note, which the repair answers. */
  note?: true
  /** What follows from the flag: found with it, and repaired after it. */
  also?: { found: string; repair: string }
}

const EXTENTS = 0x80000
const CASES: FlagCase[] = [
  { name: 'imagic flag without the imagic_inodes feature', file: '/one.txt', damage: (f) => f | 0x2000, found: 'INODE_IMAGIC_FL' },
  { name: 'encrypt flag and no encryption context', file: '/a/data.bin', damage: (f) => f | 0x800, found: 'INODE_ENCRYPT_NO_XATTR' },
  { name: 'encrypt flag on a directory and no encryption context', file: '/a/b', damage: (f) => f | 0x800, found: 'INODE_ENCRYPT_NO_XATTR' },
  { name: 'casefold flag on a regular file', file: '/two.txt', damage: (f) => f | 0x40000000, found: 'INODE_CASEFOLD_FL' },
  { name: 'casefold flag on a directory without the casefold feature', file: '/a', damage: (f) => f | 0x40000000, found: 'INODE_CASEFOLD_FL' },
  { name: 'immutable flag on a fast symlink', file: '/fast', damage: (f) => f | 0x10, found: 'INODE_SPECIAL_IMMUTABLE', note: true },
  { name: 'append-only flag on a slow symlink', file: '/slow', damage: (f) => f | 0x20, found: 'INODE_SPECIAL_IMMUTABLE', note: true },
  { name: 'htree index flag on a regular file', file: '/one.txt', damage: (f) => f | 0x1000, found: 'INODE_HTREE_FL' },
  { name: 'extents flag gone from a file whose i_block is an extent root', file: '/one.txt', damage: (f) => f & ~EXTENTS, found: 'INODE_MISSING_EXTENTS_FL' },
  { name: 'extents flag gone from a file with a tree of two levels', file: '/sparse', damage: (f) => f & ~EXTENTS, found: 'INODE_MISSING_EXTENTS_FL' },
  { name: 'extents flag gone from a directory', file: '/a/b/c', damage: (f) => f & ~EXTENTS, found: 'INODE_MISSING_EXTENTS_FL' },
  { name: 'htree index flag on a directory once dir_index is off', file: '/many', damage: (f) => f, found: 'INODE_HTREE_FL', feature: '-dir_index',
    // Read as a linear block, the htree root has no dirent tail to hold its checksum: rebuilt with one.
    also: { found: 'DIR_CSUM', repair: 'DIR_SALVAGED' } },
]

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = path.join(dir, 'case.img')
    sh('cp', ['--sparse=always', base, image])
    const before = flagsOf(image, c.file)
    if (c.feature !== undefined) debugfs(image, `feature ${c.feature}`)
    const damaged = c.damage(before)
    if (damaged !== before) debugfs(image, `sif ${c.file} flags 0x${damaged.toString(16)}`)
    t.equal(flagsOf(image, c.file), damaged, `flags 0x${before.toString(16)} → 0x${damaged.toString(16)}`)
    const judged = e2fsck(image)
    if (c.note === true) t.ok(judged.code === 0 && /immutable\s+or append-only flag set/.test(judged.out), `e2fsck -fn reports it and exits 0 (exit ${judged.code})`)
    // 4 errors left; where the flag decides how i_block reads (extents), e2fsck -n stops with 8 or 12.
    else t.not(judged.code, 0, `e2fsck -fn finds the damage (exit ${judged.code})`)
    const found = await fsckImage(image)
    const severity = c.note === true ? 'note' : 'error'
    t.strictSame(found.problems.filter((p) => p.severity === severity).map((p) => p.code), [c.found, ...(c.also === undefined ? [] : [c.also.found])], `our check finds ${c.found} (${severity}) and nothing else`)
    t.equal(found.clean, c.note === true, c.note === true ? 'and calls the image clean, as e2fsck -n does' : 'and calls the image damaged')
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1, 'exit 1: errors corrected')
    t.strictSame(codes(r, 'fixed'), ['INODE_FLAGS_SET', ...(c.also === undefined ? [] : [c.also.repair])], 'one flags write')
    t.strictSame(codes(r, 'left'), [], 'nothing left')
    t.equal(flagsOf(image, c.file), c.feature === undefined ? before : before & ~0x1000, 'i_flags as before the damage (less INDEX_FL without dir_index)')
    const e2 = e2fsck(image)
    t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
    t.equal((await fsckImage(image)).clean, true, 'our check clean')
    t.strictSame(await dumpImage(image), baseDump, 'every file reads as before the damage')
    fs.rmSync(image)
  })
}

/** A field of path's inode as debugfs stat prints it ("Fragment:  Address: 5", "dtime: 0x50000000"). */
function statOf(image: string, file: string): string {
  return spawnSync('debugfs', ['-n', '-R', `stat ${file}`, image], { encoding: 'utf8' }).stdout
}

const FIELD_CASES: Array<{ name: string; inject: string; found: string; repair: string; after: (stat: string) => boolean }> = [
  // e2fsck's pass 2 (PR_2_FADDR_ZERO): the obsolete fragment address must be zero on Linux.
  { name: 'i_faddr set on a file', inject: 'sif /one.txt faddr 5', found: 'INODE_FADDR', repair: 'INODE_FLAGS_SET', after: (s) => /Fragment:\s+Address: 0\b/.test(s) },
  // PR_1_ROOT_DTIME and PR_1_SET_DTIME.
  { name: 'the root with a deletion time', inject: 'sif <2> dtime 0x50000000', found: 'INODE_DTIME_SET', repair: 'DTIME_CLEARED', after: (s) => !/dtime:/.test(s) },
  // PR_1_LOW_DTIME on a reserved inode with links (the resize inode): the orphan-list link cleared.
  { name: 'a reserved inode with an orphan-list link for its dtime', inject: 'sif <7> dtime 5', found: 'INODE_LOW_DTIME', repair: 'DTIME_CLEARED', after: (s) => !/dtime:/.test(s) },
]

for (const c of FIELD_CASES) {
  await t.test(c.name, async (t) => {
    const image = path.join(dir, 'field.img')
    sh('cp', ['--sparse=always', base, image])
    debugfs(image, c.inject)
    t.not(e2fsck(image).code, 0, 'e2fsck -fn finds the damage')
    const found = await fsckImage(image)
    t.strictSame(found.problems.filter((p) => p.severity === 'error').map((p) => p.code), [c.found], `our check finds ${c.found} and nothing else`)
    const r = await repairFile(image)
    tell(t, r)
    t.equal(r.exitCode, 1, 'exit 1: errors corrected')
    t.strictSame(codes(r, 'fixed'), [c.repair], `repaired: ${c.repair}`)
    const file = c.inject.split(' ')[1] ?? ''
    t.ok(c.after(statOf(image, file)), 'the field as it should be')
    const e2 = e2fsck(image)
    t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
    t.strictSame(await dumpImage(image), baseDump, 'every file reads as before the damage')
    fs.rmSync(image)
  })
}

await t.test('a flag to clear on an inode whose checksum fails too: left, exit 4, the record unwritten', async (t) => {
  const image = path.join(dir, 'sum.img')
  sh('cp', ['--sparse=always', base, image])
  const before = flagsOf(image, '/one.txt')
  debugfs(image, `sif /one.txt flags 0x${(before | 0x2000).toString(16)}`)
  debugfs(image, 'sif /one.txt checksum 0x1234')
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4, 'exit 4: errors left')
  t.ok(codes(r, 'left').includes('INODE_IMAGIC_FL'), 'the imagic flag left')
  t.strictSame(codes(r, 'fixed'), [], 'nothing written')
  t.equal(flagsOf(image, '/one.txt'), before | 0x2000, 'the flag still set')
})
