import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { setNeedsRecovery } from '../../../vfs/engine/jbd2/needs-recovery.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { blockOf, debugfsWrite, e2fsckClean, e2fsckReplay, imageDiff, makeImage, withDevice } from './jbd2-helpers.ts'
import { scratch, seededBytes, sh, whyNoLoopMount, withMount } from './format-helpers.ts'

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed}`)

function journalFeatures(image: string): string {
  return /Journal features:\s+(.*)/.exec(sh('dumpe2fs', ['-h', image]))?.[1] ?? ''
}

for (const blockSize of [4096, 1024]) {
  for (const csum of [true, false]) {
    t.test(`debugfs's transactions (-b ${blockSize}, ${csum ? 'csum v3' : 'no csum'}) replayed by us exactly as by e2fsck`, async (t) => {
      const dir = scratch(t, 'jbd2-rec')
      const a = await makeImage(dir, 'a.img', blockSize, csum)
      const fsBlocks = (32 * 1024 * 1024) / blockSize
      const [b1, b2, b3, b4] = [fsBlocks - 40, fsBlocks - 39, fsBlocks - 38, fsBlocks - 37]
      const rnd = seededBytes(seed)
      const two = rnd(2 * blockSize)
      two.writeUInt32BE(0xc03b3998, 0) // must be escaped in the log and restored on replay
      const one = rnd(blockSize)
      fs.writeFileSync(path.join(dir, 'two'), two)
      fs.writeFileSync(path.join(dir, 'one'), one)
      debugfsWrite(a, [
        'jo',
        `jw -b ${b1},${b2} ${path.join(dir, 'two')}`,
        `jw -r ${b2}`,
        `jw -b ${b3} ${path.join(dir, 'one')}`,
        `jw -b ${b4} -c ${path.join(dir, 'one')}`,
        'jc',
      ])
      t.match(journalFeatures(a), csum ? /journal_64bit journal_checksum_v3/ : /journal_64bit/)
      const b = path.join(dir, 'b.img')
      fs.copyFileSync(a, b)
      e2fsckReplay(a)
      const res = await withDevice(b, (dev) => recover(dev))
      t.same(res, { clean: false, transactions: 3, replayed: 2, revokeHits: 1, revokes: 1, badBlocks: [], failedCommit: undefined, nextTid: 5, discarded: 0 })
      t.same(imageDiff(a, b), [], 'same bytes as e2fsck, but for its run stamps')
      t.same(blockOf(b, b1, blockSize), two.subarray(0, blockSize), 'escaped block restored with its magic')
      t.same(blockOf(b, b2, blockSize), Buffer.alloc(blockSize), 'revoked block not replayed')
      t.same(blockOf(b, b3, blockSize), one)
      t.same(blockOf(b, b4, blockSize), Buffer.alloc(blockSize), 'uncommitted transaction dropped')
      t.equal(e2fsckClean(b).status, 0, 'e2fsck -fn clean after our replay')
      t.notMatch(sh('dumpe2fs', ['-h', b]), /needs_recovery/)
      t.match(sh('dumpe2fs', ['-h', b]), /Journal start:\s+0\n/)
      const again = await withDevice(b, (dev) => recover(dev))
      t.equal(again.clean, true, 'a second recovery finds nothing')
    })
  }
}

t.test('a log the file system does not claim (needs_recovery clear) is emptied, not replayed, as the kernel does (e2fsck -y runs it anyway)', async (t) => {
  const dir = scratch(t, 'jbd2-rec-wipe')
  const a = await makeImage(dir, 'a.img', 4096)
  const one = seededBytes(seed)(4096)
  fs.writeFileSync(path.join(dir, 'one'), one)
  const target = 8192 - 40
  debugfsWrite(a, ['jo', `jw -b ${target} ${path.join(dir, 'one')}`, 'jc'])
  await withDevice(a, async (dev) => {
    await setNeedsRecovery(dev, false)
    await dev.flush()
  })
  const b = path.join(dir, 'b.img')
  fs.copyFileSync(a, b)
  if (whyNoLoopMount() === undefined) {
    const k = path.join(dir, 'k.img')
    fs.copyFileSync(a, k)
    await withMount(t, k, () => undefined)
    t.same(blockOf(k, target, 4096), Buffer.alloc(4096), 'the kernel (loop mount) clears it unreplayed')
  }
  const fy = spawnSync('e2fsck', ['-fy', a], { encoding: 'utf8' })
  t.match(fy.stdout, /needs_recovery flag is clear, but journal has data\.\nRun journal anyway\? yes/, 'e2fsck asks, and -y replays')
  const res = await withDevice(b, (dev) => recover(dev))
  t.same({ clean: res.clean, transactions: res.transactions, discarded: res.discarded }, { clean: true, transactions: 0, discarded: 1 })
  t.same(blockOf(b, target, 4096), Buffer.alloc(4096), 'not replayed by us')
  t.same(blockOf(a, target, 4096), one, 'e2fsck -y did replay it: the two judges differ here, we side with the kernel (jbd2_journal_wipe at mount)')
  t.match(sh('dumpe2fs', ['-h', b]), /Journal start:\s+0\n/)
  t.equal(e2fsckClean(b).status, 0)
})
