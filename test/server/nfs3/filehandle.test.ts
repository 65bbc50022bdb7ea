import t from 'tap'
import { createHmac } from 'node:crypto'
import { FH_SIZE, HandleCodec } from '../../../server/nfs3/filehandle.ts'

const key = Buffer.alloc(32, 7)
const codec = new HandleCodec(key)

t.test('round trip, layout and determinism', async (t) => {
  const ref = { id: 0x0102030405060708n, gen: 0xdeadbeef }
  const fh = codec.encode(0xcafebabe, ref)
  t.equal(fh.length, FH_SIZE)
  t.equal(fh.subarray(0, 20).toString('hex'), '01000000' + 'cafebabe' + '0102030405060708' + 'deadbeef')
  t.strictSame(codec.decode(fh), { ok: true, exportId: 0xcafebabe, ref })
  t.ok(codec.encode(0xcafebabe, ref).equals(fh), 'same input, same handle')
  t.ok(new HandleCodec(Buffer.from(key)).encode(0xcafebabe, ref).equals(fh), 'same key after restart, same handle')
  for (const [exp, id, gen] of [[0, 0n, 0], [0xffffffff, 0xffffffffffffffffn, 0xffffffff], [1, 1n, 1]] as const) {
    t.strictSame(codec.decode(codec.encode(exp, { id, gen })), { ok: true, exportId: exp, ref: { id, gen } })
  }
})

t.test('decodes a view into a larger buffer', async (t) => {
  const fh = codec.encode(9, { id: 42n, gen: 3 })
  const big = Buffer.concat([Buffer.from([1, 2, 3]), fh, Buffer.from([4])])
  t.strictSame(codec.decode(big.subarray(3, 3 + FH_SIZE)), { ok: true, exportId: 9, ref: { id: 42n, gen: 3 } })
  t.strictSame(codec.decode(new Uint8Array(fh)), { ok: true, exportId: 9, ref: { id: 42n, gen: 3 } })
})

t.test('every single-bit flip is rejected', async (t) => {
  const fh = codec.encode(0x11223344, { id: 123456789n, gen: 5 })
  let rejected = 0
  for (let bit = 0; bit < fh.length * 8; bit++) {
    const bad = Buffer.from(fh)
    bad[bit >> 3]! ^= 0x80 >> (bit & 7)
    if (!codec.decode(bad).ok) rejected++
  }
  t.equal(rejected, FH_SIZE * 8)
  t.strictSame(codec.decode(Buffer.from(fh).fill(0, 20)), { ok: false, reason: 'badhandle' })
})

t.test('a handle made with another key is rejected', async (t) => {
  const other = new HandleCodec(Buffer.alloc(32, 8))
  t.strictSame(codec.decode(other.encode(1, { id: 2n, gen: 3 })), { ok: false, reason: 'badhandle' })
})

t.test('wrong lengths are rejected', async (t) => {
  const fh = codec.encode(1, { id: 2n, gen: 3 })
  for (const len of [0, 31, 33, 64, 65]) {
    const b = Buffer.alloc(len)
    fh.copy(b, 0, 0, Math.min(len, FH_SIZE))
    t.strictSame(codec.decode(b), { ok: false, reason: 'badhandle' }, `length ${len}`)
  }
})

t.test('bad keys and out-of-range fields are bugs: RangeError', async (t) => {
  t.throws(() => new HandleCodec(Buffer.alloc(15)), RangeError)
  t.throws(() => codec.encode(-1, { id: 1n, gen: 0 }), RangeError)
  t.throws(() => codec.encode(2 ** 32, { id: 1n, gen: 0 }), RangeError)
  t.throws(() => codec.encode(1.5, { id: 1n, gen: 0 }), RangeError)
  t.throws(() => codec.encode(1, { id: -1n, gen: 0 }), RangeError)
  t.throws(() => codec.encode(1, { id: 2n ** 64n, gen: 0 }), RangeError)
  t.throws(() => codec.encode(1, { id: 1n, gen: -1 }), RangeError)
  t.throws(() => codec.encode(1, { id: 1n, gen: 2 ** 32 }), RangeError)
})

t.test('the verified-handle cache never admits a forgery, and survives overflow', async (t) => {
  const c = new HandleCodec(Buffer.alloc(32, 9))
  const fh = c.encode(1, { id: 77n, gen: 2 })
  const forged = Buffer.from(fh)
  forged[31]! ^= 1
  for (let i = 0; i < 3; i++) t.strictSame(c.decode(forged), { ok: false, reason: 'badhandle' })
  const fresh = new HandleCodec(Buffer.alloc(32, 9))
  t.strictSame(fresh.decode(fh), { ok: true, exportId: 1, ref: { id: 77n, gen: 2 } }, 'verified by MAC')
  t.strictSame(fresh.decode(fh), { ok: true, exportId: 1, ref: { id: 77n, gen: 2 } }, 'then from the cache')
  const minted = c.encode(1, { id: 77n, gen: 2 })
  minted[0] = 9
  t.ok(c.encode(1, { id: 77n, gen: 2 }).equals(fh), 'a caller changing its handle does not change the cached one')
  t.notOk(c.encode(1, { id: 77n, gen: 3 }).equals(fh), 'a new generation is a new handle')
  for (let i = 0; i < 70_000; i++) c.encode(2, { id: BigInt(i), gen: 1 })
  t.strictSame(c.decode(fh), { ok: true, exportId: 1, ref: { id: 77n, gen: 2 } })
  t.strictSame(c.decode(forged), { ok: false, reason: 'badhandle' })
})

/*
 * Handles outlive a server (clients hold them across restarts and upgrades; a cluster's servers
 * share one key), so the MAC must stay byte for byte HMAC-SHA256 over bytes 0..19, whatever
 * computes it: here checked against node:crypto's createHmac for keys shorter than, equal to
 * and longer than SHA-256's 64-byte block (RFC 2104 §2 hashes the long ones first), with the
 * server's key and with an export's own key.
 */
t.test('the MAC is HMAC-SHA256 of the body, for every key length', async (t) => {
  const ref = { id: 0x1122334455667788n, gen: 42 }
  for (const length of [16, 31, 32, 63, 64, 65, 100, 200]) {
    const k = Buffer.from(Array.from({ length }, (_, i) => (i * 37 + length) & 0xff))
    const fh = new HandleCodec(k).encode(77, ref)
    const want = createHmac('sha256', k).update(fh.subarray(0, 20)).digest().subarray(0, 12)
    t.equal(fh.subarray(20).toString('hex'), want.toString('hex'), `server key of ${length} bytes`)
    const c = new HandleCodec(key)
    c.setExportKey(78, k)
    const own = c.encode(78, ref)
    const wantOwn = createHmac('sha256', k).update(own.subarray(0, 20)).digest().subarray(0, 12)
    t.equal(own.subarray(20).toString('hex'), wantOwn.toString('hex'), `export key of ${length} bytes`)
    // One made elsewhere with the same key (an older server, another cluster member) verifies.
    const other = Buffer.from(fh)
    other.writeUInt32BE(9, 16)
    createHmac('sha256', k).update(other.subarray(0, 20)).digest().copy(other, 20, 0, 12)
    t.strictSame(new HandleCodec(k).decode(other), { ok: true, exportId: 77, ref: { id: ref.id, gen: 9 } })
  }
})

/*
 * writeInto mints into a caller's buffer (READDIRPLUS writes its handles straight into the reply):
 * the same 32 bytes as encode, whether the handle is minted (a miss: HMAC) or copied from the
 * table (a hit), at any offset, touching nothing around them; no room is a bug (RangeError).
 */
t.test('writeInto writes what encode returns, minted or cached, and nothing else', async (t) => {
  const key = Buffer.alloc(32, 9)
  const c = new HandleCodec(key)
  const reference = new HandleCodec(key)
  const refs = [{ id: 7n, gen: 0 }, { id: 2n ** 64n - 1n, gen: 0xffff_ffff }, { id: 7n + 2n ** 32n, gen: 3 }, { id: 7n, gen: 0 }]
  for (const [i, ref] of refs.entries()) {
    for (const pass of ['miss', 'hit']) {
      const out = Buffer.alloc(FH_SIZE + 13, 0xa5)
      t.equal(c.writeInto(2, ref, out, 5), FH_SIZE, `${String(i)} ${pass}: length`)
      const want = reference.encode(2, ref)
      t.ok(out.subarray(5, 5 + FH_SIZE).equals(want), `${String(i)} ${pass}: the bytes encode gives`)
      t.ok(out.subarray(0, 5).equals(Buffer.alloc(5, 0xa5)) && out.subarray(5 + FH_SIZE).equals(Buffer.alloc(8, 0xa5)), `${String(i)} ${pass}: nothing around it touched`)
      const createdMac = createHmac('sha256', key).update(want.subarray(0, 20)).digest().subarray(0, 12)
      t.ok(want.subarray(20).equals(createdMac), `${String(i)} ${pass}: its MAC is HMAC-SHA256`)
      t.strictSame(c.decode(out.subarray(5, 5 + FH_SIZE)), { ok: true, exportId: 2, ref }, `${String(i)} ${pass}: decodes`)
    }
  }
  t.throws(() => c.writeInto(2, { id: 1n, gen: 0 }, Buffer.alloc(FH_SIZE + 3), 4), RangeError, 'one byte short')
  t.throws(() => c.writeInto(2, { id: 1n, gen: 0 }, Buffer.alloc(FH_SIZE), -1), RangeError, 'negative offset')
  c.setExportKey(4, 'pending')
  t.throws(() => c.writeInto(4, { id: 1n, gen: 0 }, Buffer.alloc(FH_SIZE), 0), /no handle key yet/, 'an export whose key is pending mints nothing')
})
