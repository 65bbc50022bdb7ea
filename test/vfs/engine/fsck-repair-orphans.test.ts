/*
 * fsck --repair on an orphan list (what a crash in the middle of an
 * unlink-while-open and of a truncate leaves): the unlinked inode is freed
 * with its blocks, the truncated one cut to its i_size, the list cleared, as
 * the engine does at open and e2fsck -fy before pass 1. The image is made by
 * our mkfs and engine; debugfs leaves the orphans. A chain the engine cannot
 * follow is left, said, with nothing written.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { scratch, sh } from './format-helpers.ts'
import { debugfs, e2fsck, fsckImage } from './fsck-helpers.ts'
import { codes, dumpImage, repairFile, tell } from './fsck-repair-helpers.ts'

const owner = { uid: 0, gid: 0 }
const dir = scratch(t, 'fsck-repair-orphans')
const base = path.join(dir, 'base.img')
const dev = await ImageFile.create(base, 32 * 2 ** 20)
await makeFileSystem(dev, { zeroed: true, blockSize: 4096 })
await dev.close()
const made: Record<string, string> = {}
{
  const e = await openEngine(base)
  for (const name of ['gone', 'short', 'keep']) {
    const { ref } = await e.create(e.root(), Buffer.from(name), { how: 'guarded', attr: {} }, owner)
    await e.write(ref, 0n, Buffer.alloc(400 * 1024, name.length), 'file_sync')
    made[name] = String(ref.id)
  }
  await e.close()
}
const gone = made.gone ?? ''
const short = made.short ?? ''

/** A copy of base whose orphan list holds 'gone' (unlinked) then 'short' (size cut to 8 KiB, blocks kept). */
function withOrphans(name: string): string {
  const image = path.join(dir, name)
  sh('cp', ['--sparse=always', base, image])
  debugfs(image, 'unlink /gone')
  for (const cmd of [`sif <${gone}> links_count 0`, `sif <${gone}> dtime ${short}`, `sif <${short}> size 8192`, `ssv last_orphan ${gone}`]) debugfs(image, cmd)
  return image
}

t.test('the orphan list is finished: exit 1, e2fsck -fn clean, the other files untouched', async (t) => {
  const image = withOrphans('orphans.img')
  t.not(e2fsck(image).code, 0, 'e2fsck -fn sees the unfinished orphans')
  const keep = (await dumpImage(image))['/keep']
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 1)
  t.strictSame(codes(r, 'fixed'), ['ORPHANS_RELEASED'])
  t.equal(r.repairs[0]?.message, `orphan list from inode ${gone}: 1 inode freed, 1 truncated to i_size; list cleared`)
  const e2 = e2fsck(image)
  t.equal(e2.code, 0, `e2fsck -fn clean${e2.code === 0 ? '' : `\n${e2.out}`}`)
  t.equal((await fsckImage(image)).clean, true, 'our check clean')
  const after = await dumpImage(image)
  t.strictSame(Object.keys(after).sort(), ['/keep', '/short'])
  t.equal(after['/short']?.size, 8192, 'the truncated file keeps its i_size')
  t.strictSame(after['/keep'], keep, 'the file not involved reads as before')
  fs.rmSync(image)
})

t.test('a chain that loops is left: exit 4, nothing written', async (t) => {
  const image = withOrphans('loop.img')
  debugfs(image, `sif <${short}> dtime ${gone}`)
  const bytes = fs.readFileSync(image)
  const r = await repairFile(image)
  tell(t, r)
  t.equal(r.exitCode, 4)
  t.strictSame(codes(r, 'fixed'), [])
  t.match(r.repairs.find((x) => x.code === 'ORPHANS_LEFT')?.message, new RegExp(`^orphan list from inode ${gone} not released, nothing written: .*twice \\(a loop\\)`))
  t.ok(r.after.problems.some((p) => p.code === 'ORPHAN_LOOP'), 'the check says ORPHAN_LOOP')
  t.ok(fs.readFileSync(image).equals(bytes), 'the image is byte-identical')
  fs.rmSync(image)
})
