import t from 'tap'
import { membersUnder, validateConfig } from '../../../vfs/volume/config.ts'

const uuid = (i: number): string => i.toString(16).padStart(32, '0')

function base(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    name: 'vol-0.a_b',
    id: 'ab'.repeat(16),
    seq: 3,
    root: { kind: 'raid5', unit: 65536, children: [0, 1, 2].map((i) => ({ kind: 'disk', member: uuid(i) })) },
    members: [0, 1, 2].map((i) => ({ uuid: uuid(i), size: 1048576, state: 'ok' })),
    snapshots: [],
    flags: { intentBitmap: true, regionSize: 1048576 },
    ...over,
  }
}

const disks = (n: number, from = 0): { kind: 'disk'; member: string }[] => Array.from({ length: n }, (_, i) => ({ kind: 'disk', member: uuid(from + i) }))
const members = (n: number): { uuid: string; size: number; state: string }[] => Array.from({ length: n }, (_, i) => ({ uuid: uuid(i), size: 4096, state: 'ok' }))

t.test('a valid configuration comes back equal, with its fields in a fixed order', async (t) => {
  const shuffled = { flags: { regionSize: 1048576, intentBitmap: true }, ...base() }
  const c = validateConfig(shuffled)
  t.strictSame(c, base())
  t.equal(JSON.stringify(validateConfig(JSON.parse(JSON.stringify(c)))), JSON.stringify(c))
  t.strictSame(Object.keys(c), ['version', 'name', 'id', 'seq', 'root', 'members', 'snapshots', 'flags'])
  t.strictSame(membersUnder(c.root), [uuid(0), uuid(1), uuid(2)])
})

t.test('without a bitmap, the region count is not limited', async (t) => {
  const c = validateConfig(base({ members: [0, 1, 2].map((i) => ({ uuid: uuid(i), size: 2 ** 30, state: 'ok' })), flags: { intentBitmap: false, regionSize: 4096 } }))
  t.equal(c.flags.regionSize, 4096)
})

t.test('nested layouts, partitions and member states validate', async (t) => {
  const root = {
    kind: 'mirror',
    children: [
      { kind: 'stripe', children: disks(2) },
      { kind: 'span', children: [{ kind: 'partition', offset: 0, size: 512, child: disks(1, 2)[0] }, ...disks(1, 3)] },
    ],
  }
  const ms = members(4).map((m, i) => (i === 3 ? { ...m, state: 'failed', reason: 'EIO: read at 4096' } : i === 2 ? { ...m, state: 'rebuilding' } : m))
  const c = validateConfig(base({ root, members: ms }))
  t.strictSame(membersUnder(c.root), [uuid(0), uuid(1), uuid(2), uuid(3)])
  t.equal(c.members[3]?.reason, 'EIO: read at 4096')
})

t.test('bad configurations are VOLUME_LAYOUT naming where', async (t) => {
  let deep: Record<string, unknown> = disks(1)[0]!
  for (let i = 0; i < 8; i++) deep = { kind: 'span', children: [deep] }
  const cases: [string, unknown, RegExp][] = [
    ['not an object', [], /^VOLUME_LAYOUT: config: not an object$/],
    ['null', null, /config: not an object/],
    ['unknown field', base({ extra: 1 }), /config: unknown field 'extra'/],
    ['missing field', (() => { const b = base(); delete b.flags; return b })(), /config: missing field 'flags'/],
    ['version', base({ version: 2 }), /version: 2 is not 1/],
    ['name with a slash', base({ name: 'a/b' }), /name: "a\/b" is not 1 to 64 bytes/],
    ['empty name', base({ name: '' }), /name: "" is not/],
    ['name of 65 bytes', base({ name: 'n'.repeat(65) }), /name: "n{65}" is not 1 to 64 bytes/],
    ['upper-case id', base({ id: 'AB'.repeat(16) }), /id: "A{1}B.*" is not 32 lower-case hex digits/],
    ['short id', base({ id: 'ab' }), /id: "ab" is not 32/],
    ['seq 0', base({ seq: 0 }), /seq: 0 is not an integer in \[1, 9007199254740991\]/],
    ['seq fraction', base({ seq: 1.5 }), /seq: 1.5 is not an integer/],
    ['seq string', base({ seq: '3' }), /seq: "3" is not an integer/],
    ['wrong kind', base({ root: { kind: 'raid6', children: disks(3) } }), /root.kind: "raid6" is not disk, partition, span, stripe, mirror or raid5/],
    ['stripe of one', base({ root: { kind: 'stripe', children: disks(1) }, members: members(1) }), /root.children: stripe needs 2 to 64 children, has 1/],
    ['mirror of one', base({ root: { kind: 'mirror', children: disks(1) }, members: members(1) }), /root.children: mirror needs 2 to 64 children, has 1/],
    ['raid5 of two', base({ root: { kind: 'raid5', children: disks(2) }, members: members(2) }), /root.children: raid5 needs 3 to 64 children, has 2/],
    ['span of none', base({ root: { kind: 'span', children: [] } }), /root.children: span needs 1 to 64 children, has 0/],
    ['children not an array', base({ root: { kind: 'span', children: {} } }), /root.children: not an array/],
    ['unit on a mirror', base({ root: { kind: 'mirror', unit: 4096, children: disks(3) } }), /root: unknown field 'unit'/],
    ['unit not a sector multiple', base({ root: { kind: 'raid5', unit: 1000, children: disks(3) } }), /root.unit: 1000 is not an integer in \[512, 67108864\] and a multiple of 512/],
    ['duplicate member in the tree', base({ root: { kind: 'raid5', children: [...disks(2), ...disks(1)] } }), /root.children\[2\].member: duplicate member 0{32}/],
    ['duplicate member in the list', base({ members: [...members(3), members(1)[0]] }), /members\[3\].uuid: duplicate member 0{32}/],
    ['leaf not listed', base({ root: { kind: 'raid5', children: disks(3, 1) } }), /root.children\[2\].member: 0{31}3 is not in the member list/],
    ['member in no layer', base({ members: members(4) }), /members: member 0{31}3 is in no layer/],
    ['depth 9', base({ root: deep, members: members(1) }), /root(.children\[0\]){8}: layers nest deeper than 8/],
    ['65 members', base({ root: { kind: 'span', children: disks(65) }, members: members(65) }), /members: 65 members, not 1 to 64/],
    ['no members', base({ members: [] }), /members: 0 members/],
    ['member state', base({ members: members(3).map((m) => ({ ...m, state: 'dead' })) }), /members\[0\].state: "dead" is not ok, failed or rebuilding/],
    ['member size not a sector multiple', base({ members: members(3).map((m) => ({ ...m, size: 1000 })) }), /members\[0\].size: 1000 is not an integer/],
    ['reason too long', base({ members: members(3).map((m) => ({ ...m, reason: 'r'.repeat(513) })) }), /members\[0\].reason: not a string of at most 512 characters/],
    ['partition offset', base({ root: { kind: 'partition', offset: -512, size: 512, child: disks(1)[0] }, members: members(1) }), /root.offset: -512 is not an integer/],
    ['partition without child', base({ root: { kind: 'partition', offset: 0, size: 512 }, members: members(1) }), /root: missing field 'child'/],
    ['snapshots not empty', base({ snapshots: [{ name: 's' }] }), /snapshots: must be \[\] in this format version/],
    ['flags bitmap', base({ flags: { intentBitmap: 1, regionSize: 1048576 } }), /flags.intentBitmap: not a boolean/],
    ['region not a power of two', base({ flags: { intentBitmap: true, regionSize: 3 * 4096 } }), /flags.regionSize: 12288 is not a power of two/],
    ['too many intent regions', base({ members: members(3).map((m) => ({ ...m, size: 2 ** 30 })), flags: { intentBitmap: true, regionSize: 4096 } }), /flags.regionSize: 4096 makes 786432 intent regions, more than the 524288 a member's bitmap area holds/],
    ['region too small', base({ flags: { intentBitmap: true, regionSize: 512 } }), /flags.regionSize: 512 is not an integer in \[4096, 1073741824\]/],
  ]
  for (const [name, value, message] of cases) t.throws(() => validateConfig(value), { code: 'VOLUME_LAYOUT', message }, name)
})
