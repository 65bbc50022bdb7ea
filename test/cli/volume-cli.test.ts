/*
 * tsnfs volume from the command line (real processes, real image files): a RAID-5 made by
 * `volume create`, an ext4 file system made by `volume mkfs` and written in-process through the engine,
 * judged by e2fsck -fn and debugfs on the `volume export` image; status over renamed and
 * reordered disks, a foreign disk and a stale one refused; fail → degraded → replace → whole
 * → scrub; scrub finding and repairing a parity mismatch; usage errors.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import { openEngineOn } from '../../vfs/engine/fs/assemble.ts'
import { MEMBER_RESERVED } from '../../vfs/volume/member-format.ts'
import { openVolume } from '../../vfs/volume/open-volume.ts'
import { scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'
import { debugfs, e2fsck } from '../vfs/engine/fsck-helpers.ts'

t.setTimeout(120_000)
const dir = scratch(t, 'volume-cli')
const p = (name: string): string => path.join(dir, name)
const owner = { uid: 0, gid: 0 }
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)
const big = seededBytes(seed)(3 * 1024 * 1024 + 777)
const small = 'hello from a RAID-5 volume\n'

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

/** Exports the volume on `disks` and asks e2fsck and debugfs about it. */
async function judge(t: Test, disks: string[], name: string): Promise<void> {
  const out = p(`${name}.img`)
  const r = await run(['export', ...disks, '--to', out])
  t.equal(r.code, 0, r.err)
  const fsck = e2fsck(out)
  t.equal(fsck.code, 0, `e2fsck -fn clean on ${name}: ${fsck.out}`)
  t.notMatch(fsck.out, /\? no$|IGNORED/m, 'and nothing left unfixed')
  t.equal(debugfs(out, 'cat /small.txt', false), small, 'the small file, by debugfs')
  const dumped = p(`${name}.big`)
  debugfs(out, `dump /big.bin ${dumped}`, false)
  t.ok(fs.readFileSync(dumped).equals(big), 'the 3 MiB file, byte-exact')
  t.ok(fs.statSync(out).blocks * 512 < fs.statSync(out).size, 'the export is sparse')
  fs.rmSync(out)
  fs.rmSync(dumped)
}

const [a, b, c, d] = ['a.img', 'b.img', 'c.img', 'd.img'].map(p) as [string, string, string, string]

t.test('create, volume mkfs, write through the engine, export: e2fsck clean', async (t) => {
  const made = await run(['create', 'vol1', '--level', 'raid5', '--size', '12M', a, b, c])
  t.equal(made.code, 0, made.err)
  t.match(made.out, /^volume vol1 \(id [0-9a-f]{32}\): raid5 of 3 disks\n {2}member 0: [0-9a-f]{32} .*a\.img\n/)
  const st = await run(['status', a, b, c])
  t.equal(st.code, 0, st.err)
  t.equal(st.out.match(/\.img ok\n/g)?.length, 3, 'three ok members')
  t.match(st.out, /raid5, 23068672 bytes, seq 1, ok\n/, '2 × (12 MiB − 1 MiB reserved)')

  const mk = await run(['mkfs', a, b, c])
  t.equal(mk.code, 0, mk.err)
  t.match(mk.out, /^volume vol1: ext4, 22528 blocks of 1024 bytes, \d+ inodes, UUID [0-9a-f-]{36}\n$/)
  const again = await run(['mkfs', a, b, c])
  t.equal(again.code, 8)
  t.match(again.err, /^tsnfs volume mkfs: volume vol1 already holds an ext4 file system \(UUID [0-9a-f-]{36}\); use --force/)
  const v = await openVolume([a, b, c])
  const e = await openEngineOn(v.device, { commitIntervalMs: 0 })
  const s = (await e.create(e.root(), Buffer.from('small.txt'), { how: 'unchecked', attr: {} }, owner)).ref
  await e.write(s, 0n, Buffer.from(small), 'file_sync')
  const f = (await e.create(e.root(), Buffer.from('big.bin'), { how: 'unchecked', attr: {} }, owner)).ref
  await e.write(f, 0n, big, 'file_sync')
  await e.close()
  await v.close()
  await judge(t, [a, b, c], 'first')
})

t.test('status finds the volume whatever the order and names; foreign disks refused', async (t) => {
  fs.renameSync(b, p('renamed.img'))
  const st = await run(['status', '--json', c, p('renamed.img'), a])
  t.equal(st.code, 0, st.err)
  const j = JSON.parse(st.out) as { name: string; level: string; members: { index: number; path: string; state: string }[]; degraded: boolean }
  t.equal(j.name, 'vol1')
  t.equal(j.level, 'raid5')
  t.strictSame(j.members.map((m) => [m.index, path.basename(m.path), m.state]), [[0, 'a.img', 'ok'], [1, 'renamed.img', 'ok'], [2, 'c.img', 'ok']])
  t.equal(j.degraded, false)
  fs.renameSync(p('renamed.img'), b)

  const other = await run(['create', 'other', '--level', 'mirror', '--size', '4M', p('o1.img'), p('o2.img')])
  t.equal(other.code, 0, other.err)
  const mixed = await run(['status', a, b, p('o1.img')])
  t.equal(mixed.code, 8)
  t.match(mixed.err, /^tsnfs volume status: VOLUME_FOREIGN: disks of 2 volumes given together \(volume vol1 .*; volume other .*o1\.img\)\n$/)
  const again = await run(['create', 'again', '--level', 'span', a])
  t.equal(again.code, 8)
  t.match(again.err, /VOLUME_FOREIGN: .*a\.img is member 0 of volume vol1 \(id [0-9a-f]{32}\); give force to overwrite it/)
  const plain = p('plain.img')
  fs.writeFileSync(plain, Buffer.alloc(2 * MEMBER_RESERVED))
  const none = await run(['status', a, plain])
  t.equal(none.code, 8)
  t.match(none.err, /VOLUME_NO_SUPERBLOCK: .*plain\.img/)
})

t.test('fail a member: degraded, data reads; replace: whole again; scrub clean', async (t) => {
  const failed = await run(['fail', a, b, c, '--member', '1'])
  t.equal(failed.code, 0, failed.err)
  t.match(failed.out, /member 1 \([0-9a-f]{32}\) marked failed, configuration seq 2\n/)
  const st = await run(['status', a, c])
  t.equal(st.code, 1, 'degraded: exit 1')
  t.match(st.out, /seq 2, degraded\n/)
  t.match(st.out, /member 1: [0-9a-f]{32} - failed \(member 1 \([0-9a-f]{32}\) marked failed: failed by hand \(tsnfs volume fail\)\)\n/)
  const stale = await run(['status', a, b, c])
  t.equal(stale.code, 8, 'the failed disk is stale now')
  t.match(stale.err, /VOLUME_STALE: .*b\.img: stale member: configuration seq 1, volume is at 2; the volume marks it failed/)
  const twice = await run(['fail', a, c, '--member', '0'])
  t.equal(twice.code, 8, 'a second member of RAID-5 is refused')
  t.match(twice.err, /VOLUME_FAILED: volume vol1 already runs without member 1; failing member 0 too would lose it/)
  await judge(t, [a, c], 'degraded')

  const rep = await run(['replace', a, c, '--member', '1', '--new', d, '--size', '12M'])
  t.equal(rep.code, 0, rep.err)
  t.match(rep.err, /rebuild of member 1 onto .*d\.img: 100% \(11534336 of 11534336 bytes\)\n/)
  // seq 3 the replace, 4 the rebuild's checkpoint at 8 MiB of the 11 MiB member, 5 the member ok.
  t.match(rep.out, /member 1 rebuilt onto .*d\.img \([0-9a-f]{32}\), configuration seq 5\n/)
  const whole = await run(['status', a, c, d])
  t.equal(whole.code, 0, whole.err)
  t.equal(whole.out.match(/\.img ok\n/g)?.length, 3)
  const scrub = await run(['scrub', d, a, c])
  t.equal(scrub.code, 0, scrub.err)
  t.equal(scrub.out, 'raid5: 176 stripes, 0 parity mismatches, 0 repaired\n')
  await judge(t, [a, c, d], 'replaced')
})

t.test('scrub finds a damaged unit and --repair rewrites its parity', async (t) => {
  // The last unit of d's data area: past anything mkfs and two files put there? Whatever it
  // holds, the stripe's parity no longer matches it.
  const fd = fs.openSync(d, 'r+')
  fs.writeSync(fd, Buffer.from('garbage'), 0, 7, MEMBER_RESERVED + 11 * 1024 * 1024 - 100)
  fs.closeSync(fd)
  const found = await run(['scrub', a, c, d])
  t.equal(found.code, 1)
  t.equal(found.out, 'raid5: 176 stripes, 1 parity mismatches, 0 repaired\n')
  const fixed = await run(['scrub', '--repair', a, c, d])
  t.equal(fixed.code, 1, 'a mismatch was found (and repaired)')
  t.equal(fixed.out, 'raid5: 176 stripes, 1 parity mismatches, 1 repaired\n')
  const clean = await run(['scrub', a, c, d])
  t.equal(clean.code, 0)
  t.equal(clean.out, 'raid5: 176 stripes, 0 parity mismatches, 0 repaired\n')
})

t.test('usage errors exit 2', async (t) => {
  for (const args of [['create', 'x', '--level', 'raid6', a], ['fail', a, '--member', 'one'], ['scrub', '--member', '1', a]]) {
    const r = await run(args)
    t.equal(r.code, 2, args.join(' '))
    t.match(r.err, /^tsnfs volume: .*\nusage: tsnfs volume/)
  }
  const help = await tsnfsRaw(['volume', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout.toString(), /online, through a running server's admin socket/)
})
