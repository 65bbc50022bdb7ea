/*
 * EngineVfs.freeze / thaw (ext4_freeze): a copy of the device taken while frozen, with writers
 * running on, is a clean file system (e2fsck -fn, opened read-only without replay) holding every
 * change answered before freeze resolved; changes wait while frozen and go on after thaw.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { needsRecovery } from '../../../vfs/engine/jbd2/needs-recovery.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { VfsError } from '../../../vfs/errors.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { rng } from './engine-helpers.ts'
import { scratch } from './format-helpers.ts'

const owner = { uid: 0, gid: 0 }
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function e2fsck(image: string): { code: number | null; out: string } {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  return { code: r.status, out: `${r.stdout}${r.stderr}` }
}

const content = (w: number, i: number, len: number): Buffer => Buffer.alloc(len, (w * 31 + i * 7 + 1) & 0xff)

t.test('a copy taken while frozen under 8 writers is clean and holds every answered change; thaw lets them on', async (t) => {
  const seed = Number(process.env.FREEZE_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const dir = scratch(t, 'engine-freeze')
  const image = path.join(dir, 'live.img')
  const dev = await ImageFile.create(image, 64 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  const e = await openEngine(image)
  t.teardown(() => e.close().catch(() => undefined))

  // Each writer makes files w-i, writing them stable or unstable by turns, and notes each one answered.
  const answered = new Map<string, Buffer>()
  let stop = false
  let frozenAt = -1
  let doneWhileFrozen = 0
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      const name = `w${w}-${i}`
      const { ref } = await e.create(e.root(), Buffer.from(name), { how: 'guarded', attr: {} }, owner)
      const data = content(w, i, 1 + Math.floor(r() * 20000))
      await e.write(ref, 0n, data, i % 2 === 0 ? 'unstable' : 'file_sync')
      if (e.frozen && frozenAt >= 0) doneWhileFrozen++
      answered.set(name, data)
      await delay(Math.floor(r() * 3))
    }
  }
  const writers = Array.from({ length: 8 }, (_, w) => writer(w))
  await delay(400)
  await e.freeze()
  const before = new Map(answered)
  frozenAt = before.size
  const copy = path.join(dir, 'copy.img')
  copyFileSync(image, copy)
  await delay(100)
  t.equal(answered.size, before.size, 'no change is answered while frozen')
  t.equal(doneWhileFrozen, 0, 'no writer finished an operation while frozen')
  const root = await e.getattr(e.root())
  t.equal(root.type, 'dir', 'reads go on while frozen')
  await e.thaw()
  await delay(100)
  stop = true
  await Promise.all(writers)
  t.ok(answered.size > before.size, `writers went on after thaw (${before.size} answered before, ${answered.size} after)`)

  const fsck = e2fsck(copy)
  t.equal(fsck.code, 0, `e2fsck -fn of the frozen copy is clean\n${fsck.out}`)
  const copyDev = await ImageFile.open(copy, { readOnly: true })
  t.equal(await needsRecovery(copyDev), false, 'the copy needs no journal recovery')
  await copyDev.close()
  const snap = await openEngine(copy, { readOnly: true })
  let missing = 0
  let wrong = 0
  for (const [name, data] of before) {
    const found = await snap.lookup(snap.root(), Buffer.from(name)).catch(() => undefined)
    if (found === undefined) {
      missing++
      continue
    }
    const got = await snap.read(found.ref, 0n, data.length + 1)
    if (!got.data.equals(data)) wrong++
  }
  await snap.close()
  t.equal(missing, 0, `every one of the ${before.size} answered files is in the copy`)
  t.equal(wrong, 0, 'each with the bytes answered (unstable writes included)')

  await e.close()
  const live = e2fsck(image)
  t.equal(live.code, 0, `the live image is clean after thaw and close\n${live.out}`)
})

t.test('freeze twice is EBUSY, thaw unfrozen is EINVAL; a read-only engine freezes and thaws', async (t) => {
  const dir = scratch(t, 'engine-freeze-2')
  const image = path.join(dir, 'a.img')
  const dev = await ImageFile.create(image, 16 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  const e = await openEngine(image)
  await e.freeze()
  await t.rejects(e.freeze(), new VfsError('EBUSY'), 'a second freeze')
  const dev2 = await ImageFile.open(path.join(dir, 'a.img'), { readOnly: true }).catch(() => undefined)
  if (dev2 !== undefined) {
    t.equal(await needsRecovery(dev2), false, 'needs_recovery is clear while frozen')
    await dev2.close()
  }
  // A change issued while frozen completes after thaw.
  let made: FileRef | undefined
  const pending = e.create(e.root(), Buffer.from('late'), { how: 'guarded', attr: {} }, owner).then((c) => (made = c.ref))
  await delay(50)
  t.equal(made, undefined, 'the create waits while frozen')
  await e.thaw()
  await pending
  t.not(made, undefined, 'and completes after thaw')
  await t.rejects(e.thaw(), new VfsError('EINVAL'), 'thaw when not frozen')
  const d3 = await ImageFile.open(image, { readOnly: true })
  t.equal(await needsRecovery(d3), true, 'needs_recovery is set again after thaw')
  await d3.close()
  await e.close()

  // Closed while frozen: a change waiting goes on and close commits it.
  const e2 = await openEngine(image)
  await e2.freeze()
  const waiting = e2.create(e2.root(), Buffer.from('at-close'), { how: 'guarded', attr: {} }, owner)
  await delay(20)
  await e2.close()
  await waiting
  const check = await openEngine(image, { readOnly: true })
  t.equal((await check.lookup(check.root(), Buffer.from('at-close'))).attr.type, 'file', 'a change waiting at close is made')
  await check.close()

  const ro = await openEngine(image, { readOnly: true })
  await ro.freeze()
  await ro.thaw()
  t.equal((await ro.getattr(ro.root())).type, 'dir', 'a read-only engine freezes and thaws')
  await ro.close()
})
