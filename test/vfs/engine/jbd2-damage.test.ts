import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { Jbd2Log } from '../../../vfs/engine/jbd2/journal-log.ts'
import { openJournal } from '../../../vfs/engine/jbd2/journal-open.ts'
import { locateJournal } from '../../../vfs/engine/jbd2/journal-map.ts'
import { logFormat, setTailCsum } from '../../../vfs/engine/jbd2/log-blocks.ts'
import { recover, scanLog } from '../../../vfs/engine/jbd2/recovery.ts'
import type { LogScan } from '../../../vfs/engine/jbd2/recovery.ts'
import { setJournalSuperblockChecksum } from '../../../vfs/engine/jbd2/superblock.ts'
import { blockOf, e2fsckReplay, imageDiff, makeImage, withDevice } from './jbd2-helpers.ts'
import { scratch } from './format-helpers.ts'

const BS = 4096
const FS_BLOCKS = (32 * 1024 * 1024) / BS
const [A, B, C, D, E] = [FS_BLOCKS - 10, FS_BLOCKS - 9, FS_BLOCKS - 8, FS_BLOCKS - 7, FS_BLOCKS - 6]
const fill = (n: number): Buffer => Buffer.alloc(BS, n)

interface Crashed {
  dir: string
  image: string
  scan: LogScan
  /** Journal block -> image byte offset. */
  at: (logBlock: number) => number
}

/**
 * Three transactions by our writer, then a crash: tid 1 writes A; tid 2 writes B and D; tid 3
 * revokes E and writes C. The scan says where each block of the log is.
 */
async function crashed(t: Test): Promise<Crashed> {
  const dir = scratch(t, 'jbd2-dmg')
  const image = await makeImage(dir, 'base.img', BS)
  await withDevice(image, async (dev) => {
    const log = await Jbd2Log.open(dev)
    await log.commit(1, [{ block: A, data: fill(1) }], [])
    await log.commit(2, [{ block: B, data: fill(2) }, { block: D, data: fill(4) }], [])
    await log.commit(3, [{ block: C, data: fill(3) }], [E])
  })
  return withDevice(image, async (dev) => {
    const j = await openJournal(dev)
    const scan = await scanLog(dev, j)
    return { dir, image, scan, at: (b: number) => j.map.phys(b) * BS }
  })
}

/** Edit `len` bytes of an image at `at` in place (a read-modify-write of just those bytes). */
type Edit = (at: number, len: number, fn: (b: Buffer) => void) => void

/** A (sparse) copy of the crashed image with `patch` applied to a few of its bytes. */
function damaged(c: Crashed, name: string, patch: (edit: Edit) => void): string {
  const p = path.join(c.dir, name)
  fs.copyFileSync(c.image, p)
  const fd = fs.openSync(p, 'r+')
  try {
    patch((at, len, fn) => {
      const b = Buffer.alloc(len)
      fs.readSync(fd, b, 0, len, at)
      fn(b)
      fs.writeSync(fd, b, 0, len, at)
    })
  } finally {
    fs.closeSync(fd)
  }
  return p
}

/** Damage one byte. */
function flip(edit: Edit, at: number, mask: number): void {
  edit(at, 1, (b) => b.writeUInt8(b.readUInt8(0) ^ mask, 0))
}

function tx(c: Crashed, i: number): LogScan['transactions'][number] {
  const x = c.scan.transactions[i]
  if (x === undefined) throw new Error(`no transaction ${i}`)
  return x
}

t.test('the undamaged log: three transactions, sequences from 2', async (t) => {
  const c = await crashed(t)
  t.same(c.scan.transactions.map((x) => [x.tid, x.descriptors.length, x.revokeBlocks.length]), [[2, 1, 0], [3, 1, 0], [4, 1, 1]])
  t.equal(c.scan.endTid, 5)
})

t.test('a missing or torn commit block drops its transaction; e2fsck agrees', async (t) => {
  const c = await crashed(t)
  const zeroed = damaged(c, 'zeroed.img', (edit) => { edit(c.at(tx(c, 2).commitAt), BS, (b) => b.fill(0)) })
  const torn = damaged(c, 'torn.img', (edit) => { flip(edit, c.at(tx(c, 2).commitAt) + 0x200, 0xff) })
  const middle = damaged(c, 'middle.img', (edit) => { flip(edit, c.at(tx(c, 1).commitAt) + 0x200, 0xff) })
  const cases: Array<[string, string, object, number[], number[]]> = [
    ['zeroed', zeroed, { transactions: 2, failedCommit: undefined }, [A, B, D], [C]],
    ['torn', torn, { transactions: 2, failedCommit: 4 }, [A, B, D], [C]],
    ['middle', middle, { transactions: 1, failedCommit: 3 }, [A], [B, C, D]],
  ]
  for (const [name, img, want, replayed, dropped] of cases) {
    const jo = path.join(c.dir, `${name}-jo.img`)
    fs.copyFileSync(img, jo)
    e2fsckReplay(jo)
    const res = await withDevice(img, (dev) => recover(dev))
    t.same({ transactions: res.transactions, failedCommit: res.failedCommit }, want, name)
    for (const b of replayed) t.same(blockOf(img, b, BS), fill(b - A + 1), `${name}: block ${b} replayed`)
    for (const b of dropped) t.same(blockOf(img, b, BS), fill(0), `${name}: block ${b} not replayed`)
    for (const b of [A, B, C, D]) t.same(blockOf(img, b, BS), blockOf(jo, b, BS), `${name}: block ${b} as e2fsck left it`)
    if (name === 'zeroed') t.same(imageDiff(jo, img), [], 'zeroed: same bytes as e2fsck')
  }
})

t.test('a logged block failing its tag checksum is skipped, the rest replayed', async (t) => {
  const c = await crashed(t)
  const d = tx(c, 1).descriptors[0]
  if (d === undefined) throw new Error('no descriptor')
  const img = damaged(c, 'bad-data.img', (edit) => { flip(edit, c.at(d.first) + 77, 1) })
  const res = await withDevice(img, (dev) => recover(dev))
  t.same(res.badBlocks, [B])
  t.equal(res.replayed, 3)
  t.same(blockOf(img, B, BS), fill(0))
  t.same(blockOf(img, D, BS), fill(4))
})

t.test('a damaged descriptor: checksum error inside the log, quiet end when its commit is stale', async (t) => {
  const c = await crashed(t)
  const d = tx(c, 1).descriptors[0]
  if (d === undefined) throw new Error('no descriptor')
  const bad = damaged(c, 'bad-desc.img', (edit) => { flip(edit, c.at(d.at) + 1000, 1) })
  const before = fs.readFileSync(bad)
  await t.rejects(withDevice(bad, (dev) => recover(dev)), {
    code: 'JBD2_BAD_CHECKSUM',
    message: `JBD2_BAD_CHECKSUM: transaction 3: a descriptor or revoke block fails its checksum, and its commit block (log block ${tx(c, 1).commitAt}) is not older than the last`,
  })
  t.ok(fs.readFileSync(bad).equals(before), 'nothing written')
  const stale = damaged(c, 'stale.img', (edit) => {
    flip(edit, c.at(d.at) + 1000, 1)
    edit(c.at(tx(c, 1).commitAt) + 0x30, 8, (b) => b.writeBigUInt64BE(0n))
  })
  const jo = path.join(c.dir, 'stale-jo.img')
  fs.copyFileSync(stale, jo)
  e2fsckReplay(jo)
  const res = await withDevice(stale, (dev) => recover(dev))
  t.equal(res.transactions, 1)
  t.same(imageDiff(jo, stale), [], 'e2fsck also ends the log there')
})

t.test('garbage in a committed transaction gives exact error codes before anything is written', async (t) => {
  const c = await crashed(t)
  const fmt = await withDevice(c.image, async (dev) => logFormat((await openJournal(dev)).jsb))
  /** Change a log block and give it a valid tail checksum again, so only the change is wrong. */
  const resealed = (edit: Edit, logBlock: number, fn: (b: Buffer) => void): void => {
    edit(c.at(logBlock), BS, (b) => {
      fn(b)
      setTailCsum(fmt, b)
    })
  }
  const rv = tx(c, 2).revokeBlocks[0] ?? 0
  const revoke = damaged(c, 'revoke.img', (edit) => {
    resealed(edit, rv, (b) => b.writeUInt32BE(5000, 12))
  })
  await t.rejects(withDevice(revoke, (dev) => recover(dev)), {
    code: 'JBD2_CORRUPT',
    message: `JBD2_CORRUPT: transaction 4 log block ${rv}: revoke r_count 5000 beyond the 4092 bytes a revoke block holds`,
  })
  const d0 = tx(c, 0).descriptors[0]?.at ?? 0
  const tag = damaged(c, 'tag.img', (edit) => {
    resealed(edit, d0, (b) => b.writeUInt32BE(0xfffffff0, 12))
  })
  const before = fs.readFileSync(tag)
  await t.rejects(withDevice(tag, (dev) => recover(dev)), {
    code: 'JBD2_CORRUPT',
    message: `JBD2_CORRUPT: transaction 2: descriptor at log block ${d0} sends a block to 4294967280, outside the file system (${FS_BLOCKS} blocks)`,
  })
  t.ok(fs.readFileSync(tag).equals(before), 'nothing written')
})

t.test('a damaged journal superblock or journal inode is refused with its code', async (t) => {
  const c = await crashed(t)
  const jsbAt = c.at(0)
  const magic = damaged(c, 'magic.img', (edit) => { edit(jsbAt, 4, (b) => b.writeUInt32BE(0xdeadbeef)) })
  await t.rejects(withDevice(magic, (dev) => recover(dev)), { code: 'JBD2_BAD_MAGIC' })
  const start = damaged(c, 'start.img', (edit) => {
    edit(jsbAt, BS, (b) => {
      b.writeUInt32BE(999999, 0x1c)
      setJournalSuperblockChecksum(b)
    })
  })
  await t.rejects(withDevice(start, (dev) => recover(dev)), { code: 'JBD2_BAD_SUPERBLOCK', message: /s_start 999999 outside \[1, \d+\)/ })
  const unsum = damaged(c, 'unsum.img', (edit) => { edit(jsbAt + 0x300, 1, (b) => b.writeUInt8(1)) })
  await t.rejects(withDevice(unsum, (dev) => recover(dev)), { code: 'JBD2_BAD_CHECKSUM' })
  // The journal inode (8): find its bytes through the map's own reading of the group descriptor.
  const inodeAt = await withDevice(c.image, async (dev) => {
    await locateJournal(dev)
    const raw = await dev.read(BS + 8, 4) // bg_inode_table_lo of group 0 (64-bit descriptors, block 1)
    return raw.readUInt32LE(0) * BS + 7 * 256
  })
  const flags = damaged(c, 'flags.img', (edit) => { edit(inodeAt + 0x20, 4, (b) => b.writeUInt32LE(0)) })
  await t.rejects(withDevice(flags, (dev) => recover(dev)), { code: 'JBD2_BAD_JOURNAL_INODE', message: 'JBD2_BAD_JOURNAL_INODE: journal inode 8 is not extent-mapped' })
  const size = damaged(c, 'size.img', (edit) => { edit(inodeAt + 0x4, 4, (b) => b.writeUInt32LE(BS * 100 + 1)) })
  await t.rejects(withDevice(size, (dev) => recover(dev)), { code: 'JBD2_BAD_JOURNAL_INODE', message: /size 409601 not a multiple/ })
  const small = damaged(c, 'small.img', (edit) => { edit(inodeAt + 0x4, 4, (b) => b.writeUInt32LE(BS * 100)) })
  await t.rejects(withDevice(small, (dev) => recover(dev)), { code: 'JBD2_BAD_JOURNAL_INODE', message: /100 blocks/ })
})

t.test('a transaction larger than the log, or than its free space, is JBD2_NO_SPACE', async (t) => {
  const dir = scratch(t, 'jbd2-nospace')
  const image = await makeImage(dir, 'a.img', 1024, true, ['-J', 'size=1'])
  await withDevice(image, async (dev) => {
    const log = await Jbd2Log.open(dev)
    t.equal(log.free, 1022)
    t.equal(log.cost(62, 0), 64, 'one descriptor holds 62 tags of a 1 KiB csum v3 journal')
    t.equal(log.cost(63, 1), 67)
    t.equal(log.cost(0, 125), 2, 'one revoke block holds 125 64-bit records')
    t.equal(log.cost(0, 126), 3)
    const big = Array.from({ length: 1010 }, (_, i) => ({ block: 20000 + i, data: Buffer.alloc(1024) }))
    await t.rejects(log.commit(1, big, []), { code: 'JBD2_NO_SPACE', message: 'JBD2_NO_SPACE: transaction of 1028 log blocks, the log holds 1022' })
    await log.commit(1, big.slice(0, 600), [])
    await t.rejects(log.commit(2, big.slice(0, 600), []), { code: 'JBD2_NO_SPACE', message: /611 log blocks, 411 free: release/ })
    await log.release(1)
    await log.commit(2, big.slice(0, 600), [])
    t.equal(log.free, 1022 - 611)
  })
})
