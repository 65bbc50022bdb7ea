import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { Jbd2Log } from '../../../vfs/engine/jbd2/journal-log.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { blockOf, e2fsckReplay, imageDiff, makeImage, withDevice } from './jbd2-helpers.ts'
import { rng, scratch, seededBytes, sh } from './format-helpers.ts'

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed}`)


t.test('the log wraps many times over transactions with revokes and releases; a crash replays to the last commit', async (t) => {
  const bs = 1024
  const dir = scratch(t, 'jbd2-wrap')
  const image = await makeImage(dir, 'a.img', bs, true, ['-J', 'size=1']) // 1024 log blocks: wraps come quickly
  const fsBlocks = (32 * 1024 * 1024) / bs
  const targets = Array.from({ length: 48 }, (_, i) => fsBlocks - 100 + i)
  const rand = rng(seed)
  const bytes = seededBytes(seed ^ 0x5a5a5a5a)
  /** What each target holds at home, and the last thing done to it through the log. */
  const home = new Map<number, Buffer>(targets.map((b) => [b, Buffer.alloc(bs)]))
  const last = new Map<number, Buffer | 'revoked'>()
  let logged = 0
  let releases = 0
  let capacity = 0
  await withDevice(image, async (dev) => {
    const log = await Jbd2Log.open(dev)
    capacity = log.free
    let tid = 100
    let lastReleased = tid - 1
    while (logged < 3 * capacity) {
      const count = 1 + Math.floor(rand() * 40)
      const chosen = new Set<number>()
      while (chosen.size < count) chosen.add(targets[Math.floor(rand() * targets.length)] ?? 0)
      const revokes: number[] = []
      const blocks: Array<{ block: number; data: Buffer }> = []
      for (const b of chosen) {
        if (rand() < 0.1) revokes.push(b)
        else blocks.push({ block: b, data: bytes(bs) })
      }
      const cost = log.cost(blocks.length, revokes.length)
      if (cost > log.free) {
        // Checkpoint: everything live goes home, then the log space comes back.
        for (const [b, v] of last) {
          if (v === 'revoked') continue
          await dev.write(b * bs, v)
          home.set(b, v)
        }
        await dev.flush()
        await log.release(tid - 1)
        lastReleased = tid - 1
        releases++
        t.equal(log.free, capacity, 'all space back after releasing everything')
      }
      const before = log.free
      await log.commit(tid, blocks, revokes)
      t.equal(before - log.free, cost, `tid ${tid} costs what cost() said`)
      for (const b of blocks) last.set(b.block, b.data)
      for (const r of revokes) last.set(r, 'revoked')
      logged += cost
      tid++
    }
    t.ok(lastReleased < tid - 1, 'some transactions are still in the log at the crash')
  })
  t.ok(logged >= 3 * capacity, `${logged} log blocks written through a log of ${capacity}: it wrapped`)
  t.ok(releases >= 3, `${releases} releases`)
  t.match(sh('debugfs', ['-R', 'logdump', image]), /Found expected sequence \d+, type 2 \(commit block\)/)

  const jo = path.join(dir, 'jo.img')
  fs.copyFileSync(image, jo)
  e2fsckReplay(jo)
  const res = await withDevice(image, (dev) => recover(dev))
  t.ok(res.transactions > 0, `${res.transactions} transactions replayed, ${res.revokeHits} revoke hits`)
  t.same(imageDiff(jo, image), [], 'e2fsck replays the wrapped log to the same bytes')
  for (const b of targets) {
    const v = last.get(b)
    const want = v === undefined || v === 'revoked' ? home.get(b) : v
    if (!blockOf(image, b, bs).equals(want ?? Buffer.alloc(0))) t.fail(`block ${b} after replay`)
  }
  t.pass('every target holds its last logged contents, or its home contents when last revoked')
})
