/*
 * tsnfs volume on a two-leg mirror (real processes, real image files): fail a leg, status
 * degraded, the export still byte-exact from the other leg; replace onto a new file with a rate
 * limit; whole again; scrub finds the second leg damaged behind the volume's back and --repair mends it from the first;
 * replace refuses a disk that is a member already, and fail refuses the last leg.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { MEMBER_RESERVED } from '../../vfs/volume/member-format.ts'
import { openVolume } from '../../vfs/volume/open-volume.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'

t.setTimeout(120_000)
const dir = scratch(t, 'volume-mirror')
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const MiB = 1024 * 1024
const bytes = seededBytes(seed)(5 * MiB)
const [a, b, c] = ['a.img', 'b.img', 'c.img'].map((n) => path.join(dir, n)) as [string, string, string]

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

async function exported(t: Test, disks: string[], name: string): Promise<Buffer> {
  const out = path.join(dir, name)
  const r = await run(['export', ...disks, '--to', out])
  t.equal(r.code, 0, r.err)
  return fs.readFileSync(out)
}

t.test('mirror: fail, degraded, replace, scrub', async (t) => {
  const made = await run(['create', 'mir', '--level', 'mirror', '--size', '6M', a, b])
  t.equal(made.code, 0, made.err)
  const v = await openVolume([a, b])
  t.equal(v.device.size, 5 * MiB)
  await v.device.write(0, bytes)
  await v.device.flush()
  await v.close()

  const failed = await run(['fail', a, b, '--member', '0'])
  t.equal(failed.code, 0, failed.err)
  const st = await run(['status', b])
  t.equal(st.code, 1)
  t.match(st.out, /mirror, 5242880 bytes, seq 2, degraded\n {2}member 0: [0-9a-f]{32} - failed .*\n {2}member 1: [0-9a-f]{32} .*b\.img ok\n$/)
  t.ok((await exported(t, [b], 'degraded.img')).equals(bytes), 'one leg serves every byte')
  const last = await run(['fail', b, '--member', '1'])
  t.equal(last.code, 8)
  t.match(last.err, /VOLUME_FAILED: volume mir already runs without member 0; failing member 1 too would lose it/)

  const self = await run(['replace', b, '--member', '0', '--new', b])
  t.equal(self.code, 8)
  t.match(self.err, /VOLUME_MEMBER: .*b\.img is one of the volume's disks already/)
  const began = Date.now()
  const rep = await run(['replace', b, '--member', '0', '--new', c, '--size', '6M', '--rate', String(4 * MiB)])
  t.equal(rep.code, 0, rep.err)
  t.ok(Date.now() - began >= 1000, '5 MiB at 4 MiB/s takes over a second')
  t.match(rep.err, /: 100% \(5242880 of 5242880 bytes\)\n$/)
  const whole = await run(['status', '--json', c, b])
  t.equal(whole.code, 0, whole.err)
  const j = JSON.parse(whole.out) as { degraded: boolean; seq: number; members: { state: string; path: string }[] }
  t.equal(j.degraded, false)
  t.equal(j.seq, 4, 'replaced (3) and marked ok (4)')
  t.strictSame(j.members.map((m) => [m.state, path.basename(m.path)]), [['ok', 'c.img'], ['ok', 'b.img']])
  t.ok((await exported(t, [c, b], 'whole.img')).equals(bytes))

  // A mirror cannot tell which copy is right: repair copies the first ok leg (member 0, c.img)
  // over the others, so the damage goes on member 1.
  // Every byte of the damage differs from what it replaces (fixed text could match a byte of the
  // seeded data by chance, and the scrub then counted 5: seed 97335, in CI).
  const fd = fs.openSync(b, 'r+')
  const at = MEMBER_RESERVED + 3 * MiB + 5
  const was = Buffer.alloc(6)
  fs.readSync(fd, was, 0, 6, at)
  fs.writeSync(fd, Buffer.from(was.map((x) => x ^ 0xff)), 0, 6, at)
  fs.closeSync(fd)
  const found = await run(['scrub', b, c])
  t.equal(found.code, 1)
  t.equal(found.out, 'mirror: 5242880 bytes, 1 mismatched ranges (6 bytes), 0 repaired\n')
  const fixed = await run(['scrub', '--repair', b, c])
  t.equal(fixed.out, 'mirror: 5242880 bytes, 1 mismatched ranges (6 bytes), 1 repaired\n')
  const clean = await run(['scrub', b, c])
  t.equal(clean.code, 0)
  t.equal(clean.out, 'mirror: 5242880 bytes, 0 mismatched ranges (0 bytes), 0 repaired\n')
  t.ok((await exported(t, [c, b], 'mended.img')).equals(bytes))
})
