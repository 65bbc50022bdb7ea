/*
 * A new inode whose table block is not in memory and holds no other inode in use starts that
 * block from zeros instead of reading it (as ext4's __ext4_get_inode_loc): creates in a fresh
 * table read no table block, so no create holds the engine's lock across a device read for one.
 * A block that still holds a live inode is read as before, and that inode survives.
 */
import t from 'tap'
import type { Test } from 'tap'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { e2fsck } from './fsck-helpers.ts'
import { scratch } from './format-helpers.ts'

const owner = { uid: 0, gid: 0 }
const unchecked = { how: 'unchecked' as const, attr: {} }

/** Counts the device reads (every buffer-cache miss is one). */
class ReadCounter extends PassThroughDevice {
  reads = 0
  override read(offset: number, length: number): Promise<Buffer> {
    this.reads++
    return this.inner.read(offset, length)
  }

  override readInto(offset: number, target: Uint8Array): Promise<void> {
    this.reads++
    return this.inner.readInto(offset, target)
  }
}

async function image(t: Test): Promise<string> {
  const file = path.join(scratch(t, 'inode-fresh'), 'e.img')
  const dev = await ImageFile.create(file, 64 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  return file
}

t.test('creating 200 files (16 in flight) in a fresh inode table reads nothing from the device', async (t) => {
  const file = await image(t)
  const dev = new ReadCounter(await ImageFile.open(file))
  const e = await openEngineOn(dev, { commitIntervalMs: 0 })
  try {
    const { ref: d } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
    // The first create loads the bitmaps and descriptors it needs; count from after it.
    await e.create(d, Buffer.from('warm'), unchecked, owner)
    const before = dev.reads
    let next = 0
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < 200) await e.create(d, Buffer.from(`f${next++}`), unchecked, owner)
    }))
    // Before: one read per new table block, 200 / 16 inodes per 4 KiB block = 12 or 13.
    t.equal(dev.reads - before, 0, 'no device read during the creates')
  } finally {
    await e.close()
  }
  const fsck = e2fsck(file)
  t.equal(fsck.code, 0, `e2fsck -fn clean\n${fsck.out}`)
})

t.test('a table block that still holds a live inode is read, not zeroed: the live inodes survive new creates beside them, e2fsck agrees', async (t) => {
  const file = await image(t)
  let e = await openEngineOn(new ReadCounter(await ImageFile.open(file)), { commitIntervalMs: 0 })
  const { ref: d } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  const made = []
  for (let i = 0; i < 48; i++) made.push((await e.create(d, Buffer.from(`f${i}`), unchecked, owner)).ref)
  const ids = made.map((r) => Number(r.id))
  // Keep one file per table block of 16 inodes (the highest inode of its block), remove the rest.
  const keep = new Map<number, number>()
  for (const [i, id] of ids.entries()) keep.set(Math.floor((id - 1) / 16), i)
  const kept = [...keep.values()]
  t.ok(kept.length >= 3, `the 48 files span ${kept.length} table blocks`)
  const data = Buffer.from('still here\n')
  for (const i of kept) await e.write(made[i] as (typeof made)[number], 0n, data, 'file_sync')
  for (let i = 0; i < 48; i++) if (!kept.includes(i)) await e.remove(d, Buffer.from(`f${i}`))
  // The last block emptied entirely: its live file goes too.
  const gone = kept.pop() as number
  await e.remove(d, Buffer.from(`f${gone}`))
  await e.close()

  // A cold cache: the new files take the freed slots (lowest free first) in blocks not in memory.
  const dev = new ReadCounter(await ImageFile.open(file))
  e = await openEngineOn(dev, { commitIntervalMs: 0 })
  try {
    const { ref: d2 } = await e.lookup(e.root(), Buffer.from('d'))
    for (let i = 0; i < 48; i++) await e.create(d2, Buffer.from(`g${i}`), unchecked, owner)
    for (const i of kept) {
      const ref = made[i] as (typeof made)[number]
      const got = await e.read(ref, 0n, 100)
      t.equal(got.data.toString(), data.toString(), `f${i} (inode ${ref.id}) kept its data`)
      t.equal((await e.getattr(ref)).nlink, 1, `f${i} still has its link`)
    }
    const listed = await e.readdir(d2, 0n, 1000)
    t.equal(listed.entries.length, 2 + kept.length + 48, 'the directory lists . .. the kept files and the 48 new ones')
  } finally {
    await e.close()
  }
  const fsck = e2fsck(file)
  t.equal(fsck.code, 0, `e2fsck -fn clean\n${fsck.out}`)
})
