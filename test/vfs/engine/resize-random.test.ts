/*
 * Random grows (seeded; TSNFS_SEED replays a run): an image of a random size and block size, with
 * a few files written by the engine, grown once or twice by random amounts (a few blocks, into the
 * last group, across groups, into reserved GDT blocks), must stay e2fsck -fn clean with every
 * file intact as the engine reads it.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { growFileSystem } from '../../../vfs/engine/resize/grow-fs.ts'
import { prng } from '../../helpers/prng.ts'
import { scratch, seededBytes } from './format-helpers.ts'
import { e2fsck, superblockOf } from './mkfs-helpers.ts'

const MiB = 2 ** 20
const owner = { uid: 0, gid: 0 }
const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
const ROUNDS = 5

t.setTimeout(120_000)

t.test('random grows stay e2fsck-clean and keep every file', async (t) => {
  t.comment(`seed ${seed}`)
  const r = prng(seed)
  const bytes = seededBytes(seed)
  const dir = scratch(t, 'resize-random')
  for (let round = 0; round < ROUNDS; round++) {
    const bs = r() < 0.5 ? 1024 : 4096
    // 1 KiB: 8 MiB groups, 16 per descriptor block; 4 KiB: 128 MiB groups.
    const from = (bs === 1024 ? 16 : 48) * MiB + Math.floor(r() * 64) * 4096
    const file = path.join(dir, `r${round}.img`)
    const dev = await ImageFile.create(file, from)
    await makeFileSystem(dev, { zeroed: true, blockSize: bs })
    await dev.close()
    const files = new Map<string, Buffer>()
    const e = await openEngine(file)
    for (let i = 0; i < 3; i++) {
      const data = bytes(Math.floor(r() * 300 * 1024) + 1)
      const { ref } = await e.create(e.root(), Buffer.from(`f${i}`), { how: 'guarded', attr: {} }, owner)
      await e.write(ref, 0n, data, 'file_sync')
      files.set(`f${i}`, data)
    }
    await e.close()
    let size = from
    const steps = 1 + Math.floor(r() * 2)
    for (let s = 0; s < steps; s++) {
      const kind = r()
      // A few blocks, up to a group, or many groups (past 16 groups of 1 KiB blocks: a reserved GDT block).
      const add = kind < 0.3 ? (1 + Math.floor(r() * 64)) * 4096 : kind < 0.6 ? Math.floor(r() * 8 * MiB) + 4096 : Math.floor(r() * (bs === 1024 ? 160 : 400) * MiB) + 4096
      size += add - (add % 4096)
      fs.truncateSync(file, size)
      const d = await ImageFile.open(file)
      const g = await growFileSystem(d)
      await d.close()
      const what = `round ${round} step ${s}: ${bs}-byte blocks, ${from} bytes grown to ${size}: ${g.oldBlocks} to ${g.newBlocks} blocks, ${g.oldGroups} to ${g.newGroups} groups, ${g.gdtBlocksAdded} GDT blocks added`
      const fsck = e2fsck(file)
      if (fsck.status !== 0) {
        t.comment(fsck.out)
        t.fail(`e2fsck -fn not clean after ${what}`)
        return
      }
      t.pass(what)
      t.equal(superblockOf(file).blocksCountLo, g.newBlocks)
    }
    const e2 = await openEngine(file, { readOnly: true })
    for (const [name, data] of files) {
      const ref = await e2.lookup(e2.root(), Buffer.from(name))
      const got = await e2.read(ref.ref, 0n, data.length)
      t.ok(got.data.equals(data), `round ${round}: ${name} reads back`)
      got.release?.()
    }
    await e2.close()
    fs.rmSync(file)
  }
})
