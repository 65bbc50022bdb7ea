import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { validateConfig } from '../../../vfs/volume/config.ts'
import type { VolumeConfig } from '../../../vfs/volume/config.ts'
import { VolumeError } from '../../../vfs/volume/layer.ts'
import type { MemberSuperblock } from '../../../vfs/volume/member-format.ts'
import { decodeMemberSuperblock, encodeMemberSuperblock, HEADER_SIZE, INTENT_LENGTH, INTENT_OFFSET, MAX_CONFIG_BYTES, MEMBER_RESERVED, SUPERBLOCK_OFFSETS, superblockCrc } from '../../../vfs/volume/member-format.ts'
import { readMember, writeMember } from '../../../vfs/volume/member-io.ts'
import { prng as rng } from '../../helpers/prng.ts'
import { crc32Reference } from '../../helpers/crc-reference.ts'

const A = 'aa'.repeat(16)
const B = 'bb'.repeat(16)

function smallConfig(seq = 7): VolumeConfig {
  return validateConfig({
    version: 1,
    name: 'v0',
    id: '00112233445566778899aabbccddeeff',
    seq,
    root: { kind: 'mirror', children: [{ kind: 'disk', member: A }, { kind: 'disk', member: B }] },
    members: [{ uuid: A, size: 4096, state: 'ok' }, { uuid: B, size: 4096, state: 'failed', reason: 'EIO' }],
    snapshots: [],
    flags: { intentBitmap: true, regionSize: 1048576 },
  })
}

function smallSuperblock(seq = 7): MemberSuperblock {
  return { volumeId: '00112233445566778899aabbccddeeff', memberUuid: B, memberIndex: 1, dataOffset: MEMBER_RESERVED, dataSize: 4096, seq, config: smallConfig(seq) }
}

/** Rewrites the CRC field to match the contents, so a test reaches the checks behind it. */
function reseal(copy: Buffer): Buffer {
  const body = copy.subarray(0, Math.min(copy.length, HEADER_SIZE + copy.readUInt32BE(12)))
  copy.writeUInt32BE(superblockCrc(body), 52)
  return copy
}

const JSON_TEXT =
  '{"version":1,"name":"v0","id":"00112233445566778899aabbccddeeff","seq":7,' +
  '"root":{"kind":"mirror","children":[{"kind":"disk","member":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},{"kind":"disk","member":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]},' +
  '"members":[{"uuid":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":4096,"state":"ok"},{"uuid":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":4096,"state":"failed","reason":"EIO"}],' +
  '"snapshots":[],"flags":{"intentBitmap":true,"regionSize":1048576}}'

t.test('the reserved area holds two superblock slots and the intent bitmap, in that order', async (t) => {
  t.strictSame(SUPERBLOCK_OFFSETS, [0, 393216])
  t.equal(INTENT_OFFSET, 786432)
  t.equal(INTENT_OFFSET + INTENT_LENGTH, MEMBER_RESERVED)
  t.ok(HEADER_SIZE + MAX_CONFIG_BYTES <= 393216, 'the largest copy fits its slot')
})

t.test('a small superblock encodes to exact bytes', async (t) => {
  const copy = encodeMemberSuperblock(smallSuperblock())
  t.equal(JSON_TEXT.length, 466)
  t.equal(
    copy.subarray(0, HEADER_SIZE).toString('hex'),
    '54534e4653564f4c' + // "TSNFSVOL"
      '00000001' + // format version
      '000001d2' + // config length 466
      '00112233445566778899aabbccddeeff' + // volume id
      'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' + // member uuid
      '00000001' + // member index
      '68173d73' + // CRC-32
      '0000000000100000' + // data offset 1 MiB
      '0000000000001000' + // data size 4096
      '0000000000000007', // sequence number
  )
  t.equal(copy.subarray(HEADER_SIZE).toString('utf8'), JSON_TEXT)
  t.equal(copy.length, HEADER_SIZE + 466)
  const zeroed = Buffer.from(copy)
  zeroed.writeUInt32BE(0, 52)
  t.equal(crc32Reference(zeroed), 0x68173d73, 'the CRC is CRC-32 over the copy with its own field zero')
  t.strictSame(decodeMemberSuperblock(copy), smallSuperblock())
  t.strictSame(decodeMemberSuperblock(Buffer.concat([copy, Buffer.alloc(100, 0xee)])), smallSuperblock(), 'bytes after the copy are ignored')
})

t.test('bad copies are refused with exact codes', async (t) => {
  const good = encodeMemberSuperblock(smallSuperblock())
  const edit = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good)
    f(b)
    return b
  }
  const cases: [string, Buffer, string, RegExp][] = [
    ['shorter than a header', good.subarray(0, 79), 'VOLUME_NO_SUPERBLOCK', /79 bytes, shorter than a superblock header/],
    ['no magic', edit((b) => b.write('X', 0)), 'VOLUME_NO_SUPERBLOCK', /no TSNFSVOL magic/],
    ['zeros', Buffer.alloc(600), 'VOLUME_NO_SUPERBLOCK', /no TSNFSVOL magic/],
    // Only the header is given: the length is refused before anything is read for it.
    ['length over the cap', edit((b) => b.writeUInt32BE(MAX_CONFIG_BYTES + 1, 12)).subarray(0, HEADER_SIZE), 'VOLUME_NO_SUPERBLOCK', /configuration length 262145 exceeds 262144/],
    ['length 0xffffffff', edit((b) => b.writeUInt32BE(0xffffffff, 12)), 'VOLUME_NO_SUPERBLOCK', /configuration length 4294967295 exceeds/],
    ['truncated', good.subarray(0, 500), 'VOLUME_NO_SUPERBLOCK', /truncated: 500 bytes, the header announces 546/],
    ['one bit flipped in the config', edit((b) => (b[300] = (b[300] ?? 0) ^ 1)), 'VOLUME_NO_SUPERBLOCK', /checksum 68173d73 does not match/],
    ['future version', edit((b) => b.writeUInt32BE(2, 8)), 'VOLUME_NO_SUPERBLOCK', /format version 2 is not supported/],
    ['sequence past 2^53', reseal(edit((b) => b.writeBigUInt64BE(1n << 60n, 72))), 'VOLUME_NO_SUPERBLOCK', /sequence number 1152921504606846976 is beyond 2\^53/],
    ['config not JSON', reseal(edit((b) => b.write('}', HEADER_SIZE))), 'VOLUME_LAYOUT', /configuration is not JSON/],
    ['config invalid', reseal(edit((b) => b.write('"raid66"', HEADER_SIZE + JSON_TEXT.indexOf('"mirror"')))), 'VOLUME_LAYOUT', /root.kind: "raid66" is not disk/],
    ['header seq disagrees', reseal(edit((b) => b.writeBigUInt64BE(8n, 72))), 'VOLUME_LAYOUT', /superblock sequence 8 differs from its configuration's 7/],
    ['header id disagrees', reseal(edit((b) => (b[16] = 0xff))), 'VOLUME_LAYOUT', /superblock volume id ff112233445566778899aabbccddeeff differs/],
    ['index names another member', reseal(edit((b) => b.writeUInt32BE(0, 48))), 'VOLUME_LAYOUT', /member index 0 is not member b{32}/],
    ['index past the list', reseal(edit((b) => b.writeUInt32BE(9, 48))), 'VOLUME_LAYOUT', /member index 9 is not member/],
    ['data size disagrees', reseal(edit((b) => b.writeBigUInt64BE(8192n, 64))), 'VOLUME_LAYOUT', /data size 8192 differs/],
    ['data offset inside the reserved area', reseal(edit((b) => b.writeBigUInt64BE(4096n, 56))), 'VOLUME_LAYOUT', /data offset 4096 is not a sector past/],
  ]
  for (const [name, copy, code, message] of cases) t.throws(() => decodeMemberSuperblock(copy), { code, message }, name)
})

t.test('encoding refuses a superblock that disagrees with its config; the largest valid config fits the cap', async (t) => {
  t.throws(() => encodeMemberSuperblock({ ...smallSuperblock(), memberIndex: 0 }), { code: 'VOLUME_LAYOUT', message: /member index 0 is not member/ })
  const uuids = Array.from({ length: 64 }, (_, i) => i.toString(16).padStart(32, '0'))
  const largest = validateConfig({
    ...smallConfig(),
    name: 'n'.repeat(64),
    root: { kind: 'span', children: uuids.map((member) => ({ kind: 'disk', member })) },
    members: uuids.map((uuid) => ({ uuid, size: Number.MAX_SAFE_INTEGER - 511, state: 'failed', reason: 'x'.repeat(512) })),
    flags: { intentBitmap: false, regionSize: 1073741824 },
  })
  const copy = encodeMemberSuperblock({ ...smallSuperblock(), memberIndex: 5, memberUuid: uuids[5]!, dataSize: Number.MAX_SAFE_INTEGER - 511, config: largest })
  t.ok(copy.length < MAX_CONFIG_BYTES / 4, `64 members with the longest reasons take ${copy.length} bytes`)
  t.strictSame(decodeMemberSuperblock(copy).config, largest)
})

t.test('readMember takes the valid copy with the higher sequence number', async (t) => {
  const dev = new MemoryDevice(2 * MEMBER_RESERVED)
  await writeMember(dev, smallSuperblock(1))
  let read = await readMember(dev)
  t.equal(read.superblock.seq, 1)
  t.equal(read.copy, 0)
  t.strictSame(read.problems, [])

  // A crash after copy 0 took seq 2 and before copy 1 did: copy 0 is newer.
  const seq2 = encodeMemberSuperblock(smallSuperblock(2))
  await dev.write(SUPERBLOCK_OFFSETS[0]!, seq2)
  read = await readMember(dev)
  t.equal(read.superblock.seq, 2)
  t.strictSame(read.problems, ['copy 1: sequence 1 is older'])

  // A torn write of copy 0 (its first sector new, the rest old): copy 1's seq 1 is used.
  await writeMember(dev, smallSuperblock(1))
  await dev.write(SUPERBLOCK_OFFSETS[0]!, encodeMemberSuperblock(smallSuperblock(10)).subarray(0, 512))
  read = await readMember(dev)
  t.equal(read.superblock.seq, 1)
  t.equal(read.copy, 1)
  t.match(read.problems[0], /^copy 0: VOLUME_NO_SUPERBLOCK: checksum/)

  // Copy 1 damaged instead: copy 0 wins.
  await writeMember(dev, smallSuperblock(3))
  await dev.write(SUPERBLOCK_OFFSETS[1]! + 100, Buffer.from('garbage'))
  read = await readMember(dev)
  t.equal(read.superblock.seq, 3)
  t.equal(read.copy, 0)
  t.match(read.problems, [/^copy 1: .*checksum/])
})

t.test('readMember refuses disks without a valid superblock, naming both copies', async (t) => {
  await t.rejects(readMember(new MemoryDevice(2 * MEMBER_RESERVED)), { code: 'VOLUME_NO_SUPERBLOCK', message: /copy 0: .*no TSNFSVOL magic; copy 1: .*no TSNFSVOL magic/ })
  await t.rejects(readMember(new MemoryDevice(MEMBER_RESERVED - 512)), { code: 'VOLUME_NO_SUPERBLOCK', message: /smaller than a member's reserved area/ })
  const faulty = new FaultDevice(new MemoryDevice(2 * MEMBER_RESERVED))
  await writeMember(faulty, smallSuperblock())
  faulty.inject({ kind: 'eio', ops: ['read'] })
  await t.rejects(readMember(faulty), { code: 'VOLUME_NO_SUPERBLOCK', message: /copy 0: EIO.*copy 1: EIO/ })
  // A checksummed copy with a bad config is a writer's bug, not a foreign disk.
  const dev = new MemoryDevice(2 * MEMBER_RESERVED)
  const bad = Buffer.from(encodeMemberSuperblock(smallSuperblock()))
  bad.write('[', HEADER_SIZE)
  reseal(bad)
  for (const at of SUPERBLOCK_OFFSETS) await dev.write(at, bad)
  await t.rejects(readMember(dev), { code: 'VOLUME_LAYOUT', message: /configuration is not JSON/ })
})

t.test('1,000 random corruptions either decode to a valid config or throw VolumeError', async (t) => {
  const seed = Number(process.env.TSNFS_VOLUME_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (TSNFS_VOLUME_FUZZ_SEED to reproduce)`)
  const random = rng(seed)
  const pick = (n: number): number => Math.floor(random() * n)
  const good = encodeMemberSuperblock(smallSuperblock())
  const outcomes = { decoded: 0, refused: new Map<string, number>() }
  for (let i = 0; i < 1000; i++) {
    let copy = Buffer.concat([good, Buffer.alloc(64)])
    const edits = 1 + pick(4)
    // One kind of damage per case, so each reaches its own check rather than all stopping at the magic.
    const kind = pick(5)
    for (let e = 0; e < edits; e++) {
      if (kind === 0) copy[pick(copy.length)] = pick(256) // any byte
      else if (kind === 1) copy[HEADER_SIZE + pick(JSON_TEXT.length)] = '{}[]",:0123456789aeflnrstu -'.charCodeAt(pick(28)) // JSON-ish
      else if (kind === 2) copy.writeUInt32BE(random() < 0.5 ? pick(600) : pick(2 ** 32), 12) // config length
      else if (kind === 3) copy.writeUInt32BE(pick(2 ** 32), 8 + 4 * pick(HEADER_SIZE / 4 - 2)) // a header word past the magic
    }
    if (kind === 4) copy = copy.subarray(0, pick(copy.length)) // truncation
    // Half the cases get a matching checksum, so the decoder's later checks see the damage.
    if (random() < 0.5 && copy.length >= HEADER_SIZE) reseal(copy)
    if (i < 200) {
      // Whatever copy 0 holds, a good copy 1 keeps the member readable.
      const dev = new MemoryDevice(2 * MEMBER_RESERVED)
      await writeMember(dev, smallSuperblock())
      await dev.write(SUPERBLOCK_OFFSETS[0]!, copy)
      const read = await readMember(dev)
      if (read.copy !== 0) t.strictSame(read.superblock, smallSuperblock(), `case ${i}: copy 1 used`)
    }
    try {
      const sb = decodeMemberSuperblock(copy)
      t.strictSame(validateConfig(JSON.parse(JSON.stringify(sb.config))), sb.config, `case ${i} decoded to a valid config`)
      outcomes.decoded++
    } catch (err) {
      if (!(err instanceof VolumeError)) {
        t.fail(`case ${i}: ${String(err)} is not a VolumeError`)
        continue
      }
      outcomes.refused.set(err.code, (outcomes.refused.get(err.code) ?? 0) + 1)
    }
  }
  t.comment(`decoded ${outcomes.decoded}, refused ${JSON.stringify([...outcomes.refused])}`)
  t.ok((outcomes.refused.get('VOLUME_NO_SUPERBLOCK') ?? 0) > 0 && (outcomes.refused.get('VOLUME_LAYOUT') ?? 0) > 0, 'both refusals were reached')
})
