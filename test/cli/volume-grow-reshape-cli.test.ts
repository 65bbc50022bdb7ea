/*
 * tsnfs volume grow --add on a RAID-5 and a stripe (a reshape, vfs/volume/reshape.ts) and tsnfs
 * resize end to end (real processes, real image files), judged as the span's grow is in
 * volume-grow-cli.test.ts: a file written before, the volume reshaped over one more disk (its
 * progress on stderr), the file system grown onto the new size, and the `volume export` image
 * e2fsck -fn clean, of the new size, holding the file byte for byte. A reshape cut short (an I/O
 * error in the middle): `volume status` refuses, naming the way out, and `resize --volume`
 * finishes it and grows the file system. TSNFS_SEED repeats a run.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { WriteBudgetDevice } from '../vfs/volume/volume-helpers.ts'
import { openEngineOn } from '../../vfs/engine/fs/assemble.ts'
import { assembleVolume } from '../../vfs/volume/assemble.ts'
import { LAYERS } from '../../vfs/volume/factory.ts'
import { growVolume } from '../../vfs/volume/grow.ts'
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

t.test('a reshape cut short: status refuses naming the way out; resize --volume finishes it and grows the file system', async (t) => {
  const disks = ['c0', 'c1', 'c2', 'c3'].map((n) => p(`${n}.img`))
  const old = disks.slice(0, 3)
  t.equal((await run(['volume', 'create', 'cut', '--level', 'raid5', '--size', '9M', ...old])).code, 0)
  t.equal((await run(['volume', 'mkfs', ...old])).code, 0)
  {
    const v = await openVolume(old)
    const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
    const f = (await e.create(e.root(), Buffer.from('before.bin'), { how: 'unchecked', attr: {} }, owner)).ref
    await e.write(f, 0n, data, 'file_sync')
    await e.close()
    await v.close()
  }
  await (await ImageFile.create(disks[3] ?? '', 9 * MiB)).close()
  const budget = { left: 100 }
  const open = []
  for (const d of disks) open.push({ path: d, dev: new WriteBudgetDevice(await ImageFile.open(d), budget) })
  try {
    await t.rejects(growVolume(await assembleVolume(open.slice(0, 3), LAYERS), { add: open.slice(3) }), { message: 'EIO (the test)' })
  } finally {
    for (const d of open) await d.dev.close()
  }

  const st = await run(['volume', 'status', ...disks])
  t.equal(st.code, 8)
  t.match(st.err, /^tsnfs volume status: VOLUME_LAYOUT: volume cut is being reshaped \(\d+ bytes in the new layout\); .*c0\.img is read-only: a read-write open of every disk finishes it \(tsnfs resize --volume DISK\.\.\., or the server at start\)\n$/)
  const rs = await run(['resize', '--volume', ...disks])
  t.equal(rs.code, 0, rs.err)
  t.equal(rs.out, 'volume cut: ext4 grown from 16384 to 24576 blocks of 1024 bytes (2 to 3 groups)\n', 'the reshape finished, then the file system grew')
  const out = p('cut-out.img')
  t.equal((await run(['volume', 'export', ...disks, '--to', out])).code, 0)
  const fsck = e2fsck(out)
  t.equal(fsck.code, 0, `e2fsck -fn clean: ${fsck.out}`)
  const dumped = p('cut-before.out')
  debugfs(out, `dump /before.bin ${dumped}`, false)
  t.ok(fs.readFileSync(dumped).equals(data), 'the file written before the reshape, byte-exact')
})
