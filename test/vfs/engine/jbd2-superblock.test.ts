import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { mkfs, scratch, sh, whyNoLoopMount, withMount } from './format-helpers.ts'
import {
  JBD2_FEATURE_INCOMPAT_64BIT,
  JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT,
  JBD2_FEATURE_INCOMPAT_CSUM_V3,
  JBD2_CRC32C_CHKSUM,
  decodeJournalSuperblock,
  encodeJournalSuperblock,
  journalSuperblockCsum,
  newJournalSuperblock,
  setJournalSuperblockChecksum,
  validateJournalSuperblock,
} from '../../../vfs/engine/jbd2/superblock.ts'

/** The first block of the journal inode, as debugfs dumps it. */
function journalHead(dir: string, image: string, blockSize: number): Buffer {
  const out = path.join(dir, 'journal.bin')
  sh('debugfs', ['-R', `dump <8> ${out}`, image])
  const all = fs.readFileSync(out)
  fs.rmSync(out)
  return all.subarray(0, blockSize)
}

function fsUuid(image: string): Buffer {
  const m = /Filesystem UUID:\s+([0-9a-f-]+)/.exec(sh('dumpe2fs', ['-h', image]))
  if (m?.[1] === undefined) throw new Error('no uuid in dumpe2fs output')
  return Buffer.from(m[1].replaceAll('-', ''), 'hex')
}

for (const blockSize of [4096, 1024]) {
  t.test(`mke2fs's empty journal (-b ${blockSize}) decodes, re-encodes byte for byte, and validates`, async (t) => {
    const dir = scratch(t, 'jbd2-sb')
    const image = path.join(dir, 'a.img')
    mkfs(image, 64 * 1024 * 1024, ['-b', String(blockSize)])
    const raw = journalHead(dir, image, blockSize)
    const sb = decodeJournalSuperblock(raw)
    t.equal(sb.blockType, 4)
    t.equal(sb.blockSize, blockSize)
    t.equal(sb.first, 1)
    t.equal(sb.sequence, 1)
    t.equal(sb.start, 0)
    t.equal(sb.nrUsers, 1)
    t.equal(sb.featureIncompat, 0, 'mke2fs leaves the features to the first mount')
    t.same(sb.uuid, fsUuid(image))
    t.same(encodeJournalSuperblock(sb), raw.subarray(0, 1024))
    validateJournalSuperblock(sb, raw, blockSize, sb.maxlen)
    t.pass('validates')

    // Ours: the same bytes once the kernel's first-mount features are added and the checksum set.
    const ours = newJournalSuperblock({ blockSize, maxlen: sb.maxlen, uuid: sb.uuid })
    const expect = Buffer.from(raw)
    expect.writeUInt32BE(JBD2_FEATURE_INCOMPAT_64BIT | JBD2_FEATURE_INCOMPAT_CSUM_V3, 0x28)
    expect.writeUInt8(JBD2_CRC32C_CHKSUM, 0x50)
    setJournalSuperblockChecksum(expect)
    t.same(ours, expect)
    const dec = decodeJournalSuperblock(ours)
    validateJournalSuperblock(dec, ours, blockSize, dec.maxlen)
    t.equal(dec.checksum, journalSuperblockCsum(ours))
  })
}

const noLoop = whyNoLoopMount()
if (noLoop !== undefined) t.comment(`skipping: ${noLoop}`)

t.test('the kernel (loop mount) journal: checksum matches ours, and ours differs only in sequence and head', { skip: noLoop ?? false }, async (t) => {
  const dir = scratch(t, 'jbd2-sb-kernel')
  const image = path.join(dir, 'a.img')
  mkfs(image, 64 * 1024 * 1024, ['-b', '4096'])
  await withMount(t, image, (mnt) => {
    fs.writeFileSync(path.join(mnt, 'f'), 'x')
  })
  const raw = journalHead(dir, image, 4096)
  const sb = decodeJournalSuperblock(raw)
  t.equal(sb.featureIncompat, JBD2_FEATURE_INCOMPAT_64BIT | JBD2_FEATURE_INCOMPAT_CSUM_V3)
  t.equal(sb.checksumType, JBD2_CRC32C_CHKSUM)
  t.equal(journalSuperblockCsum(raw), sb.checksum, 'our crc32c of the kernel superblock is the kernel checksum')
  validateJournalSuperblock(sb, raw, 4096, sb.maxlen)
  const ours = decodeJournalSuperblock(newJournalSuperblock({ blockSize: 4096, maxlen: sb.maxlen, uuid: sb.uuid }))
  t.same({ ...ours, sequence: sb.sequence, head: sb.head, checksum: sb.checksum }, sb)
})

t.test('bad superblocks give exact errors', async (t) => {
  const uuid = Buffer.alloc(16, 7)
  const good = newJournalSuperblock({ blockSize: 4096, maxlen: 1024, uuid })
  const check = (mut: (b: Buffer) => void, code: string, message: RegExp, blocks = 1024): void => {
    const b = Buffer.from(good)
    mut(b)
    t.throws(() => {
      validateJournalSuperblock(decodeJournalSuperblock(b), b, 4096, blocks)
    }, { code, message })
  }
  check((b) => b.writeUInt32BE(0x12345678, 0), 'JBD2_BAD_MAGIC', /^JBD2_BAD_MAGIC: journal superblock magic 0x12345678, expected 0xc03b3998$/)
  check((b) => b.writeUInt32BE(7, 4), 'JBD2_BAD_SUPERBLOCK', /block type 7, expected 3 or 4/)
  check((b) => { b.writeUInt32BE(1024, 0xc); setJournalSuperblockChecksum(b) }, 'JBD2_BAD_SUPERBLOCK', /s_blocksize 1024, the file system's is 4096/)
  check(() => undefined, 'JBD2_BAD_SUPERBLOCK', /s_maxlen 1024 beyond the 1000 blocks of the journal inode/, 1000)
  check((b) => { b.writeUInt32BE(0, 0x14); setJournalSuperblockChecksum(b) }, 'JBD2_BAD_SUPERBLOCK', /s_first 0 outside \[1, 1024\)/)
  check((b) => { b.writeUInt32BE(5000, 0x1c); setJournalSuperblockChecksum(b) }, 'JBD2_BAD_SUPERBLOCK', /s_start 5000 outside \[1, 1024\)/)
  check((b) => { b.writeUInt32BE(49, 0x40); setJournalSuperblockChecksum(b) }, 'JBD2_BAD_SUPERBLOCK', /s_nr_users 49 above 48/)
  check((b) => { b.writeUInt32BE(JBD2_FEATURE_INCOMPAT_CSUM_V3 | JBD2_FEATURE_INCOMPAT_ASYNC_COMMIT, 0x28); setJournalSuperblockChecksum(b) }, 'JBD2_UNSUPPORTED_FEATURE', /journal feature journal_async_commit$/)
  check((b) => { b.writeUInt32BE(1, 0x24); setJournalSuperblockChecksum(b) }, 'JBD2_UNSUPPORTED_FEATURE', /journal_checksum \(v1/)
  check((b) => { b.writeUInt8(1, 0x50); setJournalSuperblockChecksum(b) }, 'JBD2_UNSUPPORTED_FEATURE', /checksum type 1/)
  check((b) => { b[0x200] = 1 }, 'JBD2_BAD_CHECKSUM', /journal superblock checksum 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}/)
  t.throws(() => decodeJournalSuperblock(Buffer.alloc(100)), { code: 'JBD2_BAD_SUPERBLOCK' })
  t.throws(() => newJournalSuperblock({ blockSize: 4096, maxlen: 100, uuid }), { code: 'JBD2_BAD_SUPERBLOCK', message: /journal of 100 blocks/ })
  t.throws(() => newJournalSuperblock({ blockSize: 3000, maxlen: 1024, uuid }), { code: 'JBD2_BAD_SUPERBLOCK' })
  t.throws(() => newJournalSuperblock({ blockSize: 4096, maxlen: 1024, uuid: Buffer.alloc(3) }), { code: 'JBD2_BAD_SUPERBLOCK' })
})
