/*
 * Random sequences of mapOrAllocate / punch / truncate on one file of a mkfs.ext4 image (4 KiB
 * and 1 KiB blocks), over three zones of the file — the start, around 4 GiB, around 1 TiB — after
 * a fragmented fill that makes every extent one block long, so the tree is two levels deep before
 * the random part starts. Every fresh block gets distinct data. Then our reader, e2fsck -fn and
 * the kernel's loop mount must agree with the model, and truncating to nothing must give the
 * bitmaps back exactly. Set EXTENT_SEED to repeat a run.
 */
import t from 'tap'
import { FILE_INO, makeFs, readInode, rng, writeInode } from './extent-helpers.ts'
import { applyRuns, checkFsck, checkKernel, checkReader, depthOf, finish, forget, freeAll } from './extent-verify.ts'
import type { Model } from './extent-verify.ts'

/** EXTENT_OPS=n runs a longer sequence (the default keeps the suite fast). */
const OPS = Number(process.env.EXTENT_OPS ?? 160)
const ZONE_WIDTH = 600
const FRAGMENTED = 1400

for (const bs of [4096, 1024]) {
  t.test(`random map/punch/truncate, ${bs}-byte blocks: reader, e2fsck and kernel agree`, async (t) => {
    const seed = Number(process.env.EXTENT_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.comment(`seed ${seed} (EXTENT_SEED=${seed} repeats this run)`)
    const rand = rng(seed)
    const int = (n: number): number => Math.floor(rand() * n)
    const fs = await makeFs(t, { bs, mib: 64 })
    const zones = [0, Math.floor(2 ** 32 / bs) - ZONE_WIDTH / 2, Math.floor(2 ** 40 / bs) - ZONE_WIDTH / 2]
    const model: Model = new Map()
    let wrong = 0
    let tag = seed

    let h = await fs.tm.begin()
    await fs.alloc.initAll(h)
    const start = await fs.alloc.snapshot(h)
    const inode = await readInode(fs, h, FILE_INO)
    fs.alloc.fragment = true
    wrong += await applyRuns(fs, model, await fs.tree.mapOrAllocate(h, FILE_INO, inode, zones[1] ?? 0, FRAGMENTED, 0), ++tag)
    fs.alloc.fragment = false
    let maxDepth = depthOf(inode.block)
    t.ok(maxDepth >= 2, `a fragmented fill of ${FRAGMENTED} blocks makes depth ${maxDepth} >= 2`)
    fs.tm.end(h)

    const counts = { map: 0, unwritten: 0, punch: 0, truncate: 0 }
    for (let op = 0; op < OPS; op++) {
      h = await fs.tm.begin()
      const zone = zones[int(zones.length)] ?? 0
      const lblk = zone + int(ZONE_WIDTH)
      const r = rand()
      if (r < 0.55) {
        const unwritten = rand() < 0.15
        fs.alloc.fragment = rand() < 0.3
        const count = 1 + int(rand() < 0.2 ? 300 : 40)
        counts[unwritten ? 'unwritten' : 'map']++
        const runs = await fs.tree.mapOrAllocate(h, FILE_INO, inode, lblk, count, 0, { unwritten })
        wrong += await applyRuns(fs, model, runs, ++tag)
        const covered = runs.reduce((n, run) => n + run.count, 0)
        if (covered !== count || runs[0]?.lblk !== lblk) wrong++
      } else if (r < 0.93) {
        const count = 1 + int(rand() < 0.2 ? 400 : 30)
        counts.punch++
        await fs.tree.punch(h, FILE_INO, inode, lblk, count)
        forget(model, lblk, lblk + count)
      } else {
        counts.truncate++
        await fs.tree.truncate(h, FILE_INO, inode, lblk)
        forget(model, lblk, Infinity)
      }
      maxDepth = Math.max(maxDepth, depthOf(inode.block))
      fs.tm.end(h)
      if (op % 40 === 39) await fs.tm.waitDurable(h.tid)
    }
    t.comment(`ops ${JSON.stringify(counts)}, ${model.size} blocks mapped, deepest tree ${maxDepth}`)
    t.equal(wrong, 0, 'every run mapOrAllocate returned agrees with the model')

    // Every mapped block must be found again through our own lookup before the image is closed.
    h = await fs.tm.begin()
    let misses = 0
    for (const [lblk, { phys }] of model) {
      const m = await fs.tree.lookup(h, FILE_INO, inode, lblk)
      if (m.extent === undefined || m.extent.start + (lblk - m.extent.block) !== phys) misses++
    }
    t.equal(misses, 0, 'lookup finds every mapped block')
    const iBlocks = inode.blocks
    await writeInode(fs, h, FILE_INO, inode)
    fs.tm.end(h)
    await finish(fs, model)

    const holes = zones.flatMap((z) => Array.from({ length: 50 }, () => z + int(ZONE_WIDTH)))
    await checkReader(t, fs.file, bs, model, holes)
    checkFsck(t, fs.file, 'after the random operations')
    await checkKernel(t, fs.file, bs, model, iBlocks)
    await freeAll(t, fs.file, start)
  })
}
