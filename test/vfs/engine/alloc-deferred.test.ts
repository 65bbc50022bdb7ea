/*
 * Deferred reuse (txn.ts): a block freed in transaction T is free in the bitmap T writes but is
 * not handed out again before T is durable; a freed metadata block is revoked. Transactions are
 * the DirectTxnManager's, whose commit runs the afterCommit callbacks.
 */
import t from 'tap'
import type { MetaTxn } from '../../../vfs/engine/txn/txn.ts'
import { LAYOUTS, freeLists, fsck, makeImage, openAlloc } from './alloc-helpers.ts'

/** h, with every revoke recorded. */
function recording(h: MetaTxn, revoked: number[]): MetaTxn {
  return {
    tid: h.tid,
    get: (b) => h.get(b),
    fresh: (b) => h.fresh(b),
    dirty: (b) => {
      h.dirty(b)
    },
    revoke: (b) => {
      revoked.push(b)
      h.revoke(b)
    },
    afterCommit: (fn) => {
      h.afterCommit(fn)
    },
  }
}

for (const layout of LAYOUTS) {
  t.test(`a block freed in T comes back only after T commits (${layout.name})`, async (t) => {
    const file = makeImage(t, layout)
    const before = freeLists(file)
    const o = await openAlloc(file, layout.blockSize)
    t.teardown(o.close)
    const { alloc, txm } = o

    let h = await txm.begin()
    const a = await alloc.allocBlocks(h, 0, 10)
    t.equal(a.count, 10, `run of 10 at ${a.start}`)
    txm.end(h)
    await txm.waitDurable(h.tid)

    h = await txm.begin()
    const revoked: number[] = []
    await alloc.freeBlocks(recording(h, revoked), a.start, 10, true)
    t.strictSame(revoked, Array.from({ length: 10 }, (_, i) => a.start + i), 'a metadata free revokes each block')
    t.equal(alloc.busyBlocks, 10, 'ten blocks busy until commit')
    const freeNow = alloc.groups.freeBlocks
    // Asked for exactly the freed run: it must come from elsewhere.
    const b = await alloc.allocBlocks(h, a.start, 10)
    t.ok(b.start + b.count <= a.start || b.start >= a.start + 10, `same transaction: got ${b.start}+${b.count}, not ${a.start}+10`)
    // Another operation joining the same running transaction sees them busy too.
    const h2 = await txm.begin()
    t.equal(h2.tid, h.tid, 'second handle joined the same transaction')
    const c = await alloc.allocBlocks(h2, a.start, 1)
    t.ok(c.start < a.start || c.start >= a.start + 10, `second handle: got ${c.start}, not inside ${a.start}+10`)
    t.equal(alloc.groups.freeBlocks, freeNow - 11, 'the descriptors count the freed run free')
    txm.end(h2)
    txm.end(h)
    await txm.waitDurable(h.tid)
    t.equal(alloc.busyBlocks, 0, 'nothing busy after commit')

    h = await txm.begin()
    const d = await alloc.allocBlocks(h, a.start, 10)
    t.strictSame(d, { start: a.start, count: 10 }, 'after commit the goal run is handed out again')
    const plain: number[] = []
    await alloc.freeBlocks(recording(h, plain), d.start, 10, false)
    t.strictSame(plain, [], 'a data free revokes nothing')
    await alloc.freeBlocks(h, b.start, b.count, false)
    await alloc.freeBlocks(h, c.start, c.count, false)
    txm.end(h)
    await o.close()
    t.equal(fsck(file).status, 0, 'e2fsck -fn clean')
    t.strictSame(freeLists(file), before, 'free lists as at the start')
  })
}

t.test('a new file starts looking after its flex group\'s metadata, a directory at it', async (t) => {
  const layout = LAYOUTS[0] ?? { name: '4k', size: 64 << 20, blockSize: 4096, args: [] }
  const o = await openAlloc(makeImage(t, layout), layout.blockSize)
  t.teardown(o.close)
  const { alloc } = o
  const ipg = alloc.geometry.inodesPerGroup
  const bpg = alloc.geometry.blocksPerGroup
  t.equal(alloc.goalForInode(12, false), 0, 'a directory of group 0: group 0')
  t.equal(alloc.goalForInode(12, true), bpg, 'a file of group 0: group 1 (flex groups of 16)')
  t.equal(alloc.goalForInode(3 * ipg + 1, true), bpg, 'a file of group 3: its flex group starts at 0')
  t.throws(() => alloc.goalForInode(0, false), RangeError)
})
