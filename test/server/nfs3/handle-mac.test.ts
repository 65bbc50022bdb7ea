import { createHmac } from 'node:crypto'
import t from 'tap'
import { HANDLE_MAC_SIZE, HandleMac } from '../../../server/nfs3/handle-mac.ts'

/*
 * The handle MAC is computed in JavaScript (SHA-256's compression from the key's padded states):
 * it must be node:crypto's HMAC-SHA256, first 12 bytes, for any key and body, or handles made
 * before (or by another cluster member) stop verifying. Random keys of 1..200 bytes (both sides
 * of the 64-byte block, where RFC 2104 hashes the key first) and random bodies; TSNFS_SEED
 * replays a run.
 */
t.test('equals createHmac(sha256) on random keys and bodies', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
  t.comment(`seed ${seed} (TSNFS_SEED=${seed} replays it)`)
  let s = seed >>> 0
  const byte = (): number => {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0
    return s >>> 24
  }
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, byte))
  let bad = 0
  for (let k = 0; k < 200; k++) {
    const key = bytes(1 + ((byte() << 8) | byte()) % 200)
    const mac = new HandleMac(key)
    for (let j = 0; j < 25; j++) {
      const fh = bytes(32)
      const want = createHmac('sha256', key).update(fh.subarray(0, 20)).digest().subarray(0, HANDLE_MAC_SIZE)
      const out = Buffer.alloc(40, 0xaa)
      mac.write(fh, out, 7)
      if (!out.subarray(7, 7 + HANDLE_MAC_SIZE).equals(want) && bad++ === 0) t.fail(`key ${key.toString('hex')} body ${fh.subarray(0, 20).toString('hex')}: ${out.subarray(7, 19).toString('hex')}, wants ${want.toString('hex')} (seed ${seed})`)
      if (out.subarray(0, 7).some((b) => b !== 0xaa) || out.subarray(7 + HANDLE_MAC_SIZE).some((b) => b !== 0xaa)) t.fail('wrote outside its 12 bytes')
    }
  }
  t.equal(bad, 0, '5,000 MACs equal to createHmac\'s')
})

t.test('fixed keys: 64 bytes (no padding), 65 (hashed first), all ones', async (t) => {
  for (const key of [Buffer.alloc(64, 0x11), Buffer.alloc(65, 0x22), Buffer.alloc(16, 0xff)]) {
    const fh = Buffer.from('0100000000000007000000000000002a00000003' + '00'.repeat(12), 'hex')
    const out = Buffer.alloc(HANDLE_MAC_SIZE)
    new HandleMac(key).write(fh, out, 0)
    t.equal(out.toString('hex'), createHmac('sha256', key).update(fh.subarray(0, 20)).digest().subarray(0, 12).toString('hex'), `key of ${key.length} bytes`)
  }
})
