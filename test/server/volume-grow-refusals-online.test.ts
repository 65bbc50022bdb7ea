/*
 * A served RAID-5 asked to take a fourth disk (a reshape) through the admin socket, by the CLI
 * (`tsnfs volume grow NAME NEWDISK --admin SOCK`) and by a bare request: refused with the exact
 * reason (a reshape runs offline only: tsnfs volume grow DISK... --add NEWDISK), before the export is held or anything closed. The volume keeps serving (a file written
 * before reads back, a new one writes), its configuration stays at seq 1, and the offered disk is
 * left as it was (no member superblock). TSNFS_SEED repeats a run.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { formattedVolume } from '../helpers/volume-images.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'

t.setTimeout(180_000)
const MiB = 2 ** 20
const dir = scratch(t, 'volume-grow-refusals-online')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const gen = seededBytes(seed)
const WHY = 'adding a member to a raid5 moves every block to a new place (a reshape), which the server does not do while serving; stop the export and run tsnfs volume grow DISK... --add NEWDISK'

t.test('a served RAID-5 refuses a new member, and serves on unchanged', async (t) => {
  const disks = ['r0.img', 'r1.img', 'r2.img'].map((n) => path.join(dir, n))
  await formattedVolume('rs', 'raid5', disks, 9 * MiB)
  const extra = path.join(dir, 'r3.img')
  fs.writeFileSync(extra, '')
  fs.truncateSync(extra, 9 * MiB)
  const sock = path.join(dir, 'admin.sock')
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=rs,disks=${dir}/r[012].img)\n`, { admin: sock })
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  const before = gen(MiB + 17)
  await c.writeFile('/before.bin', before)

  const cli = await tsnfsRaw(['volume', 'grow', 'rs', extra, '--admin', sock])
  t.equal(cli.code, 8)
  t.equal(cli.stderr, `tsnfs volume grow: VOLUME_LAYOUT: ${WHY}\n`)
  const bare = await adminRequest(sock, { command: 'grow', volume: 'rs', disks: [extra] })
  t.match(bare, { ok: false, code: 'VOLUME_LAYOUT' })
  t.equal((bare as { message?: unknown }).message, WHY, 'the reply carries the code apart from the reason')

  const st = await adminRequest(sock, { command: 'status', volume: 'rs' })
  t.match(st, { ok: true, seq: 1, degraded: false })
  t.equal((st as unknown as { members: unknown[] }).members.length, 3, 'still three members')
  t.ok((await c.readFile('/before.bin')).equals(before), 'the file written before reads back')
  const after = gen(300_000)
  await c.writeFile('/after.bin', after)
  t.ok((await c.readFile('/after.bin')).equals(after), 'and a new one writes')
  const offered = fs.readFileSync(extra)
  t.ok(offered.every((b) => b === 0), 'the offered disk was not written')
  await c.umount()
  await s.server.close()
})
