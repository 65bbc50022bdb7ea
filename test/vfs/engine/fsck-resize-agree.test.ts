/*
 * The resize inode's map judged as e2fsck -fn judges it (a CI round of fsck-agree.test.ts, seed
 * 1322770929, found us stricter): e2fsck's check_resize_inode looks at the first quarter of the
 * reserved GDT blocks (s_reserved_gdt_blocks / 4) and walks the rest of the map in pass 1, counting
 * every block it names into i_blocks. Each case damages the map of a one-group 1 KiB-block image
 * with mkfs.ext4's layout and requires our verdict to be e2fsck's; where both find it, the repair
 * lays the map out again and e2fsck -fn calls the result clean.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { mkfs, scratch, sh } from './format-helpers.ts'
import { debugfs, e2fsck, e2fsckFinds, fsckImage, MKFS_FEATURES } from './fsck-helpers.ts'
import { codes, repairFile } from './fsck-repair-helpers.ts'

t.setTimeout(120_000)
const BS = 1024
const dir = scratch(t, 'fsck-resize-agree')
const base = path.join(dir, 'base.img')
mkfs(base, 4 << 20, ['-b', String(BS), ...MKFS_FEATURES])
const dind = Number(/\(DIND\):(\d+)/.exec(debugfs(base, 'stat <7>', false))?.[1])
const reserved = Number(/Reserved GDT blocks:\s+(\d+)/.exec(sh('dumpe2fs', ['-h', base]))?.[1])
// One group: the descriptor table is block 2, the reserved blocks follow it (slot i + 1 names block 3 + i).
const DESC_BLOCKS = 1
const firstReserved = 2 + DESC_BLOCKS
// A block nothing uses, inside the file system: a stand-in an entry may wrongly name.
const free = Number(/found: (\d+)/.exec(debugfs(base, 'ffb 1 3000', false))?.[1])
t.ok(Number.isInteger(dind) && reserved >= 8 && Number.isInteger(free), `DIND ${dind}, ${reserved} reserved GDT blocks, free block ${free}`)

function writeU32(image: string, at: number, v: number): void {
  const fd = fs.openSync(image, 'r+')
  const b = Buffer.alloc(4)
  b.writeUInt32LE(v >>> 0)
  fs.writeSync(fd, b, 0, 4, at)
  fs.closeSync(fd)
}

const last = reserved - 1
const CASES: Array<{ name: string; found: boolean; inject(image: string): void }> = [
  // Past the quarter e2fsck checks: the walk sees an indirect block of zeros instead of one, the same count.
  { name: 'the last reserved block\'s slot naming another empty block', found: false, inject: (img) => { writeU32(img, dind * BS + (DESC_BLOCKS + last) * 4, free) } },
  { name: 'the first reserved block\'s slot naming another block', found: true, inject: (img) => { writeU32(img, dind * BS + DESC_BLOCKS * 4, free) } },
  { name: 'the last reserved block\'s slot outside the file system', found: true, inject: (img) => { writeU32(img, dind * BS + (DESC_BLOCKS + last) * 4, 0x7fffffff) } },
  { name: 'the last reserved block\'s slot cleared (i_blocks then counts one block too many)', found: true, inject: (img) => { writeU32(img, dind * BS + (DESC_BLOCKS + last) * 4, 0) } },
  { name: 'a reserved block past the quarter naming a block (counted into i_blocks)', found: true, inject: (img) => { writeU32(img, (firstReserved + last) * BS + 40, free) } },
]

for (const c of CASES) {
  await t.test(c.name, async (t) => {
    const image = path.join(dir, 'case.img')
    sh('cp', ['--sparse=always', base, image])
    c.inject(image)
    t.equal(e2fsckFinds(image), c.found, `e2fsck -fn ${c.found ? 'finds it' : 'calls it clean'}`)
    const ours = await fsckImage(image)
    const errors = ours.problems.filter((p) => p.severity === 'error').map((p) => p.code)
    t.equal(!ours.clean, c.found, `ours agrees (${errors.join(' ') || 'clean'})`)
    if (c.found) {
      t.ok(errors.includes('RESIZE_INODE_INVALID'), 'ours names the resize inode')
      const r = await repairFile(image)
      t.equal(r.exitCode, 1, 'the repair lays the map out again')
      t.ok(codes(r, 'fixed').includes('RESIZE_INODE_REWRITTEN'))
      const e2 = e2fsck(image)
      t.equal(e2.code, 0, `e2fsck -fn clean after it${e2.code === 0 ? '' : `\n${e2.out}`}`)
    }
    fs.rmSync(image)
  })
}
