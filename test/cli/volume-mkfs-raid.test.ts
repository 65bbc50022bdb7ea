/*
 * `tsnfs volume mkfs` records the volume's RAID geometry in the superblock (s_raid_stride and
 * s_raid_stripe_width, what mke2fs -E stride=,stripe_width= sets), read back by dumpe2fs on the
 * `volume export` image, which e2fsck finds clean; and the layout → geometry rule itself.
 */
import t from 'tap'
import path from 'node:path'
import { raidLayoutOf } from '../../cli/volume-raid.ts'
import type { LayoutNode } from '../../vfs/volume/config.ts'
import { scratch, sh, tsnfsRaw } from '../vfs/engine/format-helpers.ts'
import { e2fsck } from '../vfs/engine/fsck-helpers.ts'

t.setTimeout(120_000)

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

const CASES: Array<[string, string[], number, number]> = [
  // 1 KiB blocks on these small volumes: a 64 KiB unit is 64 blocks.
  ['raid5 of 3, 64 KiB unit', ['--level', 'raid5'], 64, 128],
  ['stripe of 3, 32 KiB unit', ['--level', 'stripe', '--unit', '32K'], 32, 96],
] // a mirror of disks has none: the layout rule below, and mkfs without a layout in alloc-stripe

for (const [name, level, stride, width] of CASES) {
  t.test(`volume mkfs on a ${name}: RAID stride ${stride}, stripe width ${width}`, async (t) => {
    const dir = scratch(t, 'volume-mkfs-raid')
    const disks = ['a.img', 'b.img', 'c.img'].map((f) => path.join(dir, f))
    const made = await run(['create', 'v', ...level, '--size', '12M', ...disks])
    t.equal(made.code, 0, made.err)
    const mk = await run(['mkfs', ...disks])
    t.equal(mk.code, 0, mk.err)
    const img = path.join(dir, 'export.img')
    const ex = await run(['export', ...disks, '--to', img])
    t.equal(ex.code, 0, ex.err)
    const head = sh('dumpe2fs', ['-h', img])
    const num = (label: string): number => Number(new RegExp(`^${label}:\\s+(\\d+)`, 'm').exec(head)?.[1] ?? 0)
    t.equal(num('Block size'), 1024, '1 KiB blocks')
    t.strictSame({ stride: num('RAID stride'), width: num('RAID stripe width') }, { stride, width }, 'the superblock fields')
    const fsck = e2fsck(img)
    t.equal(fsck.code, 0, `e2fsck -fn clean: ${fsck.out}`)
  })
}

t.test('the layout rule: RAID-5 n − 1 data units, stripe n, mirror its first leg, partition on a row boundary, span none', async (t) => {
  const disk = (i: number): LayoutNode => ({ kind: 'disk', member: i.toString(16).padStart(32, '0') })
  const raid5: LayoutNode = { kind: 'raid5', unit: 128 * 1024, children: [disk(0), disk(1), disk(2), disk(3)] }
  t.strictSame(raidLayoutOf(raid5), { unit: 128 * 1024, dataUnits: 3 })
  t.strictSame(raidLayoutOf({ kind: 'raid5', children: [disk(0), disk(1), disk(2)] }), { unit: 64 * 1024, dataUnits: 2 }, 'the default unit')
  t.strictSame(raidLayoutOf({ kind: 'stripe', children: [disk(0), disk(1)] }), { unit: 64 * 1024, dataUnits: 2 })
  t.strictSame(raidLayoutOf({ kind: 'mirror', children: [raid5, raid5] }), { unit: 128 * 1024, dataUnits: 3 }, 'a mirror of RAID-5s')
  t.equal(raidLayoutOf({ kind: 'mirror', children: [disk(0), disk(1)] }), undefined, 'a mirror of disks')
  t.equal(raidLayoutOf({ kind: 'span', children: [raid5, disk(4)] }), undefined, 'a span')
  t.strictSame(raidLayoutOf({ kind: 'partition', offset: 3 * 384 * 1024, size: 1 << 20, child: raid5 }), { unit: 128 * 1024, dataUnits: 3 }, 'a partition on a row boundary')
  t.equal(raidLayoutOf({ kind: 'partition', offset: 128 * 1024, size: 1 << 20, child: raid5 }), undefined, 'a partition inside a row')
})
