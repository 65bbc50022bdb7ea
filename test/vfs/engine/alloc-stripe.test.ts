/*
 * Issue 14 item 8: the RAID geometry mkfs records (s_raid_stride, s_raid_stripe_width, as mke2fs
 * -E stride=,stripe_width=) and the allocator's use of it: file-data runs of a row or more start
 * on a row boundary, so a RAID-5 under the file system gets whole rows and reads nothing back.
 * dumpe2fs reads the fields, e2fsck judges the images, debugfs lists the extents.
 */
import t from 'tap'
import type { Test } from 'tap'
import path from 'node:path'
import type { Ext4Allocator } from '../../../vfs/engine/alloc/ext4-allocator.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { RaidLayout } from '../../../vfs/engine/mkfs/raid.ts'
import { fsck, openAlloc } from './alloc-helpers.ts'
import { scratch, sh } from './format-helpers.ts'

const MiB = 2 ** 20
const UNIT = 64 * 1024
const owner = { uid: 0, gid: 0 }

async function image(t: Test, size: number, blockSize: 1024 | 4096, raid: RaidLayout | undefined): Promise<string> {
  const file = path.join(scratch(t, 'alloc-stripe'), 'fs.img')
  const dev = await ImageFile.create(file, size)
  try {
    await makeFileSystem(dev, { zeroed: true, blockSize, ...(raid === undefined ? {} : { raid }) })
  } finally {
    await dev.close()
  }
  return file
}

function raidFieldsOf(file: string): { stride: number; width: number } {
  const out = sh('dumpe2fs', ['-h', file])
  const num = (label: string): number => Number(new RegExp(`^${label}:\\s+(\\d+)`, 'm').exec(out)?.[1] ?? 0)
  return { stride: num('RAID stride'), width: num('RAID stripe width') }
}

/** The leaf extents of `name` in the root directory, as debugfs lists them. */
function extents(file: string, name: string): Array<{ lblk: number; start: number; len: number }> {
  const out = sh('debugfs', ['-R', `ex /${name}`, file])
  const rows = [...out.matchAll(/^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+(\d+)\s*-\s*(\d+)\s+(\d+)\s*-\s*(\d+)\s+(\d+)/gm)]
  return rows.filter((m) => m[1] === m[2]).map((m) => ({ lblk: Number(m[3]), start: Number(m[5]), len: Number(m[7]) }))
}

t.test('mkfs records the stride and the row; e2fsck is clean', async (t) => {
  const cases: Array<[string, 1024 | 4096, RaidLayout, number, number]> = [
    ['RAID-5 of 3, 4 KiB blocks', 4096, { unit: UNIT, dataUnits: 2 }, 16, 32],
    ['RAID-5 of 3, 1 KiB blocks', 1024, { unit: UNIT, dataUnits: 2 }, 64, 128],
    ['stripe of 4, 4 KiB blocks, 128 KiB unit', 4096, { unit: 2 * UNIT, dataUnits: 4 }, 32, 128],
  ]
  for (const [name, bs, raid, stride, width] of cases) {
    const file = await image(t, 32 * MiB, bs, raid)
    t.strictSame(raidFieldsOf(file), { stride, width }, `${name}: stride ${stride}, stripe width ${width}`)
    const r = fsck(file)
    t.equal(r.status, 0, `${name}: e2fsck -fn clean`)
  }
  t.strictSame(raidFieldsOf(await image(t, 32 * MiB, 4096, undefined)), { stride: 0, width: 0 }, 'none without a layout')
  const dev = await ImageFile.create(path.join(scratch(t, 'alloc-stripe'), 'bad.img'), 32 * MiB)
  t.teardown(() => dev.close())
  for (const [why, raid] of [
    ['a unit not a whole number of blocks', { unit: 6144, dataUnits: 2 }],
    ['a unit smaller than a block', { unit: 2048, dataUnits: 2 }],
    ['a row of no data units', { unit: UNIT, dataUnits: 0 }],
    ['a stride past 16 bits', { unit: 65536 * 4096, dataUnits: 2 }],
  ] as const) {
    await t.rejects(makeFileSystem(dev, { zeroed: true, blockSize: 4096, raid }), { code: 'MKFS_BAD_OPTION' }, why)
  }
})

for (const bs of [4096, 1024] as const) {
  t.test(`engine, ${bs}-byte blocks: a large file's extents start on row boundaries and stay in step with its offsets`, async (t) => {
    const row = (2 * UNIT) / bs
    const file = await image(t, 64 * MiB, bs, { unit: UNIT, dataUnits: 2 })
    const e = await openEngineOn(await ImageFile.open(file))
    // Small files first: the big one's first free block is then inside a row.
    for (const name of ['a', 'b', 'c']) {
      const small = await e.create(e.root(), Buffer.from(name), { how: 'guarded', attr: {} }, owner)
      await e.write(small.ref, 0n, Buffer.alloc(3 * bs + 100, 1), 'unstable')
    }
    const big = await e.create(e.root(), Buffer.from('big'), { how: 'guarded', attr: {} }, owner)
    const chunk = Buffer.alloc(MiB, 0x5a)
    for (let off = 0; off < 8 * MiB; off += MiB) await e.write(big.ref, BigInt(off), chunk, 'unstable')
    await e.commit(big.ref)
    await e.close()
    const ex = extents(file, 'big')
    t.ok(ex.length > 0, `debugfs lists ${ex.length} extents: ${JSON.stringify(ex)}`)
    t.equal(ex.reduce((n, x) => n + x.len, 0), (8 * MiB) / bs, 'covering the file')
    t.ok(ex.every((x) => x.start % row === 0), `every extent starts at a multiple of ${row}`)
    t.ok(ex.every((x) => (x.start - x.lblk) % row === 0), 'every file offset on a row boundary is on one on the volume')
    const small = extents(file, 'a')
    t.ok(small.length === 1 && (small[0]?.len ?? 0) === 4, 'a small file is one run of its blocks')
    const r = fsck(file)
    t.equal(r.status, 0, 'e2fsck -fn clean')
    t.notMatch(r.out, /wrong|differences|Fix\?/, r.out)
  })
}

/** Takes block b (at goal b, one block: never aligned) and checks it got exactly b. */
async function takeBlock(t: Test, alloc: Ext4Allocator, h: Parameters<Ext4Allocator['allocBlocks']>[0], b: number): Promise<void> {
  const got = await alloc.allocBlocks(h, b, 1)
  if (got.start !== b) t.fail(`block ${b} was not free (got ${got.start})`)
}

t.test('the allocator: an aligned run, the goal kept, unaligned when no aligned run fits, unchanged without a row', async (t) => {
  const file = await image(t, 64 * MiB, 4096, { unit: UNIT, dataUnits: 2 })
  const o = await openAlloc(file, 4096)
  t.teardown(() => o.close())
  t.equal(o.alloc.stripe, 32, 'the row: 32 blocks of 4 KiB')
  const h = await o.txm.begin()
  // The first free data block, then one more: what's free next starts inside a row.
  const first = await o.alloc.allocBlocks(h, 0, 1)
  const base = Math.ceil((first.start + 40) / 32) * 32 // a row boundary with free rows after it
  await takeBlock(t, o.alloc, h, base + 3)
  const aligned = await o.alloc.allocBlocks(h, base, 64)
  t.equal(aligned.start, base + 32, 'the goal is taken inside a row: the next row boundary with 64 free blocks')
  t.equal(aligned.count, 64, 'all 64')
  const small = await o.alloc.allocBlocks(h, base, 8)
  t.equal(small.start, base + 4, 'a request under a row is placed as before: the first 8 free after the goal, inside a row')
  const kept = await o.alloc.allocBlocks(h, aligned.start + 64 + 5, 40)
  t.equal(kept.start, aligned.start + 64 + 5, 'a free goal is kept even off a row boundary (a file continues where it was)')
  o.txm.end(h)
  await o.close()

  // A fresh image with every other row boundary taken: no run of 40 starts on a boundary
  // anywhere (from an odd one there are 32 before the next, taken), but runs of 63 start one past.
  const fullFile = await image(t, 64 * MiB, 4096, { unit: UNIT, dataUnits: 2 })
  const f = await openAlloc(fullFile, 4096)
  t.teardown(() => f.close())
  const fh = await f.txm.begin()
  // At a used boundary this takes some other free block, which only shortens runs.
  for (let b = 0; b < f.alloc.geometry.blocksCount; b += 64) await f.alloc.allocBlocks(fh, b, 1)
  const before = f.alloc.groups.freeBlocks
  const fallback = await f.alloc.allocBlocks(fh, 0, 40)
  t.equal(fallback.count, 40, 'no row boundary has 40 free blocks after it, yet all 40 are given')
  t.not(fallback.start % 32, 0, `unaligned (block ${fallback.start}): alignment never fails an allocation`)
  t.equal(f.alloc.groups.freeBlocks, before - 40, 'the free count follows')
  f.txm.end(fh)

  // The same moves without a row: the first free block after the goal, as before.
  const plainFile = await image(t, 64 * MiB, 4096, undefined)
  const p = await openAlloc(plainFile, 4096)
  t.teardown(() => p.close())
  t.equal(p.alloc.stripe, 0, 'no row')
  const ph = await p.txm.begin()
  await p.alloc.allocBlocks(ph, 0, 1)
  await takeBlock(t, p.alloc, ph, base + 3)
  const plain = await p.alloc.allocBlocks(ph, base, 64)
  t.equal(plain.start, base + 4, 'without a row the 64 blocks start right after the taken one')
  p.txm.end(ph)
})
