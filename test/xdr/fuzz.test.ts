import { readdirSync } from 'node:fs'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { MOUNT_PROGRAM } from '../../xdr/generated/mount.ts'
import { NFS_PROGRAM, type READDIR3res, type WRITE3args, type fattr3, fattr3 as fattr3Codec, type sattr3, sattr3 as sattr3Codec } from '../../xdr/generated/nfs3.ts'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import { NLM_PROG } from '../../xdr/generated/nlm.ts'
import { SM_PROG } from '../../xdr/generated/nsm.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { XdrDecodeError } from '../../xdr/runtime/errors.ts'
import type { ProgramDef } from '../../xdr/runtime/program.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { readFixture } from '../fixtures/wire/check.ts'
import { WIRE_DIR } from '../fixtures/wire/make.ts'

/*
 * Decoders face hostile bytes: whatever arrives, decoding either succeeds
 * with the cursor inside the buffer or throws XdrDecodeError, never anything
 * else (a RangeError would escape as a server fault). Seeded: reruns are identical.
 */

const RUNS = 2000
const SEED = 0x5eed_4506

interface Proc {
  id: string
  args: Codec<unknown>
  res: Codec<unknown>
}
const programs: [string, ProgramDef][] = [
  ['portmap', PMAP_PROG],
  ['mount', MOUNT_PROGRAM],
  ['nfs3', NFS_PROGRAM],
  ['nlm', NLM_PROG],
  ['nsm', SM_PROG],
]
const procs: Proc[] = programs.flatMap(([, p]) =>
  Object.values(p.versions).flatMap((v) => Object.values(v.procs).map((d) => ({ id: `${v.name}.${d.name}`, args: d.args as Codec<unknown>, res: d.res as Codec<unknown> }))),
)

/**
 * KNOWN BUG, reported: xdr/runtime/reader.ts fixedOpaque computes the padded length with a
 * 32-bit `&`, so an opaque<> length >= 0x7FFFFFFD moves the cursor backwards (then DataView
 * throws RangeError) or not at all. An escape that disappears when the same bytes are decoded
 * with the fix below is counted as that bug and asserted with `todo` until the fix lands;
 * every other escape fails the test.
 */
class FixedReader extends XdrReader {
  override fixedOpaque(n: number): Buffer {
    const padded = n + ((4 - (n % 4)) % 4)
    if (this.end - this.pos < padded) throw new XdrDecodeError('XDR_SHORT_BUFFER', 'opaque[]')
    const v = this.buf.subarray(this.pos, this.pos + n)
    this.pos += padded
    return v
  }
}

/** 'ok' | 'rejected' | a description of what escaped. */
function tryDecode(codec: Codec<unknown>, bytes: Uint8Array, Reader: typeof XdrReader = XdrReader): string {
  const r = new Reader(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  try {
    codec.decode(r)
  } catch (e) {
    if (e instanceof XdrDecodeError) return 'rejected'
    return `threw ${e instanceof Error ? e.name : typeof e}: ${String(e)}`
  }
  return r.pos >= 0 && r.pos <= r.end ? 'ok' : `cursor out of bounds: ${r.pos}`
}
const fine = (out: string): boolean => out === 'ok' || out === 'rejected'

function fuzz(t: Test, name: string, arb: fc.Arbitrary<[Codec<unknown>, Uint8Array, string]>): void {
  let knownBug = 0
  const result = fc.check(
    fc.property(arb, ([codec, bytes]) => {
      if (fine(tryDecode(codec, bytes))) return true
      if (fine(tryDecode(codec, bytes, FixedReader))) {
        knownBug++
        return true
      }
      return false
    }),
    { numRuns: RUNS, seed: SEED },
  )
  t.notOk(result.failed, `${name}: ${result.failed ? fc.defaultReportMessage(result) ?? '' : 'never escapes XdrDecodeError'}`)
  t.equal(knownBug, 0, `${name}: no input hits the fixedOpaque overflow`)
}

/** Words biased to small values (counts, enums, bools, lengths) so decoding gets deep. */
const word = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 3 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 80 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
)
const wordsBytes = fc.tuple(fc.array(word, { maxLength: 96 }), fc.uint8Array({ maxLength: 3 })).map(([ws, tail]) => {
  const b = Buffer.alloc(ws.length * 4 + tail.length)
  ws.forEach((w, i) => b.writeUInt32BE(w, i * 4))
  b.set(tail, ws.length * 4)
  return new Uint8Array(b)
})

t.test('random bytes into every args and result codec', async (t) => {
  // portmap, mount v3+v1, nfs3, NLM v1 (16) + v3 (20) + v4 (20), NSM (7)
  t.equal(procs.length, 5 + 12 + 22 + 16 + 20 + 20 + 7)
  const codecs = procs.flatMap((p) => [
    [p.args, `${p.id} args`] as const,
    [p.res, `${p.id} res`] as const,
  ])
  fuzz(t, 'random bytes', fc.tuple(fc.constantFrom(...codecs), fc.uint8Array({ maxLength: 300 })).map(([[c, n], b]) => [c, b, n]))
  fuzz(t, 'random small words', fc.tuple(fc.constantFrom(...codecs), wordsBytes).map(([[c, n], b]) => [c, b, n]))
})

/** The golden fixtures, each with its codec, found from the file name: <prog>-<proc>-<call|reply>[-variant]. */
function seeds(): [Codec<unknown>, Uint8Array, string][] {
  const table: Record<string, readonly Proc[]> = {
    portmap: procs.filter((p) => p.id.startsWith('PMAP_VERS.')),
    mount3: procs.filter((p) => p.id.startsWith('MOUNT_V3.')),
    mount1: procs.filter((p) => p.id.startsWith('MOUNT_V1.')),
    nfs3: procs.filter((p) => p.id.startsWith('NFS_V3.')),
  }
  const out: [Codec<unknown>, Uint8Array, string][] = []
  for (const f of readdirSync(WIRE_DIR).filter((f) => f.endsWith('.hex'))) {
    const [prog = '', proc = '', dir = ''] = f.slice(0, -4).split('-')
    const p = table[prog]?.find((x) => x.id.toLowerCase().endsWith(`_${proc}`))
    if (p === undefined) throw new Error(`no procedure for ${f}`)
    out.push([dir === 'call' ? p.args : p.res, new Uint8Array(readFixture(f.slice(0, -4))), f])
  }
  return out
}

t.test('mutated golden encodings: bit flips, truncation, appended bytes, overwritten words', async (t) => {
  const all = seeds()
  t.ok(all.length >= 100, `${all.length} seeds`)
  for (const [codec, bytes, name] of all) t.equal(tryDecode(codec, bytes), 'ok', `${name} decodes unmutated`)
  const seed = fc.constantFrom(...all)
  const flip = fc.tuple(seed, fc.nat(), fc.integer({ min: 1, max: 4 })).map(([[c, b, n], at, count]): [Codec<unknown>, Uint8Array, string] => {
    const m = new Uint8Array(b)
    for (let i = 0; i < count && m.length > 0; i++) {
      const bit = (at * (i + 1) * 2_654_435_761) % (m.length * 8)
      m[bit >> 3] = (m[bit >> 3] ?? 0) ^ (1 << (bit & 7))
    }
    return [c, m, n]
  })
  const truncate = fc.tuple(seed, fc.nat()).map(([[c, b, n], at]): [Codec<unknown>, Uint8Array, string] => [c, b.subarray(0, b.length === 0 ? 0 : at % b.length), n])
  const append = fc.tuple(seed, fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([[c, b, n], extra]): [Codec<unknown>, Uint8Array, string] => [c, new Uint8Array([...b, ...extra]), n])
  const overwrite = fc.tuple(seed, fc.nat(), word).map(([[c, b, n], at, w]): [Codec<unknown>, Uint8Array, string] => {
    const m = Buffer.from(b)
    if (m.length >= 4) m.writeUInt32BE(w, (at % (m.length >> 2)) * 4)
    return [c, new Uint8Array(m), n]
  })
  fuzz(t, 'bit flips', flip)
  fuzz(t, 'truncation', truncate)
  fuzz(t, 'appended bytes', append)
  fuzz(t, 'overwritten words', overwrite)
})

t.test('appended bytes are left for done() to reject', async (t) => {
  for (const [codec, bytes, name] of seeds()) {
    const r = new XdrReader(Buffer.concat([bytes, Buffer.from([0, 0, 0, 1])]))
    codec.decode(r)
    t.throws(() => { r.done() }, { code: 'XDR_TRAILING_BYTES' }, name)
  }
})

// Round trips of random valid values through the generated codecs.
/** Plain objects, like the decoders build (fast-check may otherwise use null prototypes). */
const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(model, { noNullPrototype: true })
const u32 = fc.integer({ min: 0, max: 0xffff_ffff })
const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn })
const buf = (max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a))
const fixedBuf = (n: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: n, maxLength: n }).map((a) => Buffer.from(a))
const time = rec({ seconds: u32, nseconds: u32 })
const fattr3Arb: fc.Arbitrary<fattr3> = rec({
  type: fc.constantFrom(1, 2, 3, 4, 5, 6, 7),
  mode: u32,
  nlink: u32,
  uid: u32,
  gid: u32,
  size: u64,
  used: u64,
  rdev: rec({ specdata1: u32, specdata2: u32 }),
  fsid: u64,
  fileid: u64,
  atime: time,
  mtime: time,
  ctime: time,
})
const setTime = <K extends 'atime' | 'mtime'>(k: K): fc.Arbitrary<{ set_it: 0 | 1 } | ({ set_it: 2 } & Record<K, { seconds: number; nseconds: number }>)> =>
  fc.oneof(
    fc.constantFrom({ set_it: 0 as const }, { set_it: 1 as const }),
    time.map((tm) => ({ set_it: 2 as const, [k]: tm }) as { set_it: 2 } & Record<K, { seconds: number; nseconds: number }>),
  )
const sattr3Arb: fc.Arbitrary<sattr3> = rec({
  mode: fc.option(u32, { nil: null }),
  uid: fc.option(u32, { nil: null }),
  gid: fc.option(u32, { nil: null }),
  size: fc.option(u64, { nil: null }),
  atime: setTime('atime'),
  mtime: setTime('mtime'),
})
const fh = rec({ data: buf(64) })
const write3Arb: fc.Arbitrary<WRITE3args> = rec({
  file: fh,
  offset: u64,
  count: u32,
  stable: fc.constantFrom(0, 1, 2),
  data: fc.oneof(buf(40), buf(1100)),
})
const readdirArb: fc.Arbitrary<READDIR3res> = fc.oneof(
  rec({
    status: fc.constant(0 as const),
    resok: rec({
      dir_attributes: fc.option(fattr3Arb, { nil: null }),
      cookieverf: fixedBuf(8),
      reply: rec({ entries: fc.array(rec({ fileid: u64, name: buf(20), cookie: u64 }), { maxLength: 6 }), eof: fc.boolean() }),
    }),
  }),
  rec({ status: fc.constantFrom(2, 13, 20, 10003), resfail: rec({ dir_attributes: fc.option(fattr3Arb, { nil: null }) }) }),
)

function roundTrip<T>(t: Test, name: string, codec: Codec<T>, arb: fc.Arbitrary<T>): void {
  const result = fc.check(
    fc.property(arb, (v) => {
      const w = new XdrWriter(32)
      codec.encode(w, v)
      const bytes = w.toBuffer()
      if (bytes.length % 4 !== 0) return false
      const r = new XdrReader(bytes)
      const back = codec.decode(r)
      r.done()
      return isDeepStrictEqual(back, v)
    }),
    { numRuns: 500, seed: SEED },
  )
  t.notOk(result.failed, `${name} round-trips${result.failed ? `: ${fc.defaultReportMessage(result) ?? ''}` : ''}`)
}

t.test('random valid values round-trip', async (t) => {
  const P = NFS_PROGRAM.versions.NFS_V3.procs
  roundTrip(t, 'fattr3', fattr3Codec, fattr3Arb)
  roundTrip(t, 'sattr3', sattr3Codec, sattr3Arb)
  roundTrip(t, 'WRITE3args', P.NFSPROC3_WRITE.args, write3Arb)
  roundTrip(t, 'READDIR3res', P.NFSPROC3_READDIR.res, readdirArb)
})
