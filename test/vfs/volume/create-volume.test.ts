import t from 'tap'
import type { BlockDevice } from '../../../vfs/engine/blockdev/block-device.ts'
import { FaultDevice } from '../../../vfs/engine/blockdev/fault-device.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { assembleVolume } from '../../../vfs/volume/assemble.ts'
import { createVolume, updateConfig } from '../../../vfs/volume/create-volume.ts'
import type { IntentCopy } from '../../../vfs/volume/layer-tree.ts'
import type { IntentLog, VolumeEvent } from '../../../vfs/volume/layer.ts'
import { decodeMemberSuperblock, HEADER_SIZE, INTENT_LENGTH, INTENT_OFFSET, MEMBER_RESERVED, SUPERBLOCK_OFFSETS, superblockCrc } from '../../../vfs/volume/member-format.ts'
import { readMember } from '../../../vfs/volume/member-io.ts'
import { MissingDevice } from '../../../vfs/volume/missing-device.ts'
import { DATA, DISK_SIZE, labelAll, memoryDisks, seededRandom } from './assemble-helpers.ts'
import { describeTree, TestLayer, testFactory } from './recording-factory.ts'

async function copyAt(dev: BlockDevice, slot: number): Promise<Buffer> {
  const header = await dev.read(SUPERBLOCK_OFFSETS[slot]!, HEADER_SIZE)
  return dev.read(SUPERBLOCK_OFFSETS[slot]!, HEADER_SIZE + header.readUInt32BE(12))
}

t.test('createVolume writes both superblock copies at seq 1 and clears the intent area', async (t) => {
  const disks = memoryDisks('c', 3, DISK_SIZE + 5120)
  for (const d of disks) await d.dev.write(INTENT_OFFSET, Buffer.alloc(INTENT_LENGTH, 0xff))
  const vol = await createVolume('fresh', 'raid5', disks, { random: seededRandom('fresh'), unit: 16384 })
  t.equal(vol.config.seq, 1)
  t.strictSame(vol.config.root, { kind: 'raid5', unit: 16384, children: vol.config.members.map((m) => ({ kind: 'disk', member: m.uuid })) })
  // 64 KiB + 5120 bytes of data area, kept in whole 4 KiB blocks.
  t.strictSame(vol.config.members.map((m) => [m.size, m.state]), [[DATA + 4096, 'ok'], [DATA + 4096, 'ok'], [DATA + 4096, 'ok']])
  t.strictSame(vol.config.flags, { intentBitmap: true, regionSize: 64 * 1024 * 1024 })
  for (const [i, d] of disks.entries()) {
    const dev = d.dev
    for (const slot of [0, 1]) {
      const sb = decodeMemberSuperblock(await copyAt(dev, slot))
      t.strictSame([sb.memberIndex, sb.memberUuid, sb.seq, sb.dataOffset], [i, vol.disks[i]!.uuid, 1, MEMBER_RESERVED], `disk ${i} copy ${slot}`)
    }
    t.ok((await dev.read(INTENT_OFFSET, INTENT_LENGTH)).equals(Buffer.alloc(INTENT_LENGTH)), `disk ${i} intent area zeroed`)
  }
  t.equal((await createVolume('plain', 'stripe', memoryDisks('p', 2), { random: seededRandom('p') })).config.flags.intentBitmap, false, 'no bitmap for a stripe by default')
})

t.test('createVolume refuses a member of a volume unless forced, and disks too small', async (t) => {
  const disks = memoryDisks('f', 2)
  const old = await createVolume('old', 'mirror', disks, { random: seededRandom('old') })
  await t.rejects(createVolume('new', 'span', disks), { code: 'VOLUME_FOREIGN', message: `VOLUME_FOREIGN: f0 is member 0 of volume old (id ${old.config.id}); give force to overwrite it` })
  const forced = await createVolume('new', 'span', disks, { force: true, random: seededRandom('new') })
  t.equal((await readMember(disks[1]!.dev)).superblock.config.id, forced.config.id)
  await t.rejects(createVolume('tiny', 'span', [{ path: 'tiny', dev: new MemoryDevice(MEMBER_RESERVED + 2048) }]), { code: 'VOLUME_LAYOUT', message: /tiny: 1050624 bytes leaves no data area/ })
  await t.rejects(createVolume('bad/name', 'span', memoryDisks('b', 1)), { code: 'VOLUME_LAYOUT', message: /name: "bad\/name"/ })
  await t.rejects(createVolume('r', 'raid5', memoryDisks('r', 2)), { code: 'VOLUME_LAYOUT', message: /raid5 needs 3 to 64 children, has 2/ })
  await t.rejects(createVolume('none', 'span', []), { code: 'VOLUME_LAYOUT', message: /0 disks, not 1 to 64/ })
})

t.test('updateConfig writes every reachable member and reports the others', async (t) => {
  const mem = memoryDisks('u', 3)
  const vol = await createVolume('upd', 'mirror', mem, { random: seededRandom('upd') })
  const flaky = new FaultDevice(mem[2]!.dev)
  vol.disks[2] = { ...vol.disks[2]!, dev: flaky }
  flaky.inject({ kind: 'eio', ops: ['write'] })
  const r = await updateConfig(vol, (c) => ({ ...c, name: 'upd2' }))
  t.strictSame(r.written.toSorted(), ['u0', 'u1'])
  t.match(r.unreachable, [{ path: 'u2', uuid: vol.disks[2].uuid, error: { code: 'EIO' } }])
  t.equal(vol.config.seq, 2)
  for (const d of mem.slice(0, 2)) for (const slot of [0, 1]) t.equal(decodeMemberSuperblock(await copyAt(d.dev, slot)).config.name, 'upd2')
  t.equal((await readMember(flaky.inner)).superblock.seq, 1, 'the unreachable member keeps seq 1')

  // The caller marks it failed; it is then skipped, and refused as stale if it comes back.
  const failed = vol.disks[2].uuid
  await updateConfig(vol, (c) => ({ ...c, members: c.members.map((m) => (m.uuid === failed ? { ...m, state: 'failed', reason: 'EIO on write' } : m)) }))
  await t.rejects(assembleVolume(mem, testFactory()), { code: 'VOLUME_STALE', message: /u2: stale member: configuration seq 1, volume is at 3/ })

  // Nobody reachable: VOLUME_FAILED, and the volume keeps the configuration it had.
  const dying = new FaultDevice(mem[0]!.dev)
  dying.inject({ kind: 'gone' })
  const alone = { config: vol.config, disks: [{ ...vol.disks[0]!, dev: dying }, vol.disks[2]] }
  await t.rejects(updateConfig(alone, (c) => ({ ...c, name: 'nobody' })), {
    code: 'VOLUME_FAILED',
    message: 'VOLUME_FAILED: no member took configuration seq 4 of volume nobody',
    cause: { code: 'ENXIO' },
  })
  t.equal(alone.config.seq, 3)
})

t.test('updateConfig refuses an invalid next configuration and a changed id, writing nothing', async (t) => {
  const disks = memoryDisks('i', 2)
  const vol = await createVolume('inv', 'mirror', disks, { random: seededRandom('inv') })
  await t.rejects(updateConfig(vol, (c) => ({ ...c, name: '' })), { code: 'VOLUME_LAYOUT', message: /name: ""/ })
  await t.rejects(updateConfig(vol, (c) => ({ ...c, id: 'ff'.repeat(16) })), { code: 'VOLUME_LAYOUT', message: /the volume id cannot change/ })
  t.equal(vol.config.seq, 1)
  t.equal((await readMember(disks[0]!.dev)).superblock.seq, 1)
})

t.test('two sides changed apart at the same sequence number are refused together', async (t) => {
  const disks = memoryDisks('sb', 2)
  const vol = await createVolume('split', 'mirror', disks, { random: seededRandom('split') })
  await updateConfig({ config: vol.config, disks: [vol.disks[0]!] }, (c) => ({ ...c, name: 'left' }))
  await updateConfig({ config: vol.config, disks: [vol.disks[1]!] }, (c) => ({ ...c, name: 'right' }))
  await t.rejects(assembleVolume(disks, testFactory()), { code: 'VOLUME_LAYOUT', message: /sb0 and sb1 hold different configurations at seq 2/ })
})

t.test('a member being rebuilt starts as a stand-in, to be rebuilt again', async (t) => {
  const disks = memoryDisks('rb', 3)
  const vol = await createVolume('rebuild', 'raid5', disks, { random: seededRandom('rb') })
  await labelAll(disks)
  const target = vol.disks[1]!.uuid
  await updateConfig(vol, (c) => ({ ...c, members: c.members.map((m) => (m.uuid === target ? { ...m, state: 'rebuilding' } : m)) }))
  const got = await assembleVolume(disks, testFactory())
  t.equal(await describeTree(got.device), `raid5/65536(rb0@1048576+${DATA}, missing(${DATA}), rb2@1048576+${DATA})`)
  t.strictSame(got.missing, [{ uuid: target, index: 1, reason: `member 1 (${target}) was rebuilding` }])
  t.equal(got.disks.length, 3, 'its disk is still handed back, for the rebuild')
})

t.test('redundant layers get the intent log over their members\' bitmap areas, and the event sink', async (t) => {
  const disks = memoryDisks('in', 3)
  await createVolume('intent', 'raid5', disks, { random: seededRandom('intent'), regionSize: 65536 })
  const calls: { copies: IntentCopy[]; size: number; region: number }[] = []
  const intent: IntentLog = {
    mark: async () => undefined,
    settle: async () => undefined,
    dirtyAtOpen: () => [],
    regionSize: 65536,
    close: async () => undefined,
  }
  const events: VolumeEvent[] = []
  const onEvent = (e: VolumeEvent): void => {
    events.push(e)
  }
  const openIntent = async (copies: IntentCopy[], size: number, region: number): Promise<IntentLog> => {
    calls.push({ copies, size, region })
    return intent
  }
  const got = await assembleVolume([disks[2]!, disks[0]!], testFactory(), { openIntent, onEvent })
  t.equal(calls.length, 1)
  t.strictSame(calls[0]!.copies.map((c) => [c.offset, c.length]), [[INTENT_OFFSET, INTENT_LENGTH], [INTENT_OFFSET, INTENT_LENGTH]])
  t.ok(calls[0]!.copies[0]!.dev === disks[0]!.dev && calls[0]!.copies[1]!.dev === disks[2]!.dev, 'the raw disks present, in member order')
  t.equal(calls[0]!.size, 2 * DATA, 'the layer\'s size, from the layer class')
  t.equal(calls[0]!.region, 65536)
  const layer = got.device
  if (!(layer instanceof TestLayer)) throw new Error('the factory built the root')
  t.equal(layer.redundant?.intent, intent)
  t.equal(layer.redundant?.onEvent, onEvent)
  t.strictSame(got.intents, [intent])

  const off = memoryDisks('off', 2)
  await createVolume('nobitmap', 'mirror', off, { random: seededRandom('off'), intentBitmap: false })
  await assembleVolume(off, testFactory(), { openIntent })
  t.equal(calls.length, 1, 'no bitmap asked for when the configuration has it off')
})

t.test('MissingDevice fails every operation as a vanished disk does', async (t) => {
  const dev = new MissingDevice(8192, 'member 1 not among the disks given')
  t.equal(dev.size, 8192)
  const gone = { code: 'ENXIO', message: /member missing \(member 1 not among the disks given\)/ }
  await t.rejects(dev.read(0, 512), gone)
  await t.rejects(dev.readInto(0, new Uint8Array(512)), gone)
  await t.rejects(dev.write(0, new Uint8Array(512)), gone)
  await t.rejects(dev.flush(), gone)
  await t.resolves(dev.close())
})

t.test('concurrent updates apply one after the other, each on the other\'s result', async (t) => {
  const disks = memoryDisks('cc', 3)
  const vol = await createVolume('conc', 'raid5', disks, { random: seededRandom('conc') })
  const fail = (uuid: string) => (c: typeof vol.config): typeof vol.config => ({ ...c, members: c.members.map((m) => (m.uuid === uuid ? { ...m, state: 'failed' as const, reason: 'gone' } : m)) })
  const [a, b] = await Promise.all([updateConfig(vol, fail(vol.disks[1]!.uuid)), updateConfig(vol, fail(vol.disks[2]!.uuid))])
  t.strictSame([a.config.seq, b.config.seq], [2, 3])
  t.strictSame(vol.config.members.map((m) => m.state), ['ok', 'failed', 'failed'])
  t.strictSame(b.written, ['cc0'], 'the second update skips both failed members')
  t.strictSame((await readMember(disks[0]!.dev)).superblock.config, vol.config)
  // A refused update does not block the next.
  await t.rejects(updateConfig(vol, (c) => ({ ...c, name: '' })), { code: 'VOLUME_LAYOUT' })
  t.equal((await updateConfig(vol, (c) => ({ ...c, name: 'after' }))).config.seq, 4)
})

t.test('createVolume refuses a disk with a damaged member superblock unless forced', async (t) => {
  const disks = memoryDisks('dm', 2)
  await createVolume('dmg', 'mirror', disks, { random: seededRandom('dmg') })
  // Both copies checksummed but holding a configuration that is not JSON.
  for (const at of SUPERBLOCK_OFFSETS) {
    const copy = await copyAt(disks[0]!.dev, at === 0 ? 0 : 1)
    copy.write('[', HEADER_SIZE)
    copy.writeUInt32BE(superblockCrc(copy), 52)
    await disks[0]!.dev.write(at, copy)
  }
  await t.rejects(createVolume('again', 'span', [disks[0]!]), { code: 'VOLUME_FOREIGN', message: /dm0 carries a damaged member superblock; give force/ })
  t.equal((await createVolume('again', 'span', [disks[0]!], { force: true, random: seededRandom('again') })).config.name, 'again')
})

t.test('each disk\'s bitmap area serves its nearest redundant layer; a truncated disk is refused and opened logs closed', async (t) => {
  const disks = memoryDisks('nr', 3)
  const vol = await createVolume('nearest', 'span', disks, { random: seededRandom('nearest'), intentBitmap: true })
  const [u0, u1, u2] = vol.config.members.map((m) => m.uuid)
  await updateConfig(vol, (c) => ({
    ...c,
    root: {
      kind: 'mirror',
      children: [
        { kind: 'mirror', children: [{ kind: 'disk', member: u0! }, { kind: 'partition', offset: 0, size: DATA, child: { kind: 'disk', member: u1! } }] },
        { kind: 'disk', member: u2! },
      ],
    },
  }))
  const opened: { devs: BlockDevice[]; closed: boolean }[] = []
  const openIntent = async (copies: IntentCopy[]): Promise<IntentLog> => {
    const log = { devs: copies.map((c) => c.dev), closed: false }
    opened.push(log)
    return { mark: async () => undefined, settle: async () => undefined, dirtyAtOpen: () => [], regionSize: 4096, close: async () => void (log.closed = true) }
  }
  await assembleVolume(disks, testFactory(), { openIntent })
  t.strictSame(
    opened.map((o) => o.devs.map((d) => disks.findIndex((x) => x.dev === d))),
    [[0, 1], [2]],
    'the inner mirror keeps its log on n0 and n1, the outer on n2',
  )

  // n2 cut short (a copy of its reserved area on a smaller disk): refused after the inner log opened, which is closed again.
  opened.length = 0
  const short = new MemoryDevice(MEMBER_RESERVED + 4096)
  await short.write(0, await disks[2]!.dev.read(0, MEMBER_RESERVED))
  await t.rejects(assembleVolume([disks[0]!, disks[1]!, { path: 'short', dev: short }], testFactory(), { openIntent }), {
    code: 'VOLUME_LAYOUT',
    message: `VOLUME_LAYOUT: short: 1052672 bytes, shorter than member ${u2!}'s data area (65536 bytes at 1048576): truncated?`,
  })
  t.strictSame(opened.map((o) => o.closed), [true])
})

t.test('the default region size keeps the bitmap inside each member\'s intent area', async (t) => {
  const TiB = 2 ** 40
  const huge = memoryDisks('h', 3, MEMBER_RESERVED + TiB)
  const vol = await createVolume('huge', 'raid5', huge, { random: seededRandom('huge') })
  t.equal(vol.config.flags.regionSize, 64 * 1024 * 1024, '3 TiB of members over at most 524288 regions needs 6 MiB: the 64 MiB minimum')
  const bigger = await createVolume('bigger', 'span', memoryDisks('b', 3, MEMBER_RESERVED + 20 * TiB), { random: seededRandom('bigger') })
  t.equal(bigger.config.flags.regionSize, 128 * 1024 * 1024, '60 TiB over 524288 regions: 120 MiB, rounded up to a power of two')
  const regions = Math.ceil((3 * TiB) / vol.config.flags.regionSize)
  // intent-bitmap.ts: two slots, each a 64-byte header and the bits, in whole 512-byte sectors.
  const slot = Math.ceil((64 + Math.ceil(regions / 8)) / 512) * 512
  t.ok(2 * slot <= INTENT_LENGTH, `${regions} regions take ${2 * slot} of ${INTENT_LENGTH} bytes`)
  await t.rejects(createVolume('fine', 'mirror', memoryDisks('g', 2, MEMBER_RESERVED + TiB), { regionSize: 4096 }), { code: 'VOLUME_LAYOUT', message: /flags.regionSize: 4096 makes 536870912 intent regions/ })
})
