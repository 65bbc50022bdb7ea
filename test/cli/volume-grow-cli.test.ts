/*
 * tsnfs volume grow and tsnfs resize end to end (real processes, real image files): a span of two
 * disks with an ext4 file system and a file on it takes a third disk (`volume grow --add`), the
 * file system grows onto it (`resize --volume`), and the `volume export` image is e2fsck -fn clean,
 * larger, and still holds the file; the engine then writes past the old size (a RAID-5 and a
 * stripe taking a member, a reshape: volume-grow-reshape-cli.test.ts). Refusals: two members
 * added to a RAID-5 at once, a shrink, nothing to grow.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openEngineOn } from '../../vfs/engine/fs/assemble.ts'
import { openVolume } from '../../vfs/volume/open-volume.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'
import { debugfs, e2fsck } from '../vfs/engine/fsck-helpers.ts'
import { superblockOf } from '../vfs/engine/mkfs-helpers.ts'

t.setTimeout(120_000)
const MiB = 2 ** 20
const dir = scratch(t, 'volume-grow-cli')
const p = (name: string): string => path.join(dir, name)
const owner = { uid: 0, gid: 0 }
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const data = seededBytes(seed)(MiB + 333)

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(args)
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

t.test('a span grown by a disk, then its file system: e2fsck clean, the file kept, the space usable', async (t) => {
  const [a, b, c] = [p('a.img'), p('b.img'), p('c.img')]
  t.equal((await run(['volume', 'create', 'g', '--level', 'span', '--size', '9M', a, b])).code, 0)
  const mk = await run(['volume', 'mkfs', a, b])
  t.equal(mk.code, 0, mk.err)
  t.match(mk.out, /^volume g: ext4, 16384 blocks of 1024 bytes/)
  const v = await openVolume([a, b])
  const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
  const f = (await e.create(e.root(), Buffer.from('before.bin'), { how: 'unchecked', attr: {} }, owner)).ref
  await e.write(f, 0n, data, 'file_sync')
  await e.close()
  await v.close()

  fs.writeFileSync(c, '')
  fs.truncateSync(c, 9 * MiB)
  const grow = await run(['volume', 'grow', a, b, '--add', c])
  t.equal(grow.code, 0, grow.err)
  t.equal(grow.out, `volume g: span grown from ${16 * MiB} to ${24 * MiB} bytes (configuration seq 2)\n  grow its file system with: tsnfs resize --volume ${a} ${b} ${c}\n`)
  const rs = await run(['resize', '--volume', a, b, c])
  t.equal(rs.code, 0, rs.err)
  t.equal(rs.out, 'volume g: ext4 grown from 16384 to 24576 blocks of 1024 bytes (2 to 3 groups)\n')
  const again = await run(['resize', '--volume', c, a, b])
  t.equal(again.out, 'volume g: already 24576 blocks of 1024 bytes; nothing to grow\n', 'disks in any order; a second resize has nothing to do')

  const out = p('out.img')
  t.equal((await run(['volume', 'export', a, b, c, '--to', out])).code, 0)
  const fsck = e2fsck(out)
  t.equal(fsck.code, 0, `e2fsck -fn clean on the grown volume: ${fsck.out}`)
  t.equal(superblockOf(out).blocksCountLo, 24576)
  const dumped = p('before.out')
  debugfs(out, `dump /before.bin ${dumped}`, false)
  t.ok(fs.readFileSync(dumped).equals(data), 'the file written before the grow, byte-exact')

  // The engine writes more than the old 16 MiB held.
  const v2 = await openVolume([a, b, c])
  const e2 = await openEngineOn(v2.device, { commitIntervalMs: 0 })
  const g = (await e2.create(e2.root(), Buffer.from('after.bin'), { how: 'unchecked', attr: {} }, owner)).ref
  const chunk = Buffer.alloc(MiB, 0x42)
  for (let i = 0; i < 18; i++) await e2.write(g, BigInt(i * MiB), chunk, 'unstable')
  await e2.close()
  await v2.close()
  t.equal((await run(['volume', 'export', a, b, c, '--to', out])).code, 0)
  const fsck2 = e2fsck(out)
  t.equal(fsck2.code, 0, `18 MiB written, more than the old file system's 16: e2fsck clean: ${fsck2.out}`)
})

t.test('refusals: two members added to a raid5 at once, a shrink, nothing to grow', async (t) => {
  const [r1, r2, r3, r4] = ['r1', 'r2', 'r3', 'r4'].map((n) => p(`${n}.img`)) as [string, string, string, string]
  t.equal((await run(['volume', 'create', 'r', '--level', 'raid5', '--size', '4M', r1, r2, r3])).code, 0)
  fs.writeFileSync(r4, '')
  fs.truncateSync(r4, 4 * MiB)
  // A reshape itself works (volume-grow-reshape-cli.test.ts); two members at once is refused.
  const r5 = p('r5.img')
  fs.writeFileSync(r5, '')
  fs.truncateSync(r5, 4 * MiB)
  const reshape = await run(['volume', 'grow', r1, r2, r3, '--add', r4, '--add', r5])
  t.equal(reshape.code, 8)
  t.equal(reshape.err, 'tsnfs volume grow: VOLUME_LAYOUT: a reshape adds one member at a time; 2 disks were given\n')
  t.ok(fs.readFileSync(r4).every((b) => b === 0), 'the offered disk was not written')
  const nothing = await run(['volume', 'grow', r1, r2, r3, '--size', 'max'])
  t.equal(nothing.code, 0, nothing.err)
  t.equal(nothing.out, `volume r: already ${2 * 3 * MiB} bytes; nothing to grow\n`)
  const usage = await run(['volume', 'grow', r1, r2, r3])
  t.equal(usage.code, 2)
  t.match(usage.err, /^tsnfs volume: volume grow: give --add NEWDISK\.\.\. \(span\) or --size max\|SIZE\n/)
  const help = await run(['resize', '--help'])
  t.equal(help.code, 0)
  t.match(help.out, /^usage: tsnfs resize IMAGE \[SIZE\]\n/, 'resize --help: its usage on stdout')
  const img = p('fs.img')
  t.equal((await run(['mkfs', img, '--size', '16M'])).code, 0)
  const shrink = await run(['resize', img, '8M'])
  t.equal(shrink.code, 8)
  t.equal(shrink.err, 'tsnfs resize: the file system has 16384 blocks; 8192 would shrink it, and resize only grows\n')
  const bigger = await run(['resize', img, '24M'])
  t.equal(bigger.code, 0, bigger.err)
  t.equal(bigger.out, `${img}: ext4 grown from 16384 to 24576 blocks of 1024 bytes (2 to 3 groups)\n`, 'the image file is extended to SIZE first')
  t.equal(fs.statSync(img).size, 24 * MiB)
  t.equal(e2fsck(img).code, 0, 'e2fsck -fn clean')
})
