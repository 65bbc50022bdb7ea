/*
 * rebuild_rate= on a volume export paces the rebuilds the server runs: an online `replace` sent
 * without a rate of its own (and a rebuild resumed at open, through the same options) goes at the
 * export's rate. Two mirrors served by one real server, each with member 1 failed and replaced
 * online through the admin socket: the one exported with rebuild_rate=1K stops after its first
 * step (1 MiB done, then a sleep of 1024 s: the progress counter stays at one step while the
 * client reads and writes through it), the one without runs to the end. No timing is asserted:
 * only the progress counter and the operation's end.
 */
import t from 'tap'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { adminRequest } from '../../server/admin/client.ts'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { DEFAULT_STEP } from '../../vfs/volume/paced-steps.ts'
import { formattedVolume } from '../helpers/volume-images.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes } from '../vfs/engine/format-helpers.ts'

t.setTimeout(120_000)
const MiB = 2 ** 20
const dir = scratch(t, 'volume-rebuild-rate')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const gen = seededBytes(seed)

interface StatusView {
  members: { state: string }[]
  operation: { kind: string; member: number; done: number; total: number } | null
  lastOperation: { kind: string; ok: boolean; message: string } | null
}

t.test('an export\'s rebuild_rate= paces an online replace given no --rate; without it the rebuild runs flat out', async (t) => {
  const slow = ['s0.img', 's1.img'].map((n) => path.join(dir, n))
  const fast = ['f0.img', 'f1.img'].map((n) => path.join(dir, n))
  await formattedVolume('slow', 'mirror', slow, 16 * MiB)
  await formattedVolume('fast', 'mirror', fast, 16 * MiB)
  const sock = path.join(dir, 'admin.sock')
  const s = await startServer(t, [
    `/slow *(rw,insecure,no_root_squash,backend=engine,volume=slow,disks=${slow.join(':')},rebuild_rate=1K)`,
    `/fast *(rw,insecure,no_root_squash,backend=engine,volume=fast,disks=${fast.join(':')})`,
    '',
  ].join('\n'), { admin: sock })
  const status = async (volume: string): Promise<StatusView> => (await adminRequest(sock, { command: 'status', volume })) as unknown as StatusView

  const replaces: Array<Promise<unknown>> = []
  for (const volume of ['slow', 'fast']) {
    t.match(await adminRequest(sock, { command: 'fail', volume, member: 1 }), { ok: true }, `${volume}: member 1 failed online`)
    const fresh = path.join(dir, `${volume}-new.img`)
    await (await ImageFile.create(fresh, 16 * MiB)).close()
    // The reply comes when the rebuild ends (or the server closes): not awaited here.
    replaces.push(adminRequest(sock, { command: 'replace', volume, member: 1, disk: fresh }).catch((err: unknown) => err))
  }

  // The fast one ends; the slow one has reported its first step by then or soon after.
  let fastEnd = await status('fast')
  for (let i = 0; i < 1200 && fastEnd.operation !== null; i++) {
    await new Promise((r) => setTimeout(r, 50))
    fastEnd = await status('fast')
  }
  t.match(fastEnd, { operation: null, lastOperation: { kind: 'replace', ok: true } }, 'without rebuild_rate= the replace ran to its end')
  t.same(fastEnd.members.map((m) => m.state), ['ok', 'ok'])

  let st = await status('slow')
  for (let i = 0; i < 1200 && (st.operation?.done ?? 0) === 0; i++) {
    await new Promise((r) => setTimeout(r, 50))
    st = await status('slow')
  }
  t.match(st, { operation: { kind: 'replace', member: 1 }, lastOperation: null }, 'with rebuild_rate=1K the replace is still running')
  t.equal(st.operation?.done, DEFAULT_STEP, `its progress stops at one step: ${st.operation?.done} of ${st.operation?.total} bytes`)

  // Client I/O through the slow volume meanwhile; the progress counter has not moved after it.
  const c = await NfsClient.mount(s.url('/slow'))
  t.teardown(() => c.umount().catch(() => undefined))
  const data = gen(3 * MiB + 11)
  await c.writeFile('/during.bin', data)
  t.ok((await c.readFile('/during.bin')).equals(data), 'the export serves while the paced rebuild waits')
  const after = await status('slow')
  t.equal(after.operation?.done, DEFAULT_STEP, 'still one step done after the client\'s writes and reads')
  t.equal(after.members[1]?.state, 'rebuilding', 'member 1 is rebuilding')
  await c.umount()
  await s.server.close()
  const replies = await Promise.all(replaces)
  t.match(replies[1], { ok: true }, 'the fast replace answered ok')
  t.notMatch(replies[0], { ok: true }, 'the slow replace did not end ok (the close stopped it)')
})
