/*
 * The engine serves a directory the kernel indexed (needs root and loop
 * devices; skips, saying why, without them). When the kernel turns a linear
 * directory into an htree (make_indexed_dir) the root block keeps the old
 * leaf's checksum tail inside the '..' record, where it looks like a dirent
 * tail: the engine must still check that block as an index block. The tree
 * read through the engine equals the kernel's view.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { dumpHost, dumpVfs } from './engine-helpers.ts'
import { mkfs, scratch, whyNoLoopMount, withMount } from './format-helpers.ts'
import { MKFS_FEATURES } from './fsck-helpers.ts'

const why = whyNoLoopMount()
if (why !== undefined) {
  t.comment(`skipped: ${why}`)
  t.pass('no loop devices here')
} else {
  t.test('a directory the kernel indexed reads through the engine as the kernel sees it', async (t) => {
    const image = path.join(scratch(t, 'engine-kernel-htree'), 'k.img')
    mkfs(image, 16 << 20, ['-b', '4096', ...MKFS_FEATURES])
    // 300 names of ~40 bytes outgrow one 4 KiB block: the kernel indexes the directory.
    const host = await withMount(t, image, (root) => {
      fs.mkdirSync(path.join(root, 'd'))
      for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(root, `d/name-${String(i).padStart(4, '0')}-${'x'.repeat(30)}`), `${i}\n`)
      return dumpHost(root)
    })
    const e = await openEngine(image, { readOnly: true })
    try {
      t.strictSame(await dumpVfs(e), host)
    } finally {
      await e.close()
    }
  })
}
