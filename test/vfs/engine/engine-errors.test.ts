/*
 * The engine under bad conditions: a full image answers ENOSPC and stays fsck-clean; a flipped bit
 * in a directory block is caught by its checksum, answered EIO with the block named in the log,
 * and (errors=remount-ro) turns the export read-only so nothing is built on damage.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { VfsError } from '../../../vfs/errors.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { FileReadAt } from '../../../vfs/engine/reader/read-at.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import { scratch } from './format-helpers.ts'

const owner = { uid: 0, gid: 0 }

async function newImage(file: string, size: number, blockSize: 1024 | 4096): Promise<void> {
  const dev = await ImageFile.create(file, size)
  await makeFileSystem(dev, { zeroed: true, blockSize })
  await dev.close()
}

function e2fsckClean(t: Test, image: string, what: string): void {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(r.status, 0, `e2fsck -fn clean ${what}`)
  if (r.status !== 0) t.comment(r.stdout)
}

t.test('a full image answers ENOSPC, keeps working once space is freed, and stays fsck-clean', async (t) => {
  const image = path.join(scratch(t, 'engine-full'), 'e.img')
  await newImage(image, 16 * 2 ** 20, 1024)
  const e = await openEngine(image)
  const chunk = Buffer.alloc(256 * 1024, 0x5a)
  let files = 0
  let err: unknown
  try {
    for (;;) {
      const { ref } = await e.create(e.root(), Buffer.from(`f${files}`), { how: 'guarded', attr: {} }, owner)
      files++
      for (let off = 0; off < 4 * 2 ** 20; off += chunk.length) await e.write(ref, BigInt(off), chunk, 'file_sync')
    }
  } catch (caught) {
    err = caught
  }
  t.ok(err instanceof VfsError && err.code === 'ENOSPC', `ENOSPC after ${files} files (${(err as Error).message})`)
  const st = await e.fsstat(e.root())
  t.ok(st.availBytes < 64n * 1024n, `almost nothing available: ${st.availBytes} bytes`)
  await e.remove(e.root(), Buffer.from('f0'))
  const { ref } = await e.create(e.root(), Buffer.from('after'), { how: 'guarded', attr: {} }, owner)
  const w = await e.write(ref, 0n, chunk, 'file_sync')
  t.equal(w.count, chunk.length, 'space freed by a remove is usable again')
  await e.close()
  e2fsckClean(t, image, 'after filling the image')
})

t.test('a flipped bit in a directory block: EIO naming the block, then read-only (errors=remount-ro)', async (t) => {
  const image = path.join(scratch(t, 'engine-flip'), 'e.img')
  await newImage(image, 32 * 2 ** 20, 4096)
  let e = await openEngine(image)
  const { ref: d } = await e.mkdir(e.root(), Buffer.from('dir'), {}, owner)
  for (let i = 0; i < 20; i++) await e.create(d, Buffer.from(`name-${i}`), { how: 'guarded', attr: {} }, owner)
  await e.close()

  // Find the directory's first block with the reader, and flip one bit of an entry's name.
  const r = await FileReadAt.open(image)
  const img = await Ext4Image.open(r)
  const ino = await img.lookup('/dir')
  const m = await img.mapBlock(ino, await img.readInode(ino), 0)
  await r.close()
  if (m.extent === undefined) throw new Error('the directory has no first block')
  const block = m.extent.start
  const fd = fs.openSync(image, 'r+')
  const byte = Buffer.alloc(1)
  fs.readSync(fd, byte, 0, 1, block * 4096 + 40)
  byte[0] = (byte[0] ?? 0) ^ 0x10
  fs.writeSync(fd, byte, 0, 1, block * 4096 + 40)
  fs.closeSync(fd)

  const logged: string[] = []
  e = await openEngine(image, { log: (msg) => logged.push(msg) })
  const dir = await e.lookup(e.root(), Buffer.from('dir'))
  await t.rejects(e.lookup(dir.ref, Buffer.from('name-3')), { code: 'EIO' }, 'the damaged block answers EIO')
  t.ok(logged.some((m) => m.includes(String(block)) && m.includes('read-only')), `the log names block ${block}: ${logged.join(' / ')}`)
  t.ok(e.readOnly, 'the export went read-only')
  await t.rejects(e.create(e.root(), Buffer.from('new'), { how: 'guarded', attr: {} }, owner), { code: 'EROFS' }, 'changes are refused')
  t.ok((await e.getattr(e.root())).type === 'dir', 'undamaged parts still read')
  await e.close()
})
