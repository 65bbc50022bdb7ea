import t from 'tap'
import { Jbd2Log } from '../../../vfs/engine/jbd2/journal-log.ts'
import { openJournal } from '../../../vfs/engine/jbd2/journal-open.ts'
import {
  decodeCommit, decodeDescriptor, decodeRevoke, descriptorCapacity, encodeCommit, encodeDescriptor, encodeRevoke, escapeBlock,
  JBD2_FLAG_ESCAPE, JBD2_FLAG_LAST_TAG, JBD2_FLAG_SAME_UUID, readLogHeader, revokeCapacity, tagCsum, tailCsumOk,
} from '../../../vfs/engine/jbd2/log-blocks.ts'
import type { LogFormat } from '../../../vfs/engine/jbd2/log-blocks.ts'
import { decodeJournalSuperblock, newJournalSuperblock } from '../../../vfs/engine/jbd2/superblock.ts'
import { makeImage, withDevice } from './jbd2-helpers.ts'
import { scratch, seededBytes, sh } from './format-helpers.ts'

const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed}`)

const fmt = (blockSize: number, csum = true, is64 = true): LogFormat => ({ blockSize, csum, is64, seed: 0x12345678 })

t.test('capacities follow the tag, record and tail sizes', async (t) => {
  t.equal(descriptorCapacity(fmt(4096)), 254)
  t.equal(descriptorCapacity(fmt(1024)), 62)
  t.equal(descriptorCapacity(fmt(4096, false)), 339)
  t.equal(descriptorCapacity(fmt(4096, false, false)), 508)
  t.equal(revokeCapacity(fmt(4096)), 509)
  t.equal(revokeCapacity(fmt(1024)), 125)
  t.equal(revokeCapacity(fmt(1024, false, false)), 252)
})

t.test('descriptor round trip: 64-bit block numbers, escaping, flags, checksums', async (t) => {
  const f = fmt(1024)
  const rnd = seededBytes(seed)
  const magic = rnd(1024)
  magic.writeUInt32BE(0xc03b3998, 0)
  const keep = Buffer.from(magic)
  const blocks = [escapeBlock(2 ** 40 + 5, magic), escapeBlock(7, rnd(1024)), escapeBlock(2 ** 32, rnd(1024))]
  t.same(magic, keep, 'escaping copies, never changes the caller\'s block')
  t.equal(blocks[0]?.escaped, true)
  t.equal(blocks[0]?.data.readUInt32BE(0), 0)
  const d = encodeDescriptor(f, 9, blocks)
  t.same(readLogHeader(d), { blockType: 1, sequence: 9 })
  t.ok(tailCsumOk(f, d))
  const tags = decodeDescriptor(f, d)
  t.same(tags.map((x) => [x.block, x.flags]), [
    [2 ** 40 + 5, JBD2_FLAG_ESCAPE],
    [7, JBD2_FLAG_SAME_UUID],
    [2 ** 32, JBD2_FLAG_SAME_UUID | JBD2_FLAG_LAST_TAG],
  ])
  tags.forEach((x, i) => t.equal(x.checksum, tagCsum(f, 9, blocks[i]?.data ?? Buffer.alloc(0)), `tag ${i} checksum`))
  d.writeUInt8(d.readUInt8(500) ^ 1, 500)
  t.notOk(tailCsumOk(f, d), 'a flipped bit fails the tail checksum')
  t.throws(() => encodeDescriptor(f, 1, []), RangeError)
  t.throws(() => encodeDescriptor(f, 1, Array.from({ length: 63 }, () => escapeBlock(1, Buffer.alloc(1024)))), RangeError)
})

t.test('garbage descriptors never yield more tags than the block holds', async (t) => {
  const rnd = seededBytes(seed + 1)
  for (const f of [fmt(1024), fmt(4096), fmt(1024, false, false)]) {
    const zeros = Buffer.alloc(f.blockSize)
    const size = f.csum ? 16 : f.is64 ? 12 : 8
    const end = f.blockSize - (f.csum ? 4 : 0)
    // No SAME_UUID in a zero tag: each is followed by a uuid slot, as count_tags steps.
    t.equal(decodeDescriptor(f, zeros).length, Math.floor((end - 12 - size) / (size + 16)) + 1, 'zero block')
    t.equal(decodeDescriptor(f, Buffer.alloc(f.blockSize, 0xff)).length, 1, 'LAST_TAG on the first tag')
    const limit = Math.floor((end - 12) / size)
    let most = 0
    for (let i = 0; i < 300; i++) most = Math.max(most, decodeDescriptor(f, rnd(f.blockSize)).length)
    t.ok(most <= limit, `random blocks: at most ${most} tags (bound ${limit})`)
  }
  t.throws(() => decodeDescriptor(fmt(1024), Buffer.alloc(100)), RangeError)
})

t.test('revoke round trip and garbage r_count', async (t) => {
  const f = fmt(1024)
  const blocks = [1, 2 ** 33 + 1, 99]
  const r = encodeRevoke(f, 4, blocks)
  t.equal(r.readUInt32BE(12), 16 + 3 * 8, 'r_count counts the header')
  t.ok(tailCsumOk(f, r))
  t.same(decodeRevoke(f, r, 'x'), blocks)
  r.writeUInt32BE(16 + 8 + 5, 12)
  t.same(decodeRevoke(f, r, 'x'), [1], 'a partial record is not read')
  r.writeUInt32BE(3, 12)
  t.same(decodeRevoke(f, r, 'x'), [])
  r.writeUInt32BE(1021, 12)
  t.throws(() => decodeRevoke(f, r, 'log block 5'), { code: 'JBD2_CORRUPT', message: 'JBD2_CORRUPT: log block 5: revoke r_count 1021 beyond the 1020 bytes a revoke block holds' })
  const narrow = fmt(1024, false, false)
  t.same(decodeRevoke(narrow, encodeRevoke(narrow, 1, [5, 6]), 'x'), [5, 6], '4-byte records without 64bit')
  t.throws(() => encodeRevoke(f, 1, Array.from({ length: 126 }, (_, i) => i)), RangeError)
})

t.test('commit blocks carry their time and a checksum of themselves', async (t) => {
  const f = fmt(4096)
  const c = encodeCommit(f, 77, 1_700_000_000, 123_000_000)
  t.same(readLogHeader(c), { blockType: 2, sequence: 77 })
  t.same(decodeCommit(f, c), { sec: 1_700_000_000, nsec: 123_000_000, checksumOk: true })
  c.writeUInt8(1, 4000)
  t.equal(decodeCommit(f, c).checksumOk, false)
  t.equal(decodeCommit(fmt(4096, false), c).checksumOk, true, 'no checksum to fail without csum')
  t.equal(readLogHeader(Buffer.alloc(4096)), undefined)
})

t.test('opening a journal as mke2fs left it turns on what the kernel would', async (t) => {
  const dir = scratch(t, 'jbd2-fresh')
  const image = await makeImage(dir, 'a.img', 4096, false)
  t.match(sh('dumpe2fs', ['-h', image]), /Journal features:\s+\(none\)/)
  await withDevice(image, async (dev) => {
    const log = await Jbd2Log.open(dev)
    const j = await openJournal(dev)
    const want = decodeJournalSuperblock(newJournalSuperblock({ blockSize: 4096, maxlen: j.jsb.maxlen, uuid: j.jsb.uuid }))
    t.same({ ...j.jsb, checksum: 0 }, { ...want, start: 1, sequence: 2, checksum: 0 }, 'the kernel\'s features; s_start at s_first, the next sequence')
    t.match(sh('dumpe2fs', ['-h', image]), /needs_recovery/)
    await log.close()
  })
  const dump = sh('dumpe2fs', ['-h', image])
  t.match(dump, /Journal features:\s+journal_64bit journal_checksum_v3/)
  t.match(dump, /Journal sequence:\s+0x00000002/)
  t.notMatch(dump, /needs_recovery/)
})
