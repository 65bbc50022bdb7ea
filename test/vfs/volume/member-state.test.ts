import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { assembleVolume } from '../../../vfs/volume/assemble.ts'
import { createVolume } from '../../../vfs/volume/create-volume.ts'
import { INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED } from '../../../vfs/volume/member-format.ts'
import { readMember } from '../../../vfs/volume/member-io.ts'
import { replaceMember, setMemberState } from '../../../vfs/volume/member-state.ts'
import { DATA, DISK_SIZE, label, labelAll, memoryDisks, seededRandom } from './assemble-helpers.ts'
import { describeTree, testFactory } from './recording-factory.ts'

t.test('a member marked failed, then back in service, its reason dropped', async (t) => {
  const disks = memoryDisks('s', 3)
  const vol = await createVolume('states', 'raid5', disks, { random: seededRandom('states') })
  await labelAll(disks)
  const u1 = vol.disks[1]!.uuid
  const r = await setMemberState(vol, u1, 'failed', 'EIO: write at 8192')
  t.equal(r.config.seq, 2)
  t.strictSame(r.written.toSorted(), ['s0', 's2'])
  t.strictSame(vol.config.members[1], { uuid: u1, size: DATA, state: 'failed', reason: 'EIO: write at 8192' })
  const degraded = await assembleVolume([disks[0]!, disks[2]!], testFactory())
  t.equal(await describeTree(degraded.device), `raid5/65536(s0@1048576+${DATA}, missing(${DATA}), s2@1048576+${DATA})`)
  await setMemberState(vol, u1, 'ok')
  t.strictSame(vol.config.members[1], { uuid: u1, size: DATA, state: 'ok' })
  t.equal((await readMember(disks[1]!.dev)).superblock.seq, 3, 'back in service, it takes the configuration again')
  await t.rejects(setMemberState(vol, 'ee'.repeat(16), 'failed'), { code: 'VOLUME_MEMBER', message: `VOLUME_MEMBER: volume states has no member ${'ee'.repeat(16)}` })
})

t.test('a new disk replaces a failed member: rebuilding until marked ok; the old disk is then stale', async (t) => {
  const disks = memoryDisks('r', 2)
  const vol = await createVolume('repl', 'mirror', disks, { random: seededRandom('repl') })
  await labelAll(disks)
  const old = vol.disks[1]!.uuid
  await setMemberState(vol, old, 'failed', 'gone')
  const spare = { path: 'spare', dev: new MemoryDevice(DISK_SIZE + 8192) }
  await spare.dev.write(INTENT_OFFSET, Buffer.alloc(INTENT_LENGTH, 0xff))
  const { uuid, result } = await replaceMember(vol, old, spare, seededRandom('spare'))
  t.equal(result.config.seq, 3)
  t.strictSame(result.written.toSorted(), ['r0', 'spare'])
  t.strictSame(vol.config.members[1], { uuid, size: DATA, state: 'rebuilding' })
  t.strictSame(vol.config.root, { kind: 'mirror', children: vol.config.members.map((m) => ({ kind: 'disk', member: m.uuid })) })
  t.ok((await spare.dev.read(INTENT_OFFSET, INTENT_LENGTH)).equals(Buffer.alloc(INTENT_LENGTH)), 'the spare\'s old bitmap is cleared')
  t.equal(vol.disks.at(-1)?.path, 'spare')

  await t.rejects(assembleVolume([disks[0]!, disks[1]!, spare], testFactory()), { code: 'VOLUME_STALE', message: /r1: stale member: configuration seq 1, volume is at 3; the volume no longer lists it/ })
  await label(spare.dev, 'spare')
  const rebuilding = await assembleVolume([spare, disks[0]!], testFactory())
  t.equal(await describeTree(rebuilding.device), `mirror(r0@1048576+${DATA}, missing(${DATA}))`)
  t.match(rebuilding.missing, [{ uuid, index: 1, reason: /was rebuilding/ }])

  await setMemberState(vol, uuid, 'ok')
  const whole = await assembleVolume([spare, disks[0]!], testFactory())
  t.equal(await describeTree(whole.device), `mirror(r0@1048576+${DATA}, spare@1048576+${DATA})`)
})

t.test('a replacement too small for the member, or for a member the volume lacks, changes nothing', async (t) => {
  const disks = memoryDisks('x', 2)
  const vol = await createVolume('small', 'mirror', disks, { random: seededRandom('small') })
  const tiny = { path: 'tiny', dev: new MemoryDevice(MEMBER_RESERVED + DATA - 4096) }
  await t.rejects(replaceMember(vol, vol.disks[0]!.uuid, tiny), { code: 'VOLUME_LAYOUT', message: /tiny: 1110016 bytes cannot hold member [0-9a-f]{32}'s 65536-byte data area/ })
  await t.rejects(replaceMember(vol, 'ee'.repeat(16), tiny), { code: 'VOLUME_MEMBER' })
  t.equal(vol.disks.length, 2)
  t.equal(vol.config.seq, 1)
})
