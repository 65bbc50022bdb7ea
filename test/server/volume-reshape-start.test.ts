/*
 * A reshape cut short (issue 14 item 3: a RAID-5 of 3 image files taking a 4th, stopped by an I/O
 * error in the middle, as a crash or a pulled disk would) is finished by the server at start:
 * the export's volume assembles from its four disks, the reshape runs to its end before the engine
 * opens, and the file written before reads back byte for byte through NFS; a new one writes.
 * After the server stops, the configuration records no reshape, the volume is the new layout's
 * size, and its image is e2fsck -fn clean. TSNFS_SEED repeats a run.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { WriteBudgetDevice } from '../vfs/volume/volume-helpers.ts'
import { openEngineOn } from '../../vfs/engine/fs/assemble.ts'
import { assembleVolume } from '../../vfs/volume/assemble.ts'
import { LAYERS } from '../../vfs/volume/factory.ts'
import { growVolume } from '../../vfs/volume/grow.ts'
import { readMember } from '../../vfs/volume/member-io.ts'
import { openVolume } from '../../vfs/volume/open-volume.ts'
import { exportImage, formattedVolume } from '../helpers/volume-images.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes } from '../vfs/engine/format-helpers.ts'
import { e2fsck } from '../vfs/engine/fsck-helpers.ts'

t.setTimeout(180_000)
const MiB = 2 ** 20
const dir = scratch(t, 'volume-reshape-start')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const gen = seededBytes(seed)
const owner = { uid: 0, gid: 0 }

t.test('a reshape cut short is finished by the server at start; the data reads back', async (t) => {
  const paths = ['r0.img', 'r1.img', 'r2.img', 'r3.img'].map((n) => path.join(dir, n))
  const old = paths.slice(0, 3)
  await formattedVolume('rs', 'raid5', old, 9 * MiB)
  const before = gen(MiB + 17)
  {
    const v = await openVolume(old)
    const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
    const f = (await e.create(e.root(), Buffer.from('before.bin'), { how: 'unchecked', attr: {} }, owner)).ref
    await e.write(f, 0n, before, 'file_sync')
    await e.close()
    await v.close()
  }
  const oldSize = 2 * 8 * MiB

  // The reshape, stopped after 120 writes (past its backup rows, well before its end).
  await (await ImageFile.create(paths[3] ?? '', 9 * MiB)).close()
  const budget = { left: 120 }
  const disks = []
  for (const p of paths) disks.push({ path: p, dev: new WriteBudgetDevice(await ImageFile.open(p), budget) })
  try {
    const v = await assembleVolume(disks.slice(0, 3), LAYERS)
    await t.rejects(growVolume(v, { add: disks.slice(3) }), { message: 'EIO (the test)' })
  } finally {
    for (const d of disks) await d.dev.close()
  }
  const probe = await ImageFile.open(paths[3] ?? '', { readOnly: true })
  const mid = (await readMember(probe)).superblock.config.reshape
  await probe.close()
  t.ok(mid !== undefined && mid.position > 0 && mid.position < 3 * 8 * MiB, `the reshape stopped at ${mid?.position} of ${3 * 8 * MiB}`)

  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=rs,disks=${dir}/r[0123].img)\n`)
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  t.ok((await c.readFile('/before.bin')).equals(before), 'the file written before the reshape reads back')
  const after = gen(300_000)
  await c.writeFile('/after.bin', after)
  t.ok((await c.readFile('/after.bin')).equals(after), 'and a new one writes')
  await c.umount()
  await s.server.close()

  const v = await openVolume(paths, { readOnly: true })
  t.equal(v.config.reshape, undefined, 'the configuration records no reshape')
  t.equal(v.device.size, 3 * 8 * MiB, `the new layout's size (was ${oldSize})`)
  t.equal(v.config.members.length, 4)
  await v.close()
  const image = path.join(dir, 'out.img')
  await exportImage(paths, image)
  const fsck = e2fsck(image)
  t.equal(fsck.code, 0, `e2fsck -fn clean: ${fsck.out}`)
  fs.rmSync(image)
})
