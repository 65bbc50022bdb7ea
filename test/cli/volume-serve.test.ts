/*
 * A server exporting a volume (backend=engine,volume=NAME,disks=GLOB): `tsnfs exports --check`
 * accepts the line; the server logs the volume's state, a client writes and reads through it,
 * and after the server stops, `tsnfs volume export` gives an image e2fsck -fn calls clean that
 * holds the client's bytes. Started with a disk left out, it serves degraded, logs which member
 * is missing and records it failed, so the left-out disk is refused as stale afterwards.
 */
import t from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import type { Logger, LogFn } from '../../server/logger.ts'
import { startServer } from '../helpers/server.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'
import { debugfs, e2fsck } from '../vfs/engine/fsck-helpers.ts'
import { formattedVolume } from '../helpers/volume-images.ts'

t.setTimeout(120_000)
const dir = scratch(t, 'volume-serve')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const data = seededBytes(seed)(2 * 1024 * 1024 + 123)
const disks = ['m0.img', 'm1.img', 'm2.img'].map((n) => path.join(dir, n))

function recordingLogger(lines: string[]): Logger {
  const fn: LogFn = (a: object | string, b?: string) => {
    lines.push(typeof a === 'string' ? a : b ?? '')
  }
  const self: Logger = { debug: () => undefined, info: fn, warn: fn, error: fn, child: () => self }
  return self
}

t.before(() => formattedVolume('served', 'raid5', disks, 12 * 1024 * 1024))

t.test('an export on a volume: check, serve, write, read, stop, e2fsck clean', async (t) => {
  const line = `/data *(rw,insecure,no_root_squash,backend=engine,volume=served,disks=${dir}/m*.img)\n`
  const file = path.join(dir, 'exports')
  fs.writeFileSync(file, line)
  const check = await tsnfsRaw(['exports', '--check', file])
  t.equal(check.code, 0, check.stderr)

  const lines: string[] = []
  const s = await startServer(t, line, { logger: recordingLogger(lines) })
  t.ok(lines.some((l) => /^volume served \(id [0-9a-f]{32}\): raid5 of 3 members, 23068672 bytes, seq 1, ok$/.test(l)), lines.join('\n'))
  const c = await NfsClient.mount(s.url('/data'))
  await c.writeFile('/from-client.bin', data)
  t.ok((await c.readFile('/from-client.bin')).equals(data), 'the client reads back its bytes')
  await c.umount()
  await s.server.close()

  const out = path.join(dir, 'served.img')
  const r = await tsnfsRaw(['volume', 'export', ...disks, '--to', out])
  t.equal(r.code, 0, r.stderr)
  const fsck = e2fsck(out)
  t.equal(fsck.code, 0, fsck.out)
  t.notMatch(fsck.out, /\? no$|IGNORED/m)
  const dumped = path.join(dir, 'dumped.bin')
  debugfs(out, `dump /from-client.bin ${dumped}`, false)
  t.ok(fs.readFileSync(dumped).equals(data), 'the exported image holds the bytes, by debugfs')
})

t.test('started without a disk: serves degraded, logs it, records the member failed', async (t) => {
  const line = `/data *(rw,insecure,no_root_squash,backend=engine,volume=served,disks=${disks[0]}:${disks[2]})\n`
  const lines: string[] = []
  const s = await startServer(t, line, { logger: recordingLogger(lines) })
  t.ok(lines.some((l) => /^volume served .*, degraded$/.test(l)), 'the state, degraded')
  t.ok(lines.some((l) => /^volume served: runs without member 1 \([0-9a-f]{32}\) not among the disks given$/.test(l)), 'the missing member')
  t.ok(lines.some((l) => /^volume served: member 1 \([0-9a-f]{32}\) recorded failed, configuration seq 2$/.test(l)), 'recorded failed')
  const c = await NfsClient.mount(s.url('/data'))
  t.ok((await c.readFile('/from-client.bin')).equals(data), 'reads reconstruct member 1')
  await c.writeFile('/degraded.txt', Buffer.from('written degraded\n'))
  await c.umount()
  await s.server.close()

  const stale = await tsnfsRaw(['volume', 'status', ...disks])
  t.equal(stale.code, 8)
  t.match(stale.stderr, /VOLUME_STALE: .*m1\.img: stale member/)
  const out = path.join(dir, 'degraded.img')
  const r = await tsnfsRaw(['volume', 'export', disks[0]!, disks[2]!, '--to', out])
  t.equal(r.code, 0, r.stderr)
  t.equal(e2fsck(out).code, 0, 'e2fsck clean on the degraded volume')
  t.equal(debugfs(out, 'cat /degraded.txt', false), 'written degraded\n')

})

t.test('a volume the disks do not hold: the export does not open, naming why', async (t) => {
  const line = `/data *(rw,backend=engine,volume=other,disks=${disks[0]}:${disks[2]})\n`
  await t.rejects(startServer(t, line), { message: /^export \/data \(line 1\): cannot open backend engine: VOLUME_FOREIGN: .*m0\.img: disk of volume served \(id [0-9a-f]{32}\), not of volume other$/ })
  const none = `/data *(rw,backend=engine,volume=served,disks=${dir}/zz*.img)\n`
  await t.rejects(startServer(t, none), { message: /disks: ".*zz\*\.img" matches no file/ })
})
