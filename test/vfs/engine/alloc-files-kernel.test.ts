/*
 * Allocations made into real files: on mkfs.ext4 images (4 KiB and 1 KiB blocks, groups still
 * BLOCK_UNINIT/INODE_UNINIT), inodes and blocks come from the Ext4Allocator, inodes are written
 * by the InodeTable, each file's blocks hold distinct data; then e2fsck -fn must call the image
 * clean, our reader must read every file back, and the kernel's loop mount (read-only; skipped,
 * saying why, without root or loop devices) must read each file byte-exact.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { FT } from '../../../vfs/engine/format/dirent.ts'
import { S_IFCHR, S_IFIFO, S_IFLNK } from '../../../vfs/engine/format/inode.ts'
import { InodeTable } from '../../../vfs/engine/inode/inode-table.ts'
import { newInode } from '../../../vfs/engine/inode/new-inode.ts'
import type { NewInodeSpec } from '../../../vfs/engine/inode/new-inode.ts'
import { LAYOUTS, fsck, makeImage, openAlloc, seededInt, superCounts } from './alloc-helpers.ts'
import { addRootEntry, allocRuns, writeFile } from './alloc-files.ts'
import type { TestFile } from './alloc-files.ts'
import { openImage, scratch, seededBytes, sh, whyNoLoopMount } from './format-helpers.ts'

const FILES = 14
const FAST_TARGET = 'a/target/of/fifty-nine/bytes/at/most/in/i_block'

/** Loop-attach image read-only and mount it; both undone at teardown. */
function mountRo(t: Test, image: string): string {
  const dir = path.join(scratch(t, 'alloc-mnt'), 'm')
  fs.mkdirSync(dir)
  const loop = sh('losetup', ['-f', '--show', '-r', image]).trim()
  t.teardown(() => {
    sh('losetup', ['-d', loop])
  })
  sh('mount', ['-o', 'ro', loop, dir])
  t.teardown(() => {
    sh('umount', [dir])
  })
  return dir
}

for (const layout of LAYOUTS) {
  t.test(`allocated files are e2fsck-clean and the kernel reads them byte-exact (${layout.name})`, async (t) => {
    const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.comment(`seed ${seed} (TSNFS_SEED=${seed} to repeat)`)
    const rnd = seededInt(seed)
    const bytes = seededBytes(seed)
    const file = makeImage(t, layout)
    const o = await openAlloc(file, layout.blockSize)
    t.teardown(o.close)
    const table = new InodeTable(o.txm, o.alloc.groups)
    const deps = { alloc: o.alloc, table, dev: o.dev }
    const files: TestFile[] = []
    const startFree = o.alloc.groups.freeBlocks
    for (let i = 0; i < FILES; i++) {
      const h = await o.txm.begin()
      const ino = await o.alloc.allocInode(h, 2, false)
      // Mostly small files, some larger than a group, so runs cross into BLOCK_UNINIT groups.
      const big = Math.min(o.alloc.geometry.blocksPerGroup + 500, Math.floor(o.alloc.availableBlocks / (FILES - i + 1)))
      const want = rnd(4) === 0 ? 1 + rnd(big) : 1 + rnd(40)
      const { runs, err } = await allocRuns(o.alloc, h, rnd(2) === 0 ? 0 : o.alloc.goalForInode(ino, true), want)
      if (err !== undefined) throw err
      files.push(await writeFile(deps, h, ino, `f${i}`, runs, bytes))
      o.txm.end(h)
      if (rnd(3) === 0) await o.txm.waitDurable(h.tid)
    }
    // Inodes without data blocks, as new-inode.ts makes them: a fast symlink, a FIFO, a character device.
    const specials = { link: 0, fifo: 0, dev: 0 }
    {
      const h = await o.txm.begin()
      const inoSize = o.alloc.geometry.inodeSize
      const make = async (name: keyof typeof specials, spec: NewInodeSpec, ft: number): Promise<void> => {
        const ino = await o.alloc.allocInode(h, 2, false)
        await table.put(h, ino, newInode(spec, inoSize), true)
        await addRootEntry(deps, h, name, ino, ft)
        specials[name] = ino
      }
      await make('link', { mode: S_IFLNK | 0o777, uid: 0, gid: 0, symlink: Buffer.from(FAST_TARGET) }, FT.SYMLINK)
      await make('fifo', { mode: S_IFIFO | 0o600, uid: 1000, gid: 1000 }, FT.FIFO)
      await make('dev', { mode: S_IFCHR | 0o600, uid: 0, gid: 0, rdev: { major: 300, minor: 70000 } }, FT.CHRDEV)
      o.txm.end(h)
    }
    const used = files.reduce((n, f) => n + f.runs.reduce((m, r) => m + r.count, 0), 0)
    t.equal(o.alloc.groups.freeBlocks, startFree - used, 'descriptors count every allocated block')
    await o.close()
    const r = fsck(file)
    t.equal(r.status, 0, 'e2fsck -fn clean')
    t.notMatch(r.out, /wrong|differences|Fix\?/, r.out)
    t.equal(superCounts(file).freeBlocks, startFree - used, 'superblock free blocks')

    const img = await openImage(t, file)
    for (const f of files) {
      const ino = await img.lookup(f.name)
      t.equal(ino, f.ino, `${f.name}: our reader finds inode ${f.ino}`)
      const inode = await img.readInode(ino)
      t.ok((await img.readFile(ino, inode, 0, inode.size)).equals(f.data), `${f.name}: our reader reads ${f.data.length} bytes back`)
    }

    const why = whyNoLoopMount()
    if (why !== undefined) {
      t.comment(`kernel mount skipped: ${why}`)
      return
    }
    const dir = mountRo(t, file)
    for (const f of files) {
      const got = fs.readFileSync(path.join(dir, f.name))
      t.ok(got.equals(f.data), `${f.name}: the kernel reads ${f.data.length} bytes in ${f.runs.length} extent(s) byte-exact`)
      t.equal(fs.statSync(path.join(dir, f.name)).ino, f.ino, `${f.name}: inode number`)
    }
    t.equal(fs.readlinkSync(path.join(dir, 'link')), FAST_TARGET, 'the kernel reads the fast symlink')
    t.equal(fs.lstatSync(path.join(dir, 'link')).ino, specials.link, 'symlink inode')
    const fifo = fs.lstatSync(path.join(dir, 'fifo'))
    t.ok(fifo.isFIFO() && fifo.uid === 1000 && (fifo.mode & 0o777) === 0o600, 'a FIFO owned by 1000, mode 600')
    const dev = fs.lstatSync(path.join(dir, 'dev'))
    // glibc's makedev: minor's low 8 bits, major's 12 bits above them, minor's high bits from bit 20.
    t.ok(dev.isCharacterDevice(), 'a character device')
    t.equal(dev.rdev, (70000 & 0xff) | ((300 & 0xfff) << 8) | ((70000 & ~0xff) << 12), 'device 300:70000 (new encoding)')
  })
}
