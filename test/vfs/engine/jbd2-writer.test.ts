import t from 'tap'
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { Jbd2Log } from '../../../vfs/engine/jbd2/journal-log.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { blockOf, debugfsWrite, e2fsckClean, e2fsckReplay, imageDiff, makeImage, withDevice } from './jbd2-helpers.ts'
import { scratch, seededBytes, sh, whyNoLoopMount } from './format-helpers.ts'

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed}`)
const noLoop = whyNoLoopMount()
if (noLoop !== undefined) t.comment(`skipping kernel tests: ${noLoop}`)

interface Fixture {
  dir: string
  image: string
  blockSize: number
  dataBlock: number
  itableBlock: number
  /** The inode table block with /f's uid set to 4242 (by debugfs, checksum and all). */
  newItable: Buffer
  newData: Buffer
}

/** An image holding /f (one block), and the two blocks our transactions will change. */
async function fixture(t: Test, blockSize: number): Promise<Fixture> {
  const dir = scratch(t, 'jbd2-w')
  const image = await makeImage(dir, 'a.img', blockSize)
  const src = path.join(dir, 'src')
  fs.writeFileSync(src, Buffer.alloc(blockSize, 0x61))
  debugfsWrite(image, [`write ${src} f`])
  const dataBlock = Number(sh('debugfs', ['-R', 'bmap /f 0', image]).trim())
  const m = /located at block (\d+)/.exec(sh('debugfs', ['-R', 'imap /f', image]))
  const itableBlock = Number(m?.[1])
  const ref = path.join(dir, 'ref.img')
  fs.copyFileSync(image, ref)
  debugfsWrite(ref, ['sif /f uid 4242'])
  const newItable = blockOf(ref, itableBlock, blockSize)
  fs.rmSync(ref)
  return { dir, image, blockSize, dataBlock, itableBlock, newItable, newData: seededBytes(seed)(blockSize) }
}

function copy(f: Fixture, name: string): string {
  const p = path.join(f.dir, name)
  fs.copyFileSync(f.image, p)
  return p
}

for (const blockSize of [4096, 1024]) {
  t.test(`our transactions (-b ${blockSize}) left needing recovery: e2fsck -fy and our recovery replay them alike`, async (t) => {
    const f = await fixture(t, blockSize)
    const older = Buffer.alloc(blockSize, 0x62)
    await withDevice(f.image, async (dev) => {
      const log = await Jbd2Log.open(dev)
      await log.commit(7, [{ block: f.dataBlock, data: older }], [])
      await log.commit(8, [{ block: f.dataBlock, data: f.newData }, { block: f.itableBlock, data: f.newItable }], [])
      // no close: the process "dies" here
    })
    const dump = sh('dumpe2fs', ['-h', f.image])
    t.match(dump, /needs_recovery/)
    t.match(dump, /Journal features:\s+journal_64bit journal_checksum_v3/)
    const logdump = sh('debugfs', ['-R', 'logdump', f.image])
    t.match(logdump, /Found expected sequence 2, type 1 \(descriptor block\) at block 1\n/)
    t.match(logdump, /Found expected sequence 2, type 2 \(commit block\) at block 3\n/)
    t.match(logdump, /Found expected sequence 3, type 1 \(descriptor block\) at block 4\n/)
    t.match(logdump, /Found expected sequence 3, type 2 \(commit block\) at block 7\n/)

    const fy = copy(f, 'fy.img')
    const r = spawnE2fsck(['-fy', fy])
    t.ok(r === 0 || r === 1, `e2fsck -fy exit ${r}`)
    t.same(blockOf(fy, f.dataBlock, blockSize), f.newData)
    t.same(blockOf(fy, f.itableBlock, blockSize), f.newItable)
    t.match(sh('debugfs', ['-R', 'stat /f', fy]), /User:\s+4242/)

    const jo = copy(f, 'jo.img')
    e2fsckReplay(jo)
    const ours = copy(f, 'ours.img')
    const res = await withDevice(ours, (dev) => recover(dev))
    t.same({ transactions: res.transactions, replayed: res.replayed, badBlocks: res.badBlocks }, { transactions: 2, replayed: 3, badBlocks: [] })
    t.same(imageDiff(jo, ours), [], 'our replay gives e2fsck\'s bytes')
    t.equal(e2fsckClean(ours).status, 0, 'e2fsck -fn clean after our replay')
  })
}

t.test('the kernel (loop mount) replays our journal', { skip: noLoop ?? false }, async (t) => {
  const f = await fixture(t, 4096)
  await withDevice(f.image, async (dev) => {
    const log = await Jbd2Log.open(dev)
    await log.commit(1, [{ block: f.dataBlock, data: f.newData }, { block: f.itableBlock, data: f.newItable }], [])
  })
  const mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-jbd2-mnt-'))
  t.teardown(() => {
    fs.rmSync(mnt, { recursive: true, force: true })
  })
  sh('mount', ['-o', 'loop', f.image, mnt])
  let content: Buffer
  let uid: number
  try {
    content = fs.readFileSync(path.join(mnt, 'f'))
    uid = fs.statSync(path.join(mnt, 'f')).uid
  } finally {
    sh('umount', [mnt])
  }
  t.same(content, f.newData, 'the file holds our journaled block')
  t.equal(uid, 4242, 'the inode table block came home')
  t.equal(e2fsckClean(f.image).status, 0, 'e2fsck -fn clean after the kernel')
})

t.test('a clean close leaves no recovery; reopening after a crash needs recovery first', async (t) => {
  const f = await fixture(t, 4096)
  await withDevice(f.image, async (dev) => {
    const log = await Jbd2Log.open(dev)
    await log.commit(1, [{ block: f.dataBlock, data: f.newData }], [])
    await t.rejects(log.commit(3, [], []), { code: 'JBD2_STATE', message: 'JBD2_STATE: commit of tid 3, expected 2' })
    // Checkpoint by hand, as the manager would, then release and close.
    await dev.write(f.dataBlock * 4096, f.newData)
    await dev.flush()
    await log.release(1)
    await log.close()
    await t.rejects(log.commit(2, [], []), { code: 'JBD2_STATE' })
  })
  t.notMatch(sh('dumpe2fs', ['-h', f.image]), /needs_recovery/)
  t.match(sh('dumpe2fs', ['-h', f.image]), /Journal start:\s+0\n/)
  t.equal(e2fsckClean(f.image).status, 0)
  await withDevice(f.image, async (dev) => {
    const log = await Jbd2Log.open(dev)
    await log.commit(1, [{ block: f.dataBlock, data: Buffer.alloc(4096, 9) }], [])
  })
  await withDevice(f.image, async (dev) => {
    await t.rejects(Jbd2Log.open(dev), { code: 'JBD2_NEEDS_RECOVERY' })
    const res = await recover(dev)
    t.equal(res.transactions, 1)
    const log = await Jbd2Log.open(dev)
    await log.close()
  })
  t.same(blockOf(f.image, f.dataBlock, 4096), Buffer.alloc(4096, 9))
  t.equal(e2fsckClean(f.image).status, 0)
})

/** e2fsck exits 1 after fixing (a replay counts), so its status is the answer, not an error. */
function spawnE2fsck(args: string[]): number | null {
  return spawnSync('e2fsck', args, { encoding: 'utf8' }).status
}

t.test('a failed flush aborts the log: later calls refuse, recovery replays only what committed', async (t) => {
  const f = await fixture(t, 4096)
  const mem = MemoryDevice.fromBuffer(fs.readFileSync(f.image))
  let failFlush = false
  const dev: BlockDevice = {
    size: mem.size,
    sectorSize: mem.sectorSize,
    readOnly: false,
    read: (o, l) => mem.read(o, l),
    readInto: (o, b) => mem.readInto(o, b),
    write: (o, d) => mem.write(o, d),
    flush: () => (failFlush ? Promise.reject(new Error('EIO: injected')) : mem.flush()),
    close: () => mem.close(),
  }
  const log = await Jbd2Log.open(dev)
  await log.commit(1, [{ block: f.dataBlock, data: f.newData }], [])
  failFlush = true
  await t.rejects(log.commit(2, [{ block: f.itableBlock, data: f.newItable }], []), { message: 'EIO: injected' })
  failFlush = false
  await t.rejects(log.commit(2, [], []), { code: 'JBD2_STATE', message: /aborted after a failed write/ })
  await t.rejects(log.release(1), { code: 'JBD2_STATE' })
  const res = await recover(dev)
  // The failed commit's blocks were written, its commit block too (writes after a failed flush
  // still land in this device): what matters is that recovery reads a consistent log.
  t.ok(res.transactions >= 1, `${res.transactions} transactions replayed`)
  t.same((await dev.read(f.dataBlock * 4096, 4096)), f.newData)
})
