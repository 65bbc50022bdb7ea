import t from 'tap'
import { isDeepStrictEqual } from 'node:util'
import type { Change } from '../../../vfs/replica/change.ts'
import { changeBytes, changeFromBytes, decodeChange, encodeChange } from '../../../server/replication/change-codec.ts'
import { XdrReader } from '../../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'
import { randomChanges } from './random-change.ts'

/** Hex words, spaces ignored, so each vector reads field by field. */
const hex = (...fields: string[]): Buffer => Buffer.from(fields.join('').replace(/\s+/g, ''), 'hex')

const DIR = '0000000000000001 00000000'
const REF = '0000000000000002 00000007'
const NEW_A = `${DIR} 00000001 61000000 ${REF} 000001a4 000003e8 00000064` // dir, name "a", ref, mode 0644, uid 1000, gid 100
const obj = { dir: { id: 1n, gen: 0 }, name: Buffer.from('a'), ref: { id: 2n, gen: 7 }, mode: 0o644, uid: 1000, gid: 100 }
const NO_TIMES = '00000000'

/** Encodes, checks the exact bytes, decodes them back to the same change with every byte consumed. */
function vector(name: string, change: Change, bytes: Buffer): void {
  t.test(name, async (t) => {
    t.equal(changeBytes(change).toString('hex'), bytes.toString('hex'), 'exact bytes')
    const w = new XdrWriter()
    encodeChange(w, change)
    t.equal(w.toBuffer().toString('hex'), bytes.toString('hex'), 'encodeChange into a writer: the same bytes')
    t.strictSame(changeFromBytes(bytes), change, 'decodes back')
    const r = new XdrReader(Buffer.concat([bytes, hex('deadbeef')]))
    t.strictSame(decodeChange(r), change, 'decodeChange from a reader')
    t.equal(r.pos, bytes.length, 'reader stops right after the change')
    t.throws(() => changeFromBytes(Buffer.concat([bytes, hex('00000000')])), { name: 'XdrDecodeError', code: 'XDR_TRAILING_BYTES' })
    t.throws(() => changeFromBytes(bytes.subarray(0, bytes.length - 1)), { name: 'XdrDecodeError', code: 'XDR_SHORT_BUFFER' })
  })
}

vector('create, not exclusive, no times', { op: 'create', obj, exclusive: null, times: [] }, hex('00000001', NEW_A, '00000000', NO_TIMES))

vector(
  'create, exclusive (the verifier kept), one times entry with a negative second',
  {
    op: 'create',
    obj,
    exclusive: hex('0102030405060708'),
    times: [{ ref: { id: 1n, gen: 0 }, atime: { sec: 1_700_000_000, nsec: 5 }, mtime: { sec: -1, nsec: 999_999_999 } }],
  },
  hex('00000001', NEW_A, '00000001 0102030405060708', '00000001', DIR, '000000006553f100 00000005', 'ffffffffffffffff 3b9ac9ff'),
)

vector(
  'write without data (the log form)',
  { op: 'write', ref: { id: 0x0102030405060708n, gen: 1 }, offset: 4096n, length: 512, data: null, times: [] },
  hex('00000005', '0102030405060708 00000001', '0000000000001000', '00000200', '00000000', NO_TIMES),
)

vector(
  'write with its data (the wire form), padded to four bytes',
  { op: 'write', ref: { id: 2n, gen: 7 }, offset: 0n, length: 3, data: Buffer.from('xyz'), times: [] },
  hex('00000005', REF, '0000000000000000', '00000003', '00000003 78797a00', NO_TIMES),
)

vector(
  'setattr with every field',
  {
    op: 'setattr',
    ref: { id: 2n, gen: 7 },
    set: { mode: 0o755, uid: 0, gid: 0, size: 0x1_0000_0000n, atime: { sec: 1, nsec: 2 }, mtime: { sec: 3, nsec: 4 } },
    times: [],
  },
  hex(
    '00000006',
    REF,
    '00000001 000001ed',
    '00000001 00000000',
    '00000001 00000000',
    '00000001 0000000100000000',
    '00000001 0000000000000001 00000002',
    '00000001 0000000000000003 00000004',
    NO_TIMES,
  ),
)

vector(
  'setattr with no field (unset fields absent, not undefined)',
  { op: 'setattr', ref: { id: 2n, gen: 7 }, set: {}, times: [] },
  hex('00000006', REF, '00000000 00000000 00000000 00000000 00000000 00000000', NO_TIMES),
)

vector(
  'rename, with the times of both directories',
  {
    op: 'rename',
    fromDir: { id: 1n, gen: 0 },
    fromName: Buffer.from('old'),
    toDir: { id: 9n, gen: 2 },
    toName: Buffer.from('new-name'),
    times: [
      { ref: { id: 1n, gen: 0 }, atime: { sec: 10, nsec: 0 }, mtime: { sec: 11, nsec: 0 } },
      { ref: { id: 9n, gen: 2 }, atime: { sec: 12, nsec: 0 }, mtime: { sec: 13, nsec: 0 } },
    ],
  },
  hex(
    '00000009',
    DIR,
    '00000003 6f6c6400',
    '0000000000000009 00000002',
    '00000008 6e65772d6e616d65',
    '00000002',
    DIR,
    '000000000000000a 00000000 000000000000000b 00000000',
    '0000000000000009 00000002',
    '000000000000000c 00000000 000000000000000d 00000000',
  ),
)

vector(
  'mknod, a fifo and a block device',
  { op: 'mknod', obj, type: 'fifo', rdev: { major: 0, minor: 0 }, times: [] },
  hex('00000004', NEW_A, '00000004', '00000000 00000000', NO_TIMES),
)
vector(
  'mknod, a block device keeps its numbers',
  { op: 'mknod', obj, type: 'block', rdev: { major: 8, minor: 17 }, times: [] },
  hex('00000004', NEW_A, '00000001', '00000008 00000011', NO_TIMES),
)

vector('mkdir', { op: 'mkdir', obj, times: [] }, hex('00000002', NEW_A, NO_TIMES))
vector('symlink', { op: 'symlink', obj, target: Buffer.from('../x'), times: [] }, hex('00000003', NEW_A, '00000004 2e2e2f78', NO_TIMES))
vector('remove', { op: 'remove', dir: { id: 1n, gen: 0 }, name: Buffer.from('a'), times: [] }, hex('00000007', DIR, '00000001 61000000', NO_TIMES))
vector('rmdir', { op: 'rmdir', dir: { id: 1n, gen: 0 }, name: Buffer.from('abcd'), times: [] }, hex('00000008', DIR, '00000004 61626364', NO_TIMES))
vector(
  'link',
  { op: 'link', ref: { id: 2n, gen: 7 }, dir: { id: 1n, gen: 0 }, name: Buffer.from('b'), times: [] },
  hex('0000000a', REF, DIR, '00000001 62000000', NO_TIMES),
)

t.test('decode refuses, with exact codes', async (t) => {
  const remove = (name: string, times = NO_TIMES): Buffer => hex('00000007', DIR, name, times)
  const time = `${DIR} 0000000000000001 00000000 0000000000000001 00000000`
  t.throws(() => changeFromBytes(hex('0000000b', DIR, '00000001 61000000', NO_TIMES)), { name: 'XdrDecodeError', code: 'XDR_BAD_ENUM' }, 'an unknown op')
  t.throws(() => changeFromBytes(hex('00000001', NEW_A, '00000002', NO_TIMES)), { name: 'XdrDecodeError', code: 'XDR_BAD_BOOL' }, 'a verifier switch of 2')
  t.throws(() => changeFromBytes(remove(`00000100 ${'61'.repeat(256)}`)), { name: 'XdrDecodeError', code: 'XDR_TOO_LONG', message: 'opaque<255>: length 256' }, 'a name over 255 bytes, before reading it')
  t.throws(() => changeFromBytes(remove('00000001 61000000', `00000005 ${time.repeat(5)}`)), { name: 'XdrDecodeError', code: 'XDR_TOO_LONG', message: 'array<4>: count 5' }, 'five times')
  t.throws(() => changeFromBytes(hex('00000005', REF, '0000000000000000', '00100001', '00000000', NO_TIMES)), {
    name: 'ReplicationError',
    code: 'REPL_BAD_CHANGE',
    message: 'repl_change: write length 1048577 over 1048576',
  })
  t.throws(() => changeFromBytes(hex('00000005', REF, '0000000000000000', '00000003', '00000002 78790000', NO_TIMES)), {
    name: 'ReplicationError',
    code: 'REPL_BAD_CHANGE',
    message: 'repl_change: write of length 3 carries 2 bytes of data',
  })
  t.throws(() => changeFromBytes(hex('00000005', REF, '0000000000000000', '00000001', '00000002 78790000', NO_TIMES)), { code: 'REPL_BAD_CHANGE' }, 'more data than length')
  // No backend holds a byte past 2^63 - 1 (a signed off_t): such a write or size could never apply.
  t.throws(() => changeFromBytes(hex('00000005', REF, '7fffffffffffffff', '00000001', '00000000', NO_TIMES)), {
    code: 'REPL_BAD_CHANGE',
    message: 'repl_change: write of 1 bytes at 9223372036854775807 ends past the largest file size',
  })
  t.strictSame(changeFromBytes(hex('00000005', REF, '7ffffffffffffffe', '00000001', '00000000', NO_TIMES)).op, 'write', 'a write whose last byte is the largest offset is fine')
  const badTime = (sec: string, nsec: string): Buffer => remove('00000001 61000000', `00000001 ${DIR} ${sec} ${nsec} 0000000000000000 00000000`)
  t.throws(() => changeFromBytes(badTime('0000000000000000', '3b9aca00')), { code: 'REPL_BAD_CHANGE', message: 'repl_change: time 1000000000 ns out of [0, 1e9)' })
  t.throws(() => changeFromBytes(badTime('0020000000000000', '00000000')), { code: 'REPL_BAD_CHANGE', message: 'repl_change: time 9007199254740992 s is not a safe integer' })
  t.throws(() => changeFromBytes(remove('00000000')), { code: 'REPL_BAD_CHANGE', message: 'repl_change: empty name' })
  t.throws(() => changeFromBytes(remove('00000001 2e000000')), { code: 'REPL_BAD_CHANGE', message: 'repl_change: name .' })
  t.throws(() => changeFromBytes(remove('00000002 2e2e0000')), { code: 'REPL_BAD_CHANGE', message: 'repl_change: name ..' })
  t.throws(() => changeFromBytes(remove('00000003 612f6200')), { code: 'REPL_BAD_CHANGE', message: 'repl_change: name "a/b" is not one path component' })
  t.throws(() => changeFromBytes(remove('00000002 61000000')), { code: 'REPL_BAD_CHANGE', message: 'repl_change: name "a\\u0000" is not one path component' })
  t.throws(() => changeFromBytes(hex('00000002', DIR, '00000001 61000000', REF, '00001000 00000000 00000000', NO_TIMES)), {
    code: 'REPL_BAD_CHANGE',
    message: 'repl_change: mode 0o10000 is more than permission bits',
  })
  t.strictSame(changeFromBytes(remove('00000002 2e610000')).op, 'remove', 'a name starting with a dot is fine')
})

t.test('encode refuses what decode would, as XdrEncodeError', async (t) => {
  const times = Array.from({ length: 5 }, () => ({ ref: { id: 1n, gen: 0 }, atime: { sec: 0, nsec: 0 }, mtime: { sec: 0, nsec: 0 } }))
  const cases: [string, Change, string][] = [
    ['five times', { op: 'mkdir', obj, times }, 'repl_change: 5 times, at most 4'],
    ['write data not its length', { op: 'write', ref: obj.ref, offset: 0n, length: 4, data: Buffer.from('xyz'), times: [] }, 'repl_change: write of length 4 carries 3 bytes of data'],
    ['empty name', { op: 'remove', dir: obj.dir, name: Buffer.alloc(0), times: [] }, 'repl_change: empty name'],
    ['mode', { op: 'mkdir', obj: { ...obj, mode: 0o40755 }, times: [] }, 'repl_change: mode 0o40755 is more than permission bits'],
    ['fractional second', { op: 'setattr', ref: obj.ref, set: { mtime: { sec: 1.5, nsec: 0 } }, times: [] }, 'repl_change: time 1.5 s is not a safe integer'],
    ['a size past off_t', { op: 'setattr', ref: obj.ref, set: { size: 2n ** 63n }, times: [] }, 'repl_change: size 9223372036854775808 past the largest file size'],
    ['a write past off_t', { op: 'write', ref: obj.ref, offset: 2n ** 63n - 2n, length: 2, data: null, times: [] }, 'repl_change: write of 2 bytes at 9223372036854775806 ends past the largest file size'],
  ]
  for (const [what, change, message] of cases) t.throws(() => changeBytes(change), { name: 'XdrEncodeError', code: 'XDR_ENCODE', message }, what)
  t.throws(() => changeBytes({ op: 'create', obj, exclusive: Buffer.alloc(7), times: [] }), { name: 'XdrEncodeError', message: 'opaque[8]: got 7 bytes' }, 'a 7-byte verifier')
  t.throws(() => changeBytes({ op: 'remove', dir: obj.dir, name: Buffer.alloc(256, 0x61), times: [] }), { name: 'XdrEncodeError', message: 'opaque<255>: length 256' })
})

t.test('random changes of every kind round-trip', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
  t.comment(`seed ${String(seed)}`)
  const next = randomChanges(seed)
  const ops = new Set<string>()
  let checked = 0
  for (let i = 0; i < 2000; i++) {
    const change = next()
    ops.add(change.op)
    const bytes = changeBytes(change)
    const back = changeFromBytes(bytes)
    // One assertion per change would swamp the output: compare, and assert only a difference.
    if (!isDeepStrictEqual(back, change) || bytes.length % 4 !== 0) {
      t.strictSame(back, change, `change ${String(i)} (${change.op})`)
      t.equal(bytes.length % 4, 0, 'XDR is whole words')
      break
    }
    checked++
  }
  t.equal(checked, 2000, 'every change came back equal')
  t.equal(ops.size, 10, 'every kind of change was drawn')
})
