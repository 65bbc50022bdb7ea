import t from 'tap'
import { FRAGMENT_COST, RECORD_BUFFER_SIZE, RecordBufferPool, RecordReader, frameRecord, framedRecord, totalLength } from '../../xdr/record.ts'

function fragment(data: Buffer, last: boolean): Buffer {
  const h = Buffer.alloc(4)
  h.writeUInt32BE(((last ? 0x8000_0000 : 0) | data.length) >>> 0, 0)
  return Buffer.concat([h, data])
}

const payload = Buffer.from('0123456789abcdefghij')

t.test('frameRecord gives the last-fragment mark', async t => {
  const chunks = [Buffer.alloc(12), Buffer.alloc(28)]
  t.strictSame(frameRecord(chunks), Buffer.from([0x80, 0, 0, 0x28]))
  t.strictSame(frameRecord(chunks, 40), Buffer.from([0x80, 0, 0, 0x28]))
  t.equal(totalLength(chunks), 40)
  t.throws(() => frameRecord([], 0x8000_0000), RangeError)
})

t.test('framedRecord: the mark and the chunks in one buffer, byte for byte what the corked writes send', async t => {
  const chunks = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defgh')]
  const one = framedRecord(chunks)
  t.strictSame(one, Buffer.concat([frameRecord(chunks), ...chunks]))
  t.strictSame(one, Buffer.from([0x80, 0, 0, 8, ...Buffer.from('abcdefgh')]))
  t.strictSame(framedRecord([]), Buffer.from([0x80, 0, 0, 0]))
  t.throws(() => framedRecord([], 0x8000_0000), RangeError)
})

t.test('a record split at every byte boundary', async t => {
  const wire = fragment(payload, true)
  for (let i = 0; i <= wire.length; i++) {
    const r = new RecordReader(1024)
    const a = r.push(wire.subarray(0, i))
    const b = r.push(wire.subarray(i))
    t.strictSame([...a, ...b], [payload], `split at ${i}`)
    t.equal(r.buffered, 0)
  }
})

t.test('byte by byte', async t => {
  const wire = Buffer.concat([fragment(payload, true), fragment(Buffer.from('xy'), true)])
  const r = new RecordReader(1024)
  const out: Buffer[] = []
  for (const byte of wire) out.push(...r.push(Buffer.from([byte])))
  t.strictSame(out, [payload, Buffer.from('xy')])
})

t.test('a record in one chunk is a view, not a copy', async t => {
  const wire = fragment(payload, true)
  const [rec] = new RecordReader(1024).push(wire)
  t.ok(rec)
  t.equal(rec!.buffer, wire.buffer)
  t.equal(rec!.byteOffset, wire.byteOffset + 4)
})

t.test('multi-fragment records, including zero-length fragments', async t => {
  const wire = Buffer.concat([
    fragment(Buffer.alloc(0), false),
    fragment(payload.subarray(0, 5), false),
    fragment(Buffer.alloc(0), false),
    fragment(payload.subarray(5), true),
    fragment(Buffer.alloc(0), true),
  ])
  for (let i = 0; i <= wire.length; i++) {
    const r = new RecordReader(1024)
    const out = [...r.push(wire.subarray(0, i)), ...r.push(wire.subarray(i))]
    t.strictSame(out, [payload, Buffer.alloc(0)], `split at ${i}`)
  }
})

t.test('several records in one chunk', async t => {
  const wire = Buffer.concat([fragment(Buffer.from('a'), true), fragment(Buffer.from('bb'), true), fragment(Buffer.from('ccc'), true)])
  t.strictSame(new RecordReader(1024).push(wire), [Buffer.from('a'), Buffer.from('bb'), Buffer.from('ccc')])
})

t.test('oversize rejected from the header alone, before the data arrives', async t => {
  const r = new RecordReader(100)
  t.throws(() => r.push(Buffer.from([0x80, 0, 0, 101])), { code: 'RECORD_TOO_LARGE' })
  const huge = new RecordReader(1 << 20)
  t.throws(() => huge.push(Buffer.from([0xff, 0xff, 0xff, 0xff])), { code: 'RECORD_TOO_LARGE' })
})

t.test('oversize across fragments rejected at the fragment that crosses the limit', async t => {
  // Two fragments are charged 2 * FRAGMENT_COST on top of their bytes.
  const r = new RecordReader(10 + 2 * FRAGMENT_COST)
  t.strictSame(r.push(fragment(Buffer.alloc(6), false)), [])
  t.throws(() => r.push(Buffer.from([0x80, 0, 0, 5])), { code: 'RECORD_TOO_LARGE' })
  const ok = new RecordReader(10 + 2 * FRAGMENT_COST)
  t.strictSame(ok.push(Buffer.concat([fragment(Buffer.alloc(6), false), fragment(Buffer.alloc(4), true)])), [Buffer.alloc(10)])
})

t.test('every fragment is charged against the limit, so tiny fragments cannot pile up', async (t) => {
  const max = 10 * FRAGMENT_COST
  const r = new RecordReader(max)
  const frag = Buffer.from([0, 0, 0, 1, 0x41]) // a one-byte, not-last fragment
  let fragments = 0
  t.throws(() => {
    for (;;) {
      r.push(frag)
      fragments++
    }
  }, { code: 'RECORD_TOO_LARGE' })
  t.equal(fragments, 9, 'the tenth fragment of 1 byte exceeds 10 fragments worth of budget')
  const empty = new RecordReader(max)
  t.throws(() => {
    for (let i = 0; i < 1000; i++) empty.push(Buffer.from([0, 0, 0, 0]))
  }, { code: 'RECORD_TOO_LARGE' }, 'empty fragments are charged too')
})

t.test('pool mode: large spanning records reuse released buffers; views and small records are never pooled', async t => {
  const r = new RecordReader(2 * 1024 * 1024, { pool: true })
  const body = Buffer.alloc(200 * 1024, 5)
  const wire = Buffer.concat([frameRecord([body]), body])
  const feed = (): Buffer => {
    let out: Buffer[] = []
    for (let i = 0; i < wire.length; i += 65536) out = out.concat(r.push(wire.subarray(i, i + 65536)))
    t.equal(out.length, 1)
    return out[0] as Buffer
  }
  const first = feed()
  t.ok(first.equals(body))
  r.release(first)
  const second = feed()
  t.equal(second.buffer, first.buffer, 'the released buffer came back')
  const third = feed()
  t.not(third.buffer, second.buffer, 'a buffer still in use is not handed out twice')
  t.ok(third.equals(body) && second.equals(body))
  const small = Buffer.from([1, 2, 3, 4])
  const [rec] = r.push(Buffer.concat([frameRecord([small]), small]))
  r.release(rec as Buffer)
  t.ok(rec?.equals(small))
  t.equal(r.buffered, 0)
})

/** Feeds `wire` the way a socket with `onread` would: each read fills (part of) the buffer readTarget() names. */
function feedDirect(r: RecordReader, wire: Buffer, scratch: Buffer, maxRead: number): { records: Buffer[]; direct: number } {
  const records: Buffer[] = []
  let direct = 0
  let at = 0
  while (at < wire.length) {
    const target = r.readTarget(scratch)
    const n = Math.min(target.length, maxRead, wire.length - at)
    wire.copy(target, 0, at, at + n)
    if (target !== scratch) direct += n
    at += n
    records.push(...r.pushRead(target, n))
    // The scratch may be reused at once: scribble over it to prove nothing kept a view of it.
    scratch.fill(0xee)
  }
  return { records, direct }
}

t.test('direct reads: a large record is read straight into its pooled buffer, small ones copied out of the scratch', async t => {
  const r = new RecordReader(4 * 1024 * 1024, { pool: true })
  const big = Buffer.alloc(1024 * 1024)
  for (let i = 0; i < big.length; i++) big[i] = i & 0xff
  const small = Buffer.from('hello, world')
  const wire = Buffer.concat([frameRecord([small]), small, frameRecord([big]), big, frameRecord([small]), small])
  const scratch = Buffer.alloc(64 * 1024)
  const { records, direct } = feedDirect(r, wire, scratch, 65536)
  t.equal(records.length, 3)
  t.ok(records[0]?.equals(small) && records[2]?.equals(small), 'small records intact after the scratch was overwritten')
  t.ok(records[1]?.equals(big), 'the large record is byte-exact')
  t.ok(direct > big.length - 65536, `most of the large record was read directly (${direct} bytes)`)
  t.equal(r.buffered, 0)
  r.release(records[1] as Buffer)
  // The same again with tiny reads (a trickling peer): still exact, and the released buffer is reused.
  const again = feedDirect(r, wire, scratch, 777)
  t.ok(again.records[1]?.equals(big))
  t.equal(again.records[1]?.buffer, records[1]?.buffer, 'the pooled buffer came back')
})

t.test('direct reads: multi-fragment records and the size limit still apply', async t => {
  const r = new RecordReader(300 * 1024, { pool: true })
  const a = Buffer.alloc(100 * 1024, 1)
  const b = Buffer.alloc(100 * 1024, 2)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(a.length, 0) // not the last fragment
  const wire = Buffer.concat([head, a, frameRecord([b]), b])
  const { records } = feedDirect(r, wire, Buffer.alloc(8192), 65536)
  t.equal(records.length, 1)
  t.ok(records[0]?.equals(Buffer.concat([a, b])))
  const tooBig = Buffer.alloc(4)
  tooBig.writeUInt32BE((0x8000_0000 | (400 * 1024)) >>> 0, 0)
  t.throws(() => feedDirect(r, tooBig, Buffer.alloc(8192), 65536), { code: 'RECORD_TOO_LARGE' })
})

t.test('a shared record pool hands buffers between readers and stays bounded', async t => {
  const pool = new RecordBufferPool({ maxBytes: RECORD_BUFFER_SIZE })
  const r1 = new RecordReader(2 * 1024 * 1024, { pool })
  const r2 = new RecordReader(2 * 1024 * 1024, { pool })
  const body = Buffer.alloc(128 * 1024, 9)
  const wire = Buffer.concat([frameRecord([body]), body])
  const [x] = feedDirect(r1, wire, Buffer.alloc(65536), 65536).records
  const [y] = feedDirect(r1, wire, Buffer.alloc(65536), 65536).records
  r1.release(x as Buffer)
  r1.release(y as Buffer)
  t.equal(pool.size, 1, 'kept at most one')
  const [z] = feedDirect(r2, wire, Buffer.alloc(65536), 65536).records
  t.equal(z?.buffer, x?.buffer, 'the other reader got the pooled buffer')
  t.equal(pool.size, 0)
})

t.test('the record pool is bounded in bytes and trim() keeps only the floor', async t => {
  const pool = new RecordBufferPool({ maxBytes: 3.5 * RECORD_BUFFER_SIZE, floorBytes: RECORD_BUFFER_SIZE })
  const taken = [pool.take(), pool.take(), pool.take(), pool.take(), pool.take()]
  t.equal(pool.allocations, 5, 'an empty pool allocates')
  for (const b of taken) {
    t.equal(b.length, RECORD_BUFFER_SIZE)
    pool.give(b)
  }
  t.equal(pool.size, 3, 'whole buffers within 3.5 buffers of bytes')
  t.equal(pool.bytes, 3 * RECORD_BUFFER_SIZE)
  t.equal(pool.trim(), 2 * RECORD_BUFFER_SIZE)
  t.equal(pool.size, 1, 'the floor stays')
  t.equal(pool.take(), taken[0], 'the kept buffer is reused')
  t.equal(pool.allocations, 5)
})

t.test('direct reads: bare headers of large fragments reserve no record buffer', async t => {
  const pool = new RecordBufferPool({ maxBytes: 4 * RECORD_BUFFER_SIZE })
  const r = new RecordReader(4 * 1024 * 1024, { pool })
  const scratch = Buffer.alloc(65536)
  const head = Buffer.alloc(4)
  head.writeUInt32BE((0x8000_0000 | (1024 * 1024)) >>> 0, 0)
  head.copy(r.readTarget(scratch))
  t.same(r.pushRead(scratch, 4), [])
  t.equal(r.readTarget(scratch), scratch, 'still reading into the scratch: nothing reserved for 4 bytes')
  const some = Buffer.alloc(40 * 1024, 1) // more than a 32nd of the fragment
  some.copy(scratch)
  t.same(r.pushRead(scratch, some.length), [])
  t.not(r.readTarget(scratch), scratch, 'with a 32nd of the fragment here, the rest is read directly')
  t.equal(r.buffered, 40 * 1024)
})
