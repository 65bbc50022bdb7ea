/*
 * tsnfs volume grow --add on a RAID-5 and a stripe (a reshape, vfs/volume/reshape.ts) and tsnfs
 * resize end to end (real processes, real image files), judged as the span's grow is in
 * volume-grow-cli.test.ts: a file written before, the volume reshaped over one more disk (its
 * progress on stderr), the file system grown onto the new size, and the `volume export` image
 * e2fsck -fn clean, of the new size, holding the file byte for byte. TSNFS_SEED repeats a run.
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
const dir = scratch(t, 'volume-grow-reshape-cli')
const p = (name: string): string => path.join(dir, name)
const owner = { uid: 0, gid: 0 }
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const data = seededBytes(seed)(MiB + 333)

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(args)
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

for (const [level, count] of [['raid5', 3], ['stripe', 2]] as const) {
  t.test(`a ${level} of ${count} reshaped over one more disk, then its file system: e2fsck clean, the file kept`, async (t) => {
    const disks = Array.from({ length: count }, (_, i) => p(`${level}${i}.img`))
    const added = p(`${level}-new.img`)
    t.equal((await run(['volume', 'create', level, '--level', level, '--size', '9M', ...disks])).code, 0)
    const mk = await run(['volume', 'mkfs', ...disks])
    t.equal(mk.code, 0, mk.err)
    const v = await openVolume(disks)
    const before = v.device.size
    const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
    const f = (await e.create(e.root(), Buffer.from('before.bin'), { how: 'unchecked', attr: {} }, owner)).ref
    await e.write(f, 0n, data, 'file_sync')
    await e.close()
    await v.close()

    fs.writeFileSync(added, '')
    fs.truncateSync(added, 9 * MiB)
    const grow = await run(['volume', 'grow', ...disks, '--add', added])
    t.equal(grow.code, 0, grow.err)
    const after = (before / (level === 'raid5' ? count - 1 : count)) * (level === 'raid5' ? count : count + 1)
    t.match(grow.err, new RegExp(`reshape: ${after} of ${after} bytes in the new layout \\(100%\\)\n$`), 'progress on stderr, to the end')
    t.match(grow.out, new RegExp(`^volume ${level}: ${level} grown from ${before} to ${after} bytes \\(configuration seq \\d+\\)\n  grow its file system with: tsnfs resize --volume `))
    const all = [...disks, added]
    const rs = await run(['resize', '--volume', ...all])
    t.equal(rs.code, 0, rs.err)
    t.match(rs.out, new RegExp(`^volume ${level}: ext4 grown from ${before / 1024} to ${after / 1024} blocks of 1024 bytes`))
    const out = p(`${level}-out.img`)
    t.equal((await run(['volume', 'export', ...all, '--to', out])).code, 0)
    const fsck = e2fsck(out)
    t.equal(fsck.code, 0, `e2fsck -fn clean on the reshaped volume: ${fsck.out}`)
    t.equal(superblockOf(out).blocksCountLo, after / 1024)
    const dumped = p(`${level}-before.out`)
    debugfs(out, `dump /before.bin ${dumped}`, false)
    t.ok(fs.readFileSync(dumped).equals(data), 'the file written before the reshape, byte-exact')
  })
}
