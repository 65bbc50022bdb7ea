/*
 * The kernel judges a grown file system (needs root and loop devices; skips, saying why, without
 * them): a file written by the kernel before the grow reads back after it, statfs (df) reports the
 * new size, the kernel writes more than the old file system could hold, and e2fsck -fn stays
 * clean after the kernel's writes. One grow stays in its descriptor block, one takes reserved GDT
 * blocks.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { growFileSystem } from '../../../vfs/engine/resize/grow-fs.ts'
import { scratch, seededBytes, sha256, whyNoLoopMount, withMount } from './format-helpers.ts'
import { e2fsck, ourMkfs } from './mkfs-helpers.ts'

const MiB = 2 ** 20
const why = whyNoLoopMount()

t.setTimeout(180_000)

if (why !== undefined) {
  t.comment(`skipping kernel mount tests: ${why}`)
  t.pass('skipped without loop devices')
} else {
  for (const [bs, from, to] of [[4096, 64 * MiB, 256 * MiB], [1024, 32 * MiB, 160 * MiB]] as const) {
    t.test(`kernel: ${from / MiB} MiB of ${bs}-byte blocks grown to ${to / MiB} MiB`, async (t) => {
      const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
      t.comment(`seed ${seed}`)
      const rand = seededBytes(seed)
      const image = path.join(scratch(t, 'resize-kernel'), 'g.img')
      await ourMkfs(image, from, { blockSize: bs })
      const before = rand(3 * MiB + 5)
      await withMount(t, image, (root) => {
        fs.writeFileSync(path.join(root, 'before.bin'), before)
      })
      fs.truncateSync(image, to)
      const dev = await ImageFile.open(image)
      const r = await growFileSystem(dev)
      await dev.close()
      t.comment(`${r.oldGroups} to ${r.newGroups} groups, ${r.gdtBlocksAdded} reserved GDT blocks taken`)
      if (bs === 1024) t.ok(r.gdtBlocksAdded > 0, 'this grow takes reserved GDT blocks')
      await withMount(t, image, (root) => {
        t.equal(sha256(fs.readFileSync(path.join(root, 'before.bin'))), sha256(before), 'the file written before reads back')
        const st = fs.statfsSync(root)
        const total = st.blocks * st.bsize
        t.ok(total > to - to / 10 && total <= to, `df: ${total} bytes in all, near the new ${to} (the old was ${from})`)
        // More than the old file system had in all.
        const chunk = Buffer.alloc(MiB, 0x77)
        const fd = fs.openSync(path.join(root, 'after.bin'), 'w')
        for (let i = 0; i < from / MiB + 8; i++) fs.writeSync(fd, chunk)
        fs.fsyncSync(fd)
        fs.closeSync(fd)
        t.equal(fs.statSync(path.join(root, 'after.bin')).size, from + 8 * MiB, 'the kernel wrote more than the old size')
      })
      const fsck = e2fsck(image)
      if (fsck.status !== 0) t.comment(fsck.out)
      t.equal(fsck.status, 0, 'e2fsck -fn clean after the kernel wrote to the grown file system')
    })
  }
}
