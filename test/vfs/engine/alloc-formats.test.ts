/*
 * Older checksum formats: descriptors summed with crc16 (uninit_bg without metadata_csum),
 * descriptors with no sum at all, and 32-byte descriptors (no 64bit). The same random workload
 * of files made of allocations must leave each image e2fsck-clean, and freeing everything must
 * give back the free lists mkfs made.
 */
import t from 'tap'
import { InodeTable } from '../../../vfs/engine/inode/inode-table.ts'
import { freeLists, fsck, makeImage, openAlloc, seededInt } from './alloc-helpers.ts'
import type { Layout } from './alloc-helpers.ts'
import { allocRuns, writeFile } from './alloc-files.ts'
import { seededBytes } from './format-helpers.ts'

const BASE: Layout = { name: '1k', size: 16 << 20, blockSize: 1024, args: ['-b', '1024', '-g', '2048', '-N', '1024'] }
const CASES: Array<[string, string]> = [
  ['crc16 descriptors (uninit_bg), 32-byte', '^metadata_csum,uninit_bg,^64bit'],
  ['no descriptor checksums', '^metadata_csum,^uninit_bg'],
  ['metadata_csum, 32-byte descriptors', '^64bit'],
]

for (const [name, features] of CASES) {
  t.test(name, async (t) => {
    const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.comment(`seed ${seed} (TSNFS_SEED=${seed} to repeat)`)
    const rnd = seededInt(seed)
    const file = makeImage(t, BASE, ['-O', features])
    const before = freeLists(file)
    let o = await openAlloc(file, BASE.blockSize)
    t.teardown(() => o.close())
    const table = new InodeTable(o.txm, o.alloc.groups)
    const made: Array<{ ino: number; runs: Array<{ start: number; count: number }> }> = []
    for (let i = 0; i < 8; i++) {
      const h = await o.txm.begin()
      const ino = await o.alloc.allocInode(h, 2, false)
      const { runs, err } = await allocRuns(o.alloc, h, 0, 1 + rnd(1400))
      if (err !== undefined) throw err
      await writeFile({ alloc: o.alloc, table, dev: o.dev }, h, ino, `f${i}`, runs, seededBytes(seed + i))
      made.push({ ino, runs })
      o.txm.end(h)
    }
    await o.close()
    const r = fsck(file)
    t.equal(r.status, 0, 'e2fsck -fn clean with the files')
    t.notMatch(r.out, /wrong|differences|Fix\?/, r.out)

    // Freed again (the inodes and entries stay written: only the bitmaps are compared with mkfs's).
    o = await openAlloc(file, BASE.blockSize)
    const h = await o.txm.begin()
    for (const m of made) {
      for (const run of m.runs) await o.alloc.freeBlocks(h, run.start, run.count, false)
      await o.alloc.freeInode(h, m.ino, false)
    }
    o.txm.end(h)
    await o.close()
    t.strictSame(freeLists(file), before, 'free lists as mkfs made them')
  })
}
