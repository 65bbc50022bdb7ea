import t from 'tap'
import { XdrReader } from '../../xdr/runtime/reader.ts'

t.test('opaque<4> rejects a longer length before reading data', async t => {
  const r = new XdrReader(Buffer.from([0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]))
  t.throws(() => r.opaque(4), { code: 'XDR_TOO_LONG' })
})
