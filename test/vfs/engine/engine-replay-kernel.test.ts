/*
 * A server killed mid-work leaves its journal needing recovery. The kernel's jbd2 (a loop mount)
 * and our own recovery must both replay it to the tree every durable reply promised.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { needsRecovery } from '../../../vfs/engine/jbd2/needs-recovery.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { dumpHost, dumpVfs, runWorkload } from './engine-helpers.ts'
import { scratch, whyNoLoopMount, withMount } from './format-helpers.ts'

t.test('kernel: an image left by a killed engine replays to the same tree in the kernel and in our recovery', async (t) => {
  const seed = Number(process.env.ENGINE_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed}`)
  const dir = scratch(t, 'engine-replay')
  const image = path.join(dir, 'e.img')
  const dev = await ImageFile.create(image, 128 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true, blockSize: 1024 })
  await dev.close()

  // Commits only on demand, no checkpoints: every change since the start lives in the journal.
  const engine = await openEngine(image, { commitIntervalMs: 0 })
  const model = new MemoryVfs()
  const log = await runWorkload([model, engine], seed, { ops: 300, names: 8 })
  t.equal(log.filter((l) => l.outcomes[0] !== l.outcomes[1]).length, 0, 'the engine followed the model')
  // Unstable writes are durable only after a COMMIT: one metadata change makes everything durable.
  await engine.mkdir(engine.root(), Buffer.from('last'), {}, { uid: 0, gid: 0 })
  await model.mkdir(model.root(), Buffer.from('last'), {}, { uid: 0, gid: 0 })
  const want = await dumpVfs(model)

  // "Kill": copy the image as it is on disk now, without closing the engine.
  const killed = path.join(dir, 'killed.img')
  const r = spawnSync('cp', ['--sparse=always', image, killed])
  t.equal(r.status, 0, 'copied the image of the running engine')
  const check = await ImageFile.open(killed, { readOnly: true })
  t.ok(await needsRecovery(check), 'the copy needs journal recovery')
  await check.close()
  await engine.close()

  const ours = path.join(dir, 'ours.img')
  fs.copyFileSync(killed, ours)
  const replayed = await openEngine(ours, { readOnly: false })
  t.strictSame(await dumpVfs(replayed), want, 'our recovery reaches the tree of every durable reply')
  await replayed.close()
  const fsck = spawnSync('e2fsck', ['-fn', ours], { encoding: 'utf8' })
  t.equal(fsck.status, 0, 'e2fsck -fn: clean after our recovery')

  const why = whyNoLoopMount()
  if (why !== undefined) {
    t.comment(`kernel replay skipped: ${why}`)
    return
  }
  const seen = await withMount(t, killed, (mnt) => dumpHost(mnt))
  t.strictSame(seen, want, "the kernel's jbd2 replays our journal to the same tree")
  const fsck2 = spawnSync('e2fsck', ['-fn', killed], { encoding: 'utf8' })
  t.equal(fsck2.status, 0, "e2fsck -fn: clean after the kernel's replay")
})
