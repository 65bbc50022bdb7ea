import t from 'tap'
import { execFileSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { crc32c, crc32cUpdate } from '../../../vfs/engine/crc32c.ts'
import { prng as rng } from '../../helpers/prng.ts'
import { CRC32C_CASTAGNOLI, crcReference } from '../../helpers/crc-reference.ts'

/** Bit at a time, straight from the polynomial: the reference the table-driven code must match. */
function reference(crc: number, data: Uint8Array): number {
  return crcReference(CRC32C_CASTAGNOLI, crc, data)
}

t.test('standard vectors (RFC 3720 B.4 and the check value)', async (t) => {
  t.equal(crc32c(Buffer.from('123456789')), 0xe3069283)
  t.equal(crc32c(new Uint8Array(0)), 0)
  t.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa)
  t.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43)
  t.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e)
  t.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c)
})

t.test("ext4's form is the raw update from ~0, the complement of the standard value", async (t) => {
  const data = Buffer.from('123456789')
  t.equal(crc32cUpdate(0xffffffff, data), 0x1cf96d7c)
  t.equal(crc32cUpdate(~0, data), (~crc32c(data)) >>> 0)
  t.equal(crc32cUpdate(0x12345678, new Uint8Array(0)), 0x12345678, 'no data, no change, no inversion')
})

t.test('slice-by-8 matches the bitwise reference, and chaining equals one shot', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? randomInt(2 ** 31))
  t.comment(`seed ${seed} (TSNFS_SEED to reproduce)`)
  const next = rng(seed)
  let cases = 0
  for (let n = 0; n < 300; n++) {
    const len = n < 40 ? n : Math.floor(next() * 5000)
    const data = Buffer.from(Array.from({ length: len }, () => Math.floor(next() * 256)))
    const init = Math.floor(next() * 2 ** 32)
    const whole = crc32cUpdate(init, data)
    if (whole !== reference(init, data)) t.fail(`seed ${seed}: length ${len} differs from the reference`)
    const cut = Math.floor(next() * (len + 1))
    if (crc32cUpdate(crc32cUpdate(init, data.subarray(0, cut)), data.subarray(cut)) !== whole) t.fail(`seed ${seed}: raw chain at ${cut}/${len}`)
    if (crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))) !== crc32c(data)) t.fail(`seed ${seed}: standard chain at ${cut}/${len}`)
    cases++
  }
  t.equal(cases, 300)
  // Unaligned views: the typed array's byteOffset must not matter.
  const base = Buffer.from(Array.from({ length: 100 }, (_, i) => i * 7))
  for (let off = 0; off < 8; off++) t.equal(crc32cUpdate(~0, base.subarray(off, off + 64)), reference(~0, Buffer.from(base.subarray(off, off + 64))))
})

t.test('verifies the checksums of a superblock and group descriptor made by mkfs.ext4 -O metadata_csum', async (t) => {
  const dir = t.testdir()
  const image = join(dir, 'csum.img')
  execFileSync('truncate', ['-s', '8M', image])
  execFileSync('mkfs.ext4', ['-F', '-q', '-b', '4096', '-O', 'metadata_csum,64bit', image])
  const bytes = readFileSync(image)
  const sb = bytes.subarray(1024, 2048)
  t.equal(sb.readUInt16LE(0x38), 0xef53, 'ext4 magic')
  t.equal(sb.readUInt8(0x175), 1, 's_checksum_type is crc32c')
  // Superblock: crc32c_le(~0, the 1020 bytes before s_checksum), stored as is (ext4_superblock_csum).
  const stored = sb.readUInt32LE(0x3fc)
  t.equal(crc32cUpdate(0xffffffff, sb.subarray(0, 0x3fc)), stored)
  const dumped = /^Checksum:\s+0x([0-9a-f]+)$/m.exec(execFileSync('dumpe2fs', ['-h', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))
  t.equal(Number.parseInt(dumped?.[1] ?? '', 16), stored, 'dumpe2fs prints the same checksum')
  // Group descriptor 0: the low 16 bits of crc32c_le(seed, le32 group, descriptor with bg_checksum as zero),
  // seed = crc32c_le(~0, s_uuid) (ext4_group_desc_csum): a real test of chaining from a seed.
  const seed = crc32cUpdate(0xffffffff, sb.subarray(0x68, 0x78))
  const descSize = sb.readUInt16LE(0xfe)
  t.equal(descSize, 64)
  const desc = Buffer.from(bytes.subarray(4096, 4096 + descSize))
  const storedDesc = desc.readUInt16LE(0x1e)
  desc.writeUInt16LE(0, 0x1e)
  const group = Buffer.alloc(4)
  t.equal(crc32cUpdate(crc32cUpdate(seed, group), desc) & 0xffff, storedDesc)
})
