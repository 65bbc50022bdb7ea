/*
 * An image whose orphan list holds an unlinked inode and a half-truncated one (as a crash leaves
 * them): opening it read-write finishes both, as the kernel does at mount, and e2fsck agrees.
 */
import t from 'tap'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { scratch, sh } from './format-helpers.ts'

const owner = { uid: 0, gid: 0 }

t.test('the orphan list is finished at open: unlinked inodes freed, a truncate completed; e2fsck -fn clean', async (t) => {
  const image = path.join(scratch(t, 'engine-orphans'), 'e.img')
  const dev = await ImageFile.create(image, 64 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true, blockSize: 4096 })
  await dev.close()
  let e = await openEngine(image)
  const made: Record<string, bigint> = {}
  for (const name of ['gone', 'short']) {
    const { ref } = await e.create(e.root(), Buffer.from(name), { how: 'guarded', attr: {} }, owner)
    await e.write(ref, 0n, Buffer.alloc(400 * 1024, 7), 'file_sync')
    made[name] = ref.id
  }
  const before = await e.fsstat(e.root())
  await e.close()

  // What a crash in the middle of an unlink-while-open and of a truncate leaves behind.
  const gone = String(made.gone)
  const short = String(made.short)
  sh('debugfs', ['-w', '-R', 'unlink /gone', image])
  for (const cmd of [`sif <${gone}> links_count 0`, `sif <${gone}> dtime ${short}`, `sif <${short}> size 8192`, `ssv last_orphan ${gone}`]) {
    sh('debugfs', ['-w', '-R', cmd, image])
  }
  const dirty = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.not(dirty.status, 0, 'e2fsck -fn sees the unfinished orphans')

  const told: string[] = []
  e = await openEngine(image, { onRecovery: (m) => told.push(m) })
  t.strictSame(told, ['orphan list: 1 inodes freed, 1 truncated'], 'open reports what it finished')
  const after = await e.fsstat(e.root())
  t.equal(after.freeBytes - before.freeBytes, 400n * 1024n + (400n * 1024n - 8192n), 'the blocks of both came back')
  const { attr } = await e.lookup(e.root(), Buffer.from('short'))
  t.equal(attr.size, 8192n, 'the truncated file keeps its first 8 KiB')
  t.equal(attr.used, 8192n, 'and holds only those blocks')
  await t.rejects(e.getattr({ id: made.gone ?? 0n, gen: 0 }), { code: 'ESTALE' }, 'the unlinked inode is gone')
  await e.close()
  const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(fsck.status, 0, 'e2fsck -fn clean after the cleanup')
  if (fsck.status !== 0) t.comment(fsck.stdout)
})
