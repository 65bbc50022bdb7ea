/*
 * Entry and attribute replies (client/fuse/abi.ts) are cut from Node's
 * shared buffer pool, which holds whatever was there before: every byte of
 * them, padding and the attribute flags included, must be written, or the
 * kernel reads stale bytes (flags it does not expect: FUSE_ATTR_SUBMOUNT).
 */
import t from 'tap'
import { ATTR_OUT_SIZE, ENTRY_OUT_SIZE, attrOut, entryOut } from '../../client/fuse/abi.ts'
import type { FuseAttr } from '../../client/fuse/abi.ts'

const ATTR: FuseAttr = {
  ino: 7n, size: 3000n, blocks: 8n,
  atime: { s: 1, ns: 2 }, mtime: { s: 3, ns: 4 }, ctime: { s: 5, ns: 6 },
  mode: 0o100644, nlink: 1, uid: 1000, gid: 1000, rdev: 0, blksize: 4096,
}

/** Fill the rest of Node's pool, and the next one, with 0xff. */
function poison(): void {
  for (let i = 0; i < 2 * 8192 / 64; i++) Buffer.allocUnsafe(64).fill(0xff)
}

t.test('an entry reply: every byte written, flags and padding zero', async t => {
  for (let round = 0; round < 64; round++) {
    poison()
    const b = entryOut({ nodeid: 9n, generation: 1n, entryValidMs: 1500, attrValidMs: 2500, attr: ATTR })
    t.equal(b.length, ENTRY_OUT_SIZE)
    if (b.readUInt32LE(40 + 84) !== 0) {
      t.fail(`attribute flags ${b.readUInt32LE(40 + 84).toString(16)} in round ${String(round)}`)
      return
    }
    t.equal(b.readBigUInt64LE(0), 9n)
  }
  const b = entryOut({ nodeid: 9n, generation: 1n, entryValidMs: 1500, attrValidMs: 2500, attr: ATTR })
  t.equal(b.readBigUInt64LE(16), 1n, 'entry valid: 1 s')
  t.equal(b.readUInt32LE(32), 500_000_000, 'and 500 ms in ns')
  t.equal(b.readUInt32LE(40 + 60), 0o100644, 'mode')
})

t.test('an attribute reply: padding and flags zero', async t => {
  for (let round = 0; round < 64; round++) {
    poison()
    const b = attrOut(ATTR, 2500)
    t.equal(b.length, ATTR_OUT_SIZE)
    if (b.readUInt32LE(12) !== 0 || b.readUInt32LE(16 + 84) !== 0) {
      t.fail(`padding ${b.readUInt32LE(12).toString(16)}, flags ${b.readUInt32LE(16 + 84).toString(16)} in round ${String(round)}`)
      return
    }
  }
  const b = attrOut(ATTR, 2500)
  t.equal(b.readBigUInt64LE(0), 2n)
  t.equal(b.readUInt32LE(8), 500_000_000)
  t.equal(b.readBigUInt64LE(16 + 8), 3000n, 'size')
})
