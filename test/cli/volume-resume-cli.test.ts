/*
 * A `tsnfs volume replace` killed mid-rebuild (SIGKILL, a real process, real image files): the
 * configuration keeps the new member rebuilding at its last checkpoint (every 8 MiB), and the
 * next read-write open (`volume scrub --repair`) continues the rebuild from there; then every
 * member is ok, scrub finds nothing, and the volume reads its bytes exactly, also with another
 * member lost. TSNFS_SEED repeats a run.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import path from 'node:path'
import { openVolume } from '../../vfs/volume/open-volume.ts'
import { Raid5Device } from '../../vfs/volume/raid5.ts'
import { ROOT, scratch, seededBytes, tsnfsRaw } from '../vfs/engine/format-helpers.ts'

t.setTimeout(180_000)
const dir = scratch(t, 'volume-resume-cli')
const p = (name: string): string => path.join(dir, name)
const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 100000)
t.comment(`seed ${seed}`)

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const r = await tsnfsRaw(['volume', ...args])
  return { code: r.code, out: r.stdout.toString(), err: r.stderr }
}

t.test('a replace killed past its first checkpoint continues at the next open', async (t) => {
  const [a, b, c, d] = ['a.img', 'b.img', 'c.img', 'd.img'].map(p) as [string, string, string, string]
  const made = await run(['create', 'vol1', '--level', 'raid5', '--size', '12M', a, b, c])
  t.equal(made.code, 0, made.err)
  const v = await openVolume([a, b, c])
  const data = seededBytes(seed)(v.device.size)
  await v.device.write(0, data)
  await v.device.flush()
  await v.close()
  t.equal((await run(['fail', a, b, c, '--member', '1'])).code, 0)

  // 11 MiB at 2 MiB/s: the first checkpoint (8 MiB) after about 4 s; killed at 80 %.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cli/main.ts'), 'volume', 'replace', a, c, '--member', '1', '--new', d, '--size', '12M', '--rate', String(2 * 1024 * 1024)], {
    cwd: ROOT,
    // Without tap's coverage hooks, as tsnfsRaw runs its commands.
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS'))),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  const killedAt = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString()
      const m = /: (8\d)% \(/.exec(err)
      if (m !== null && child.kill('SIGKILL')) resolve(`${m[1]}%`)
    })
    child.on('close', (code) => {
      reject(new Error(`replace ended by itself (exit ${code}): ${err}`))
    })
  })
  await new Promise((resolve) => child.on('close', resolve))
  t.comment(`killed at ${killedAt}`)

  const st = await run(['status', a, c, d])
  t.match(st.out, /member 1: [0-9a-f]{32} .*rebuilding/, `the new member is rebuilding: ${st.out}`)
  const cfg = await openVolume([a, c, d], { readOnly: true })
  t.equal(cfg.config.members[1]?.rebuilt, 8 * 1024 * 1024, 'its checkpoint: 8 MiB')
  await cfg.close()

  const repaired = await run(['scrub', a, c, d, '--repair'])
  t.equal(repaired.code, 0, repaired.err)
  t.equal(repaired.out, 'raid5: 176 stripes, 0 parity mismatches, 0 repaired\n', 'the open resumed the rebuild, and scrub finds nothing')
  const whole = await run(['status', a, c, d])
  t.equal(whole.out.match(/\.img ok\n/g)?.length, 3, `every member ok: ${whole.out}`)

  const after = await openVolume([a, c, d])
  try {
    t.ok((await after.device.read(0, data.length)).equals(data), 'byte-exact')
    if (!(after.device instanceof Raid5Device)) throw new Error('raid5 on top')
    after.device.fail(0)
    t.ok((await after.device.read(0, data.length)).equals(data), 'byte-exact with member 0 lost: the new member holds its part')
  } finally {
    await after.close()
  }
})
