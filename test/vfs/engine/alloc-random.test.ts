/*
 * Random allocation and freeing of blocks and inodes (seed printed; TSNFS_SEED repeats a run) on
 * mkfs.ext4 images of 4 KiB and 1 KiB blocks, through the DirectTxnManager: no block is handed
 * out twice or while a free of it is not yet committed, and once everything is freed again the
 * image is e2fsck-clean with the same free lists dumpe2fs printed before.
 */
import t from 'tap'
import { LAYOUTS, freeLists, fsck, makeImage, openAlloc, seededInt, superCounts } from './alloc-helpers.ts'

const OPS = 400

for (const layout of LAYOUTS) {
  t.test(`random alloc/free returns the image to its start (${layout.name})`, async (t) => {
    const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.comment(`seed ${seed} (TSNFS_SEED=${seed} to repeat)`)
    const rnd = seededInt(seed)
    const file = makeImage(t, layout)
    const before = freeLists(file)
    const countsBefore = superCounts(file)
    const o = await openAlloc(file, layout.blockSize, { random: () => rnd(1000) / 1000 })
    t.teardown(o.close)
    const { alloc, txm } = o
    const geo = alloc.geometry
    const held: Array<{ start: number; count: number }> = []
    const owner = new Map<number, number>()
    const inodes: Array<{ ino: number; dir: boolean }> = []
    const inodeSet = new Set<number>()
    /** Blocks freed in the running transaction: must not come back before it commits. */
    let pending = new Set<number>()
    let h = await txm.begin()
    let reused = 0
    let full = 0
    for (let op = 0; op < OPS; op++) {
      const kind = rnd(10)
      if (kind < 4 || held.length === 0) {
        const goal = rnd(3) === 0 ? 0 : geo.firstDataBlock + rnd(geo.blocksCount - geo.firstDataBlock)
        const want = 1 + rnd(rnd(4) === 0 ? 300 : 20)
        const r = await alloc.allocBlocks(h, goal, want)
        if (r.count < 1 || r.count > want) t.fail(`op ${op}: run of ${r.count} for ${want}`)
        if (r.count === want) full++
        for (let b = r.start; b < r.start + r.count; b++) {
          if (owner.has(b) || pending.has(b)) t.fail(`op ${op}: block ${b} handed out twice (${owner.has(b) ? 'held' : 'freed, not committed'})`)
          owner.set(b, op)
        }
        held.push(r)
      } else if (kind < 7) {
        const [r] = held.splice(rnd(held.length), 1)
        if (r === undefined) continue
        // Sometimes only a part of the run, like a truncate.
        const cut = rnd(2) === 0 ? 0 : rnd(r.count)
        await alloc.freeBlocks(h, r.start + cut, r.count - cut, rnd(5) === 0)
        for (let b = r.start + cut; b < r.start + r.count; b++) {
          owner.delete(b)
          pending.add(b)
        }
        if (cut > 0) held.push({ start: r.start, count: cut })
      } else if (kind < 9 || inodes.length === 0) {
        const parents = [2, ...inodes.filter((i) => i.dir).map((i) => i.ino)]
        const parent = parents[rnd(parents.length)] ?? 2
        const dir = rnd(3) === 0
        const ino = await alloc.allocInode(h, parent, dir)
        if (inodeSet.has(ino) || ino < geo.firstIno || ino > geo.inodesCount) t.fail(`op ${op}: inode ${ino} handed out twice or out of range`)
        inodeSet.add(ino)
        inodes.push({ ino, dir })
      } else {
        const [i] = inodes.splice(rnd(inodes.length), 1)
        if (i === undefined) continue
        await alloc.freeInode(h, i.ino, i.dir)
        inodeSet.delete(i.ino)
      }
      if (rnd(25) === 0) {
        txm.end(h)
        t.equal(alloc.busyBlocks, pending.size, `op ${op}: busy blocks before commit`)
        await txm.waitDurable(h.tid)
        t.equal(alloc.busyBlocks, 0, `op ${op}: no busy blocks after commit`)
        reused += pending.size
        pending = new Set()
        h = await txm.begin()
      }
    }
    // The images have room: every request of up to 300 blocks finds a run of its full length.
    t.ok(full > 0, `${full} runs of the full length asked`)
    t.comment(`${held.length} runs and ${inodes.length} inodes held at the end; ${reused} freed blocks went through commit`)
    for (const r of held) await alloc.freeBlocks(h, r.start, r.count, false)
    for (const i of inodes) await alloc.freeInode(h, i.ino, i.dir)
    txm.end(h)
    await o.close()
    const r = fsck(file)
    t.equal(r.status, 0, 'e2fsck -fn clean')
    t.notMatch(r.out, /wrong|differences|Fix\?/, r.out)
    t.strictSame(freeLists(file), before, 'every group frees the same blocks and inodes as at the start')
    t.strictSame(superCounts(file), countsBefore, 'superblock counters as at the start')
  })
}
