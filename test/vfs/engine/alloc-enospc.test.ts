/*
 * A full file system: files are made of allocations until the allocator answers ENOSPC — first
 * with root's reserve kept back (ENOSPC arrives with exactly s_r_blocks_count free), then with it
 * (ENOSPC at 100 % full) — and the image stays e2fsck-clean. Inodes likewise run out cleanly.
 */
import t from 'tap'
import type { Test } from 'tap'
import { InodeTable } from '../../../vfs/engine/inode/inode-table.ts'
import { LAYOUTS, freeLists, fsck, makeImage, openAlloc, superCounts } from './alloc-helpers.ts'
import { allocRuns, writeFile } from './alloc-files.ts'
import type { Opened } from './alloc-helpers.ts'

/** Makes files of up to 4 extents until a block allocation fails; returns that failure and the files made. */
async function fill(o: Opened, first: number): Promise<{ err: Error & { code?: string }; files: number }> {
  const table = new InodeTable(o.txm, o.alloc.groups)
  // Filling a whole image: constant bytes (each block still starts with its file's name and index) keep it fast.
  const bytes = (n: number): Buffer => Buffer.alloc(n, 0x5a)
  for (let i = first; ; i++) {
    const h = await o.txm.begin()
    const ino = await o.alloc.allocInode(h, 2, false)
    const { runs, err } = await allocRuns(o.alloc, h, 0, 4 * o.alloc.geometry.blocksPerGroup)
    if (runs.length > 0) await writeFile({ alloc: o.alloc, table, dev: o.dev }, h, ino, `f${i}`, runs, bytes)
    else await o.alloc.freeInode(h, ino, false)
    o.txm.end(h)
    await o.txm.waitDurable(h.tid)
    if (err !== undefined) return { err, files: i - first + (runs.length > 0 ? 1 : 0) }
  }
}

function clean(t: Test, file: string): void {
  const r = fsck(file)
  t.equal(r.status, 0, 'e2fsck -fn clean')
  t.notMatch(r.out, /wrong|differences|Fix\?/, r.out)
}

for (const layout of LAYOUTS) {
  t.test(`ENOSPC keeps root's reserve, then at 100 % full (${layout.name})`, async (t) => {
    const file = makeImage(t, layout, ['-m', '5'])
    let o = await openAlloc(file, layout.blockSize)
    t.teardown(() => o.close())
    const reserved = o.alloc.geometry.reservedBlocks
    t.ok(reserved > 0, `mkfs -m 5 reserves ${reserved} blocks`)
    const a = await fill(o, 0)
    t.equal(a.err.code, 'ENOSPC', `ENOSPC after ${a.files} files: ${a.err.message}`)
    t.equal(o.alloc.groups.freeBlocks, reserved, 'exactly the reserve is left')
    t.equal(o.alloc.availableBlocks, 0, 'nothing available to non-root')
    await o.close()
    clean(t, file)
    t.equal(superCounts(file).freeBlocks, reserved, 'superblock counts the reserve free')

    o = await openAlloc(file, layout.blockSize, { useReserved: true })
    const b = await fill(o, a.files)
    t.equal(b.err.code, 'ENOSPC', `ENOSPC after ${b.files} more files: ${b.err.message}`)
    t.equal(o.alloc.groups.freeBlocks, 0, 'no block left')
    const h = await o.txm.begin()
    await t.rejects(o.alloc.allocBlocks(h, 0, 1), { code: 'ENOSPC' }, 'a further allocation is ENOSPC too')
    o.txm.end(h)
    await o.close()
    clean(t, file)
    t.equal(superCounts(file).freeBlocks, 0, 'superblock: 0 free blocks')
    t.ok(freeLists(file).filter((l) => l.startsWith('Free blocks:')).every((l) => l === 'Free blocks:'), 'dumpe2fs lists no free block in any group')
  })
}

t.test('inodes run out with ENOSPC, and come back', async (t) => {
  const layout = LAYOUTS[1] ?? LAYOUTS[0]
  if (layout === undefined) throw new Error('no layout')
  const file = makeImage(t, layout, ['-N', '64'])
  const before = freeLists(file)
  const o = await openAlloc(file, layout.blockSize, { random: () => 0.5 })
  t.teardown(o.close)
  const free = o.alloc.groups.freeInodes
  const h = await o.txm.begin()
  const got: Array<{ ino: number; dir: boolean }> = []
  for (let i = 0; i < free; i++) {
    const dir = i % 3 === 0
    got.push({ ino: await o.alloc.allocInode(h, got.find((g) => g.dir)?.ino ?? 2, dir), dir })
  }
  t.equal(new Set(got.map((g) => g.ino)).size, free, `${free} distinct inodes`)
  await t.rejects(o.alloc.allocInode(h, 2, false), { code: 'ENOSPC' }, 'the next one is ENOSPC')
  await t.rejects(o.alloc.allocInode(h, 2, true), { code: 'ENOSPC' }, 'for a directory too')
  for (const g of got) await o.alloc.freeInode(h, g.ino, g.dir)
  o.txm.end(h)
  await o.close()
  clean(t, file)
  t.strictSame(freeLists(file), before, 'free lists as at the start')
})
