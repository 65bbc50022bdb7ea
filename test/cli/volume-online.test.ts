/*
 * tsnfs volume online, against a real `tsnfs serve` process exporting a 3-member RAID-5 of image
 * files: a client writes; `volume fail` through the admin socket leaves it degraded (status and
 * metrics say so) and every byte still reads; `volume replace` rebuilds onto a new disk while the
 * client keeps writing (progress on stderr; the writes read back), after which status and
 * metrics are ok; `volume scrub` finds no mismatch. The server stopped, the new disk assembles
 * and the exported image is e2fsck clean.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { ROOT, scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'
import { e2fsck } from '../vfs/engine/fsck-helpers.ts'
import { formattedVolume } from '../helpers/volume-images.ts'

t.setTimeout(180_000)
const dir = scratch(t, 'volume-online')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const gen = seededBytes(seed)
const first = gen(2 * 1024 * 1024 + 123)
const disks = ['m0.img', 'm1.img', 'm2.img'].map((n) => path.join(dir, n))
const fresh = path.join(dir, 'new.img')
const sock = path.join(dir, 'admin.sock')

async function vol(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

t.before(() => formattedVolume('served', 'raid5', disks, 12 * 1024 * 1024))

/** `tsnfs serve` from the sources; resolves with the NFS and metrics ports once the banner is out. */
async function serve(): Promise<{ port: number; metrics: string; stop: () => Promise<number | null>; log: () => string }> {
  const exportsFile = path.join(dir, 'exports')
  fs.writeFileSync(exportsFile, `/data *(rw,insecure,no_root_squash,backend=engine,volume=served,disks=${dir}/m*.img)\n`)
  const args = ['--import', 'tsx', path.join(ROOT, 'cli/main.ts'), 'serve', '--exports', exportsFile, '--port', '0', '--host', '127.0.0.1', '--state-dir', path.join(dir, 'state'), '--admin', sock, '--metrics', '127.0.0.1:0', '--no-lock', '--log-level', 'warn']
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS')))
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  t.teardown(() => { child.kill('SIGKILL') })
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('admin: ')) resolve()
    })
    void exit.then(() => { reject(new Error(`serve exited before its banner: ${out}${err}`)) })
  })
  const port = Number(/TCP and UDP port (\d+)/.exec(out)?.[1])
  const metrics = /metrics: (http:\S+)/.exec(out)?.[1] ?? ''
  return { port, metrics, log: () => err, stop: () => { child.kill('SIGTERM'); return exit } }
}

async function scrape(url: string): Promise<string> {
  return (await fetch(url)).text()
}

t.test('fail, replace while writing, scrub: online through tsnfs serve', async (t) => {
  const s = await serve()
  t.match(fs.readFileSync(path.join(dir, 'exports'), 'utf8'), /volume=served/)
  const c = await NfsClient.mount(`nfs://127.0.0.1/data?nfsport=${s.port}&mountport=${s.port}`)
  t.teardown(() => c.umount().catch(() => undefined))
  await c.writeFile('/first.bin', first)

  const st0 = await vol(['status', 'served', '--admin', sock, '--json'])
  t.equal(st0.code, 0, st0.err)
  const doc = JSON.parse(st0.out) as { members: { state: string; failed: boolean }[]; degraded: boolean; operation: unknown }
  t.match(doc, { name: 'served', level: 'raid5', degraded: false, failed: false, operation: null, export: '/data' })
  t.same(doc.members.map((m) => [m.state, m.failed]), [['ok', false], ['ok', false], ['ok', false]])

  const failed = await vol(['fail', 'served', disks[1] ?? '', '--admin', sock])
  t.equal(failed.code, 0, failed.err)
  t.match(failed.out, /^volume served: member 1 \([0-9a-f]{32}\) marked failed, configuration seq 2\n$/)
  const st1 = await vol(['status', 'served', '--admin', sock])
  t.equal(st1.code, 1, 'degraded: exit 1')
  t.match(st1.out, /raid5, 23068672 bytes, seq 2, degraded\n.*\n {2}member 1: [0-9a-f]{32} \S+m1\.img failed \(failed by hand \(tsnfs volume fail, online\)\)\n/)
  let m = await scrape(s.metrics)
  t.match(m, /^tsnfs_volume_state\{volume="served"\} 1$/m)
  t.match(m, /^tsnfs_volume_member_failed\{volume="served",member="1"\} 1$/m)
  t.match(m, /^tsnfs_volume_members\{volume="served",state="failed"\} 1$/m)
  t.ok((await c.readFile('/first.bin')).equals(first), 'degraded: every byte reads (reconstructed)')

  // The rebuild (~11 MiB at 6 MiB/s) runs while the client writes.
  const during: Buffer[] = []
  const state = { rebuilding: true }
  const writer = (async () => {
    for (let i = 0; state.rebuilding || i < 2; i++) {
      const b = gen(200_000 + i)
      during.push(b)
      await c.writeFile(`/during-${i}.bin`, b)
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  const rep = await vol(['replace', 'served', '1', fresh, '--size', '12M', '--rate', String(6 * 1024 * 1024), '--admin', sock]).finally(() => {
    state.rebuilding = false
  })
  await writer
  t.equal(rep.code, 0, rep.err)
  // seq 2 the fail, 3 the swap, 4 the rebuild's checkpoint at 8 MiB (of 11 MiB per member), 5 the member ok.
  t.match(rep.out, /^volume served: member 1 rebuilt onto \S+new\.img \([0-9a-f]{32}\), configuration seq 5\n$/)
  t.match(rep.err, /rebuild of member 1 onto \S+new\.img: \d+% \(\d+ of \d+ bytes\)\n/, 'progress lines on stderr')
  t.match(rep.err, /: 100% \(/)
  t.ok(during.length >= 2, `${during.length} files written during the rebuild`)
  const wrong: number[] = []
  for (const [i, b] of during.entries()) if (!(await c.readFile(`/during-${i}.bin`)).equals(b)) wrong.push(i)
  t.same(wrong, [], 'every file written during the rebuild reads back')

  const st2 = await vol(['status', 'served', '--admin', sock, '--json'])
  t.equal(st2.code, 0, st2.err)
  t.match(JSON.parse(st2.out), { degraded: false, operation: null, lastOperation: { kind: 'replace', ok: true }, members: [{ state: 'ok' }, { state: 'ok', path: fresh }, { state: 'ok' }] })
  m = await scrape(s.metrics)
  t.match(m, /^tsnfs_volume_state\{volume="served"\} 0$/m)
  t.match(m, /^tsnfs_volume_member_failed\{volume="served",member="1"\} 0$/m)
  t.match(m, /^tsnfs_volume_events_total\{volume="served",kind="rebuild-done"\} 1$/m)

  const scrub = await vol(['scrub', 'served', '--admin', sock])
  t.equal(scrub.code, 0, scrub.err)
  t.match(scrub.out, /^raid5: \d+ stripes, 0 parity mismatches, 0 repaired\n$/)
  t.match(scrub.err, /scrub of volume served: 100% /)
  t.match(await scrape(s.metrics), /^tsnfs_volume_scrub_mismatches_total\{volume="served"\} 0$/m)
  t.ok((await c.readFile('/first.bin')).equals(first), 'the first file, after all')
  const refused = await vol(['fail', 'served', '7', '--admin', sock])
  t.equal(refused.code, 8, 'a refusal: exit 8')
  t.equal(refused.err, 'tsnfs volume fail: VOLUME_MEMBER: volume served has no member 7 (members 0 … 2)\n')
  const usage = await vol(['fail', 'served', '--admin', sock])
  t.equal(usage.code, 2, 'no member: usage, exit 2')
  t.match(usage.err, /^tsnfs volume: online: volume fail NAME DISK\|--member N\n/)
  await c.umount()
  t.equal(await s.stop(), 0, 'serve stops on SIGTERM')
  t.notOk(fs.existsSync(sock), 'the socket is gone with the server')

  const now = [disks[0] ?? '', fresh, disks[2] ?? '']
  const off = await vol(['status', ...now])
  t.equal(off.code, 0, `the new disk assembles: ${off.out}${off.err}`)
  const image = path.join(dir, 'served.img')
  const ex = await vol(['export', ...now, '--to', image])
  t.equal(ex.code, 0, ex.err)
  const fsck = e2fsck(image)
  t.equal(fsck.code, 0, fsck.out)
  const down = await vol(['status', 'served', '--admin', sock])
  t.equal(down.code, 8)
  t.match(down.err, /^tsnfs volume status: no server answers on \S+admin\.sock \(ENOENT\); is the volume served\?/)
})
