/*
 * The kernel judges our mkfs (needs root and loop devices; skips, saying
 * why, without them): it loop-mounts a fresh image of ours (4 KiB and 1 KiB
 * blocks), we write directories, files of seeded random bytes, a hard link and
 * a symlink, unmount, and e2fsck -fn must still call it clean; our reader
 * must then read back what was written; the same on a loop block device
 * formatted in place. The kernel's first write to a mkfs.ext4 image gives
 * its journal exactly the features ours starts with.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { readerSha, openImage, scratch, seededBytes, sh, sha256, whyNoLoopMount, withMount, mkfs as mkfsExt4 } from './format-helpers.ts'
import { dumpe2fs, e2fsck, mkfsCli, ourMkfs } from './mkfs-helpers.ts'

const MiB = 2 ** 20
const why = whyNoLoopMount()

t.setTimeout(180_000)

if (why !== undefined) {
  t.comment(`skipping kernel mount tests: ${why}`)
  t.pass('skipped without loop devices')
} else {
  for (const [bs, size] of [[4096, 64 * MiB], [1024, 64 * MiB], [4096, 8 * 1024 * MiB]] as const) {
    t.test(`kernel mounts our ${size / MiB} MiB image of ${bs}-byte blocks, writes, and e2fsck stays clean`, async (t) => {
      const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
      t.comment(`seed ${seed} (TSNFS_SEED to reproduce)`)
      const rand = seededBytes(seed)
      const dir = scratch(t, 'mkfs-kernel')
      const image = path.join(dir, 'ours.img')
      await ourMkfs(image, size, { blockSize: bs, label: 'tsnfs-test' })
      const files = new Map<string, string>()
      await withMount(t, image, (root) => {
        t.strictSame(fs.readdirSync(root), ['lost+found'], 'the kernel sees lost+found alone')
        fs.mkdirSync(path.join(root, 'a/b/c'), { recursive: true })
        for (const [rel, n] of [['a/small.txt', 100], ['a/b/one-mib.bin', MiB], ['a/b/c/odd.bin', 3 * MiB + 17]] as const) {
          const data = rand(n)
          fs.writeFileSync(path.join(root, rel), data)
          files.set(rel, sha256(data))
        }
        fs.linkSync(path.join(root, 'a/small.txt'), path.join(root, 'hard.txt'))
        fs.symlinkSync('a/b/one-mib.bin', path.join(root, 'link'))
        for (let i = 0; i < 200; i++) fs.writeFileSync(path.join(root, 'a', `f${i}`), String(i))
      })
      const fsck = e2fsck(image)
      if (fsck.status !== 0) t.comment(fsck.out)
      t.equal(fsck.status, 0, 'e2fsck -fn clean after the kernel wrote')
      const h = dumpe2fs(image, true).fields
      t.equal(h.get('Filesystem state'), 'clean')
      t.equal(h.get('Filesystem volume name'), 'tsnfs-test')
      t.equal(h.get('Journal features'), 'journal_64bit journal_checksum_v3')

      const img = await openImage(t, image)
      t.strictSame((await img.readDir(2)).map((e) => e.text).sort(), ['.', '..', 'a', 'hard.txt', 'link', 'lost+found'])
      t.equal((await img.readDir(await img.lookup('/a'))).length, 2 + 2 + 200, 'a/ lists its 202 entries')
      for (const [rel, sum] of files) {
        const ino = await img.lookup(`/${rel}`)
        t.equal(await readerSha(img, ino, await img.readInode(ino)), sum, `${rel} reads back`)
      }
      t.equal(await img.lookup('/hard.txt'), await img.lookup('/a/small.txt'), 'the hard link shares the inode')
      t.equal((await img.readlink(await img.lookup('/link'))).toString(), 'a/b/one-mib.bin')
    })
  }

  t.test('kernel: tsnfs mkfs formats a loop block device in place (refusing its file system without --force)', async (t) => {
    const dir = scratch(t, 'mkfs-kernel-dev')
    const backing = path.join(dir, 'backing.img')
    // Old bytes everywhere: nothing of them may be read as metadata or replayed as journal.
    fs.writeFileSync(backing, Buffer.alloc(48 * MiB, 0x5a))
    const loop = sh('losetup', ['-f', '--show', backing]).trim()
    t.teardown(() => {
      sh('losetup', ['-d', loop])
    })
    const first = await mkfsCli([loop])
    t.equal(first.code, 0, first.stderr)
    t.match(first.stdout, new RegExp(`^${loop}: ext4, 49152 blocks of 1024 bytes, 12288 inodes, 6 groups, journal 4096 blocks, UUID `))
    const again = await mkfsCli([loop, '--block-size', '4096'])
    t.equal(again.code, 1)
    t.match(again.stderr, new RegExp(`^tsnfs mkfs: ${loop} already holds an ext4 file system \\(UUID [0-9a-f-]{36}\\); use --force to format it anyway\n$`))
    const forced = await mkfsCli([loop, '--block-size', '4096', '--force'])
    t.equal(forced.code, 0, forced.stderr)
    t.equal(e2fsck(loop).status, 0, 'e2fsck -fn clean on the device')
    t.notMatch(dumpe2fs(loop, false).groups[0], /ITABLE_ZEROED/, 'a device is not known to read as zeros')
    await withMount(t, loop, (root) => {
      t.strictSame(fs.readdirSync(root), ['lost+found'])
      fs.mkdirSync(path.join(root, 'd'))
      fs.writeFileSync(path.join(root, 'd/f'), 'on a block device\n')
    })
    const fsck = e2fsck(loop)
    if (fsck.status !== 0) t.comment(fsck.out)
    t.equal(fsck.status, 0, 'e2fsck -fn clean after the kernel wrote')
  })

  t.test('the kernel gives a mkfs.ext4 journal the features ours starts with', async (t) => {
    const dir = scratch(t, 'mkfs-kernel-ref')
    const image = path.join(dir, 'ref.img')
    mkfsExt4(image, 64 * MiB, ['-b', '4096'])
    t.equal(dumpe2fs(image, true).fields.get('Journal features'), '(none)', 'mkfs.ext4 leaves them to the first mount')
    // The kernel writes them into the journal superblock with its first transaction.
    await withMount(t, image, (root) => {
      fs.writeFileSync(path.join(root, 'x'), 'x')
    })
    t.equal(dumpe2fs(image, true).fields.get('Journal features'), 'journal_64bit journal_checksum_v3')
  })
}
