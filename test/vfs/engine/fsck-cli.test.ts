/*
 * tsnfs fsck from the command line: exit 0 on a clean image, 4 with problems
 * (text and --json), 8 on an operational error (not ext4, missing file),
 * --repair (exit 1 after repairs, 0 on a clean image, 8 while locked), and
 * an image whose journal needs recovery is reported, not judged, by the check
 * and replayed by --repair. Images come from mkfs.ext4 -d (no mount needed).
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { acquireImageLock } from '../../../vfs/engine/blockdev/image-lock.ts'
import { mkfs, scratch, sh, tsnfsRaw } from './format-helpers.ts'
import { debugfs, e2fsck, MKFS_FEATURES } from './fsck-helpers.ts'

t.setTimeout(120_000)
const dir = scratch(t, 'fsck-cli')
const tree = path.join(dir, 'tree')
fs.mkdirSync(path.join(tree, 'sub/deeper'), { recursive: true })
fs.writeFileSync(path.join(tree, 'sub/file.txt'), 'hello\n')
fs.symlinkSync('sub/file.txt', path.join(tree, 'link'))
const clean = path.join(dir, 'clean.img')
mkfs(clean, 8 << 20, ['-b', '1024', ...MKFS_FEATURES, '-d', tree])

t.test('a clean image: exit 0', async (t) => {
  t.equal(e2fsck(clean).code, 0, 'e2fsck -fn agrees it is clean')
  const r = await tsnfsRaw(['fsck', clean])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.toString(), `${clean}: clean\n`)
})

t.test('problems: exit 4, as text and as JSON', async (t) => {
  const bad = path.join(dir, 'bad.img')
  sh('cp', ['--sparse=always', clean, bad])
  debugfs(bad, 'sif /sub/file.txt links_count 5')
  const text = await tsnfsRaw(['fsck', bad])
  t.equal(text.code, 4, text.stderr)
  t.match(text.stdout.toString(), /pass 4: inode \d+: i_links_count 5, counted 1 \[LINK_COUNT_WRONG\]\n.*: 1 problem found\n$/)
  const json = await tsnfsRaw(['fsck', bad, '--json'])
  t.equal(json.code, 4)
  const parsed = JSON.parse(json.stdout.toString()) as { clean: boolean; problems: Array<{ pass: number; code: string }> }
  t.equal(parsed.clean, false)
  t.match(parsed.problems, [{ pass: 4, code: 'LINK_COUNT_WRONG', severity: 'error' }])
})

t.test('--repair: what it did, exit 1, then exit 0 with nothing written; a locked image is refused with exit 8', async (t) => {
  const bad = path.join(dir, 'repair.img')
  sh('cp', ['--sparse=always', clean, bad])
  debugfs(bad, 'sif /sub/file.txt links_count 5')
  debugfs(bad, 'set_bg 0 free_inodes_count 3')
  const r = await tsnfsRaw(['fsck', bad, '--repair'])
  t.equal(r.code, 1, r.stderr)
  t.match(r.stdout.toString(), /^pass 4: fixed: inode \d+: i_links_count 5 → 1 \[LINK_COUNT_WRONG\]\npass 5: fixed: group 0: free inodes 3 → \d+ \[GROUP_REWRITTEN\]\n.*: 2 repairs made; clean now\n$/)
  t.equal(e2fsck(bad).code, 0, 'e2fsck -fn clean after it')
  const bytes = fs.readFileSync(bad)
  const again = await tsnfsRaw(['fsck', bad, '--repair', '--json'])
  t.equal(again.code, 0, again.stderr)
  t.match(JSON.parse(again.stdout.toString()), { repairs: [], exitCode: 0, after: { clean: true } })
  t.ok(fs.readFileSync(bad).equals(bytes), 'the second run wrote nothing')
  // The lock the engine takes when it serves the image.
  const lock = await acquireImageLock(bad)
  try {
    const locked = await tsnfsRaw(['fsck', bad, '--repair'])
    t.equal(locked.code, 8)
    t.match(locked.stderr, /BLOCKDEV_LOCKED: .* \(not repaired while it is served\)/)
  } finally {
    await lock.release()
  }
  t.ok(fs.readFileSync(bad).equals(bytes), 'the refused run wrote nothing')
})

t.test('operational errors: exit 8', async (t) => {
  const junk = path.join(dir, 'junk.img')
  fs.writeFileSync(junk, Buffer.alloc(1 << 16, 0x55))
  const notExt4 = await tsnfsRaw(['fsck', junk])
  t.equal(notExt4.code, 8)
  t.match(notExt4.stderr, /bad magic 0x5555 \(not ext2\/3\/4\) \(EXT4_BAD_MAGIC\)/)
  const missing = await tsnfsRaw(['fsck', path.join(dir, 'nowhere.img')])
  t.equal(missing.code, 8)
  t.match(missing.stderr, /ENOENT/)
  const junkBytes = fs.readFileSync(junk)
  const notExt4Repair = await tsnfsRaw(['fsck', junk, '--repair'])
  t.equal(notExt4Repair.code, 8)
  t.match(notExt4Repair.stderr, /bad magic 0x5555 \(not ext2\/3\/4\) \(EXT4_BAD_MAGIC\)/)
  t.ok(fs.readFileSync(junk).equals(junkBytes), '--repair wrote nothing to what is not ext4')
  t.notOk(fs.existsSync(`${junk}.tsnfs-lock`), 'and released its lock')
  const usage = await tsnfsRaw(['fsck'])
  t.equal(usage.code, 8)
  t.match(usage.stderr, /expected one IMAGE/)
})

t.test('a journal needing recovery is reported, not judged', async (t) => {
  const img = path.join(dir, 'recover.img')
  sh('cp', ['--sparse=always', clean, img])
  debugfs(img, 'feature needs_recovery')
  const r = await tsnfsRaw(['fsck', img, '--json'])
  t.equal(r.code, 4)
  const parsed = JSON.parse(r.stdout.toString()) as { problems: Array<{ code: string; message: string }> }
  t.equal(parsed.problems.length, 1)
  t.equal(parsed.problems[0]?.code, 'NEEDS_RECOVERY')
  t.match(parsed.problems[0]?.message, /needs_recovery/)
  const fixed = await tsnfsRaw(['fsck', img, '--repair'])
  t.equal(fixed.code, 1, fixed.stderr)
  t.match(fixed.stdout.toString(), /^journal replayed: 0 transactions, 0 blocks\n.*: 0 repairs made after journal replay; clean now\n$/)
  t.equal(e2fsck(img).code, 0, 'e2fsck -fn clean after the replay')
})
