/*
 * The good-handle cache of HandleCodec (server/nfs3/filehandle.ts) is one fixed table: handles
 * minted and verified keep no JavaScript object alive, however many pass through (a walk of a
 * large tree mints one per file), and a slot overwritten by another handle only costs a MAC.
 */
import t from 'tap'
import { getHeapStatistics } from 'node:v8'
import { FH_SIZE, HandleCodec } from '../../../server/nfs3/filehandle.ts'
import { collectGarbage } from '../../../common/idle.ts'

const MiB = 1024 * 1024

/** V8's live heap plus the memory of ArrayBuffers, after a full collection. */
function retained(): number {
  collectGarbage()
  return getHeapStatistics().used_heap_size + process.memoryUsage().arrayBuffers
}

t.test('65,000 handles minted and verified retain no more than the table', async (t) => {
  t.ok(collectGarbage(), 'this process can collect')
  const c = new HandleCodec(Buffer.alloc(32, 3))
  // The table is allocated with the codec: measure from after it.
  const before = retained()
  // Just under the 65,536 the Maps this replaced held each way before they were dropped whole.
  for (let i = 0; i < 65_000; i++) {
    const fh = c.encode(1, { id: BigInt(1_000_000 + i), gen: i })
    const copy = Buffer.from(fh)
    const d = c.decode(copy)
    if (!d.ok || d.ref.gen !== i) throw new Error(`handle ${String(i)} did not decode: ${JSON.stringify(d, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)}`)
  }
  const grown = retained() - before
  t.comment(`retained after 65,000 handles: ${(grown / MiB).toFixed(2)} MiB; table ${String(c.cacheBytes / MiB)} MiB`)
  t.equal(c.cacheBytes, 65_536 * FH_SIZE, 'the table: 65,536 handles of 32 bytes')
  // The Maps this replaced kept 65,536 Buffers and as many strings and objects each way (~30 MiB).
  t.ok(grown < 1 * MiB, `retained ${(grown / MiB).toFixed(2)} MiB < 1 MiB`)
})

t.test('a slot taken by another handle: both still decode, a forgery of either does not', async (t) => {
  const c = new HandleCodec(Buffer.alloc(32, 5))
  // Same export, file ids 2^32 apart: the same slot (the low 32 bits of the file id pick it).
  const a = c.encode(1, { id: 10n, gen: 1 })
  const b = c.encode(1, { id: 10n + 2n ** 32n, gen: 1 })
  for (let round = 0; round < 3; round++) {
    t.strictSame(c.decode(a), { ok: true, exportId: 1, ref: { id: 10n, gen: 1 } }, `a, round ${String(round)}`)
    t.strictSame(c.decode(b), { ok: true, exportId: 1, ref: { id: 10n + 2n ** 32n, gen: 1 } }, `b, round ${String(round)}`)
  }
  t.ok(c.encode(1, { id: 10n, gen: 1 }).equals(a), 'a minted again is the same handle')
  for (const good of [a, b]) {
    const forged = Buffer.from(good)
    forged[25]! ^= 0x40
    t.strictSame(c.decode(forged), { ok: false, reason: 'badhandle' }, 'MAC flipped')
    const moved = Buffer.from(good)
    moved[19]! ^= 1
    t.strictSame(c.decode(moved), { ok: false, reason: 'badhandle' }, 'generation changed under the same MAC')
  }
  // A handle returned to a caller is the caller's: changing it changes nothing cached.
  a.fill(0xff)
  t.strictSame(c.decode(c.encode(1, { id: 10n, gen: 1 })), { ok: true, exportId: 1, ref: { id: 10n, gen: 1 } })
})

t.test('a new key for an export empties the table: handles of the old key are refused', async (t) => {
  const c = new HandleCodec(Buffer.alloc(32, 6))
  c.setExportKey(4, Buffer.alloc(32, 1))
  const old = c.encode(4, { id: 99n, gen: 7 })
  t.strictSame(c.decode(old), { ok: true, exportId: 4, ref: { id: 99n, gen: 7 } })
  c.setExportKey(4, Buffer.alloc(32, 2))
  t.strictSame(c.decode(old), { ok: false, reason: 'badhandle' }, 'not answered from the table')
  c.setExportKey(4, 'pending')
  t.strictSame(c.decode(old), { ok: false, reason: 'pending', exportId: 4 })
  t.throws(() => c.encode(4, { id: 99n, gen: 7 }), /no handle key yet/)
})
