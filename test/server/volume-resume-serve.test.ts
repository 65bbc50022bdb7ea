/*
 * A server starting on a volume whose rebuild a stop cut short serves at once: the rebuild
 * resumes from its checkpoint in the background (rate-limited here, so it surely outlasts the
 * first NFS calls), the export answers READ and WRITE while the member is still rebuilding,
 * `status` through the admin socket shows the rebuild running with its progress, and at the end
 * the member is ok, every byte is there, and the new leg alone holds an e2fsck-clean file system.
 * TSNFS_SEED repeats a run.
 */
import t from 'tap'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { BACKENDS } from '../../server/backends.ts'
import { openEngineOnVolume } from '../../server/volume-backend.ts'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { openEngineOn } from '../../vfs/engine/fs/assemble.ts'
import { replaceVolumeMember } from '../../vfs/volume/member-repair.ts'
import { openVolume } from '../../vfs/volume/open-volume.ts'
import { exportImage, formattedVolume } from '../helpers/volume-images.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes } from '../vfs/engine/format-helpers.ts'
import { e2fsck } from '../vfs/engine/fsck-helpers.ts'

t.setTimeout(120_000)
const MiB = 2 ** 20
const dir = scratch(t, 'volume-resume-serve')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const gen = seededBytes(seed)
const disks = ['m0.img', 'm1.img'].map((n) => path.join(dir, n)) as [string, string]
const fresh = path.join(dir, 'new.img')
const owner = { uid: 0, gid: 0 }

interface MemberView { state: string; rebuilt?: number; path: string | null }
interface StatusView { degraded: boolean; members: MemberView[]; operation: { kind: string; member: number; done: number; total: number } | null; lastOperation: { kind: string; ok: boolean; message: string } | null }

t.test('a rebuild cut short resumes in the background; the export serves meanwhile', async (t) => {
  await formattedVolume('rv', 'mirror', disks, 16 * MiB)
  const before = gen(3 * MiB + 77)
  {
    const v = await openVolume(disks)
    const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
    const f = (await e.create(e.root(), Buffer.from('before.bin'), { how: 'unchecked', attr: {} }, owner)).ref
    await e.write(f, 0n, before, 'file_sync')
    await e.close()
  }
  // Replace leg 1 and close the volume once 4 MiB are checkpointed: the stop a restart finds.
  {
    const v = await openVolume(disks)
    const dev = await ImageFile.create(fresh, 16 * MiB)
    let closing: Promise<void> | undefined
    const cut = replaceVolumeMember(v, 1, { path: fresh, dev }, {
      stepBytes: 256 * 1024,
      checkpointBytes: MiB,
      onCheckpoint: (rebuilt) => {
        if (rebuilt >= 4 * MiB) closing ??= v.close()
        return Promise.resolve()
      },
    })
    await t.rejects(cut, { code: 'BLOCKDEV_CLOSED' }, 'the replace stops at the close')
    await closing
  }
  const checkpoint = await openVolume([disks[0], fresh], { readOnly: true })
  const kept = checkpoint.config.members[1]
  await checkpoint.close()
  t.match(kept, { state: 'rebuilding' }, 'the new member is rebuilding')
  const from = kept?.rebuilt ?? 0
  t.ok(from >= 4 * MiB && from < 8 * MiB, `its checkpoint: ${from} bytes`)

  // The server resumes at 1.5 MiB/s: the ~12 MiB left take about 8 s.
  const logged: string[] = []
  const log = { info: (m: string) => logged.push(m), warn: (m: string) => logged.push(m) }
  const backends = new Map(BACKENDS)
  backends.set('engine', (exp, ctx) => {
    if (ctx.volumes === undefined) throw new Error('no volume registry')
    return openEngineOnVolume('rv', exp.entry.engine?.disks ?? [], { commitIntervalMs: 0, rebuild: { rateBytesPerSec: 1.5 * MiB } }, log, { registry: ctx.volumes, exportPath: exp.path })
  })
  const sock = path.join(dir, 'admin.sock')
  const s = await startServer(t, `/data *(rw,insecure,no_root_squash,backend=engine,volume=rv,disks=${disks[0]}:${fresh})\n`, { backends, admin: sock })
  const c = await NfsClient.mount(s.url('/data'))
  t.teardown(() => c.umount().catch(() => undefined))
  t.ok((await c.readFile('/before.bin')).equals(before), 'READ answers at once')
  const during = gen(MiB + 5)
  await c.writeFile('/during.bin', during)
  const st = (await adminRequest(sock, { command: 'status', volume: 'rv' })) as unknown as StatusView
  t.equal(st.members[1]?.state, 'rebuilding', 'WRITE answered while member 1 is still rebuilding')
  t.ok((st.members[1]?.rebuilt ?? 0) < 16 * MiB - MiB, `status shows the progress: ${st.members[1]?.rebuilt} bytes whole`)
  t.match(st, { degraded: true, operation: { kind: 'replace', member: 1 }, lastOperation: null })
  t.match(logged.join('\n'), /volume rv: member 1 \([0-9a-f]{32}\) was rebuilding; the rebuild resumes from \d+ bytes in the background/)
  const busy = await adminRequest(sock, { command: 'scrub', volume: 'rv' })
  t.match(busy, { ok: false, code: 'ADMIN_BUSY' }, 'a scrub waits for the resumed rebuild')

  let end: StatusView = st
  for (let i = 0; i < 600 && end.operation !== null; i++) {
    await new Promise((r) => setTimeout(r, 100))
    end = (await adminRequest(sock, { command: 'status', volume: 'rv' })) as unknown as StatusView
  }
  t.match(end, { degraded: false, operation: null, lastOperation: { kind: 'replace', ok: true, message: /member 1 rebuilt onto \S+new\.img .*resumed at open/ } })
  t.same(end.members.map((m) => m.state), ['ok', 'ok'])
  t.ok((await c.readFile('/during.bin')).equals(during), 'the file written during the rebuild')
  t.ok((await c.readFile('/before.bin')).equals(before), 'the file written before')
  await c.umount()
  await s.server.close()

  // The new leg alone: the mirror assembles degraded from it, and its image is clean.
  const image = path.join(dir, 'out.img')
  await exportImage([fresh], image)
  const fsck = e2fsck(image)
  t.equal(fsck.code, 0, `e2fsck -fn on the new leg alone: ${fsck.out}`)
})
