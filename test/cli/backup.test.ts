/*
 * tsnfs backup as users run it: label a pool; a foreground run (its own process) fills its tape
 * and waits "needs next tape" while list, label and continue come from elsewhere over the
 * control socket; abort; logs by level; serve --backup-schedule running the manager (a manual
 * run delegated to it); a bad schedule line stops serve with its line number. Commands other
 * than the long-running ones run in this process (backup(argv, io)): a tsnfs process costs
 * seconds on a loaded machine.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { backup } from '../../cli/backup.ts'
import { ROOT, serveProcess, TSNFS_ARGS, tsnfs } from './cli.ts'

interface Ran {
  code: number
  stdout: string
  stderr: string
}

async function cmd(...argv: string[]): Promise<Ran> {
  let stdout = ''
  let stderr = ''
  const code = await backup(argv, { out: (s) => (stdout += s), err: (s) => (stderr += s) })
  return { code, stdout, stderr }
}

/** A long-running `tsnfs backup run` in its own process. */
function runInBackground(t: Test, args: string[]): { exit: Promise<number | null>; stdout: () => string; stderrLine: (re: RegExp) => Promise<string> } {
  const child = spawn(process.execPath, [...TSNFS_ARGS, 'backup', 'run', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const exit = new Promise<number | null>((r) => child.on('exit', r))
  const stderrLine = async (re: RegExp): Promise<string> => {
    for (let i = 0; i < 1200; i++) {
      const line = err.split('\n').find((l) => re.test(l))
      if (line !== undefined) return line
      if (child.exitCode !== null) break
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error(`no stderr line ${String(re)}: ${err}`)
  }
  return { exit, stdout: () => out, stderrLine }
}

t.test('foreground run, tape change, abort, logs', async (t) => {
  const dir = t.testdir({})
  const data = randomBytes(3000)
  await writeFile(join(dir, 'stream.tar'), data)
  const pool = join(dir, 'pool')
  const state = join(dir, 'st')
  const label = await cmd('label', pool, 'A', '--capacity', '2K', '--keep', '1')
  t.equal(label.code, 0, label.stderr)
  t.match(label.stdout, /labelled A in .*pool \(2048 bytes\)/)
  const again = await cmd('label', pool, 'A')
  t.equal(again.code, 1)
  t.match(again.stderr, /DMA_LABEL_EXISTS: .*tape A is labelled already/)

  const run = runInBackground(t, [`file:${join(dir, 'stream.tar')}`, '--level', '0', '--to', pool, '--state', state])
  const need = await run.stderrLine(/needs next tape/)
  t.match(need, /job 1 needs next tape pool-001: tsnfs backup label .*pool pool-001, then tsnfs backup continue 1 --state /)
  const list = await cmd('list', '--state', state, '--json')
  t.match(JSON.parse(list.stdout), { manager: true, jobs: [{ id: '1', state: 'paused', tapes: ['A'], needs: { label: 'pool-001' } }] })
  const early = await cmd('continue', '1', '--state', state)
  t.equal(early.code, 1)
  t.match(early.stderr, /DMA_NO_TAPE: job 1 needs tape pool-001/)
  t.equal((await cmd('label', pool, 'pool-001')).code, 0)
  const cont = await cmd('continue', '1', '--state', state)
  t.equal(cont.code, 0, cont.stderr)
  t.equal(await run.exit, 0, 'the foreground run ends with its job')
  t.match(run.stdout(), /job 1 done: 3000 bytes on A, pool-001/)
  const tapes = await Promise.all(['A', 'pool-001'].map((l) => readFile(join(pool, `${l}.tape`))))
  t.ok(Buffer.concat(tapes).equals(data), 'the two tapes hold the stream')

  // A second foreground run, in this process this time; aborted over the socket while it waits.
  const second = cmd('run', `file:${join(dir, 'stream.tar')}`, '--level', '1', '--to', pool, '--state', state)
  for (let i = 0; i < 400; i++) {
    const l = JSON.parse((await cmd('list', '--state', state, '--json')).stdout) as { jobs: Array<{ id: string; state: string }> }
    if (l.jobs.some((j) => j.id === '2' && j.state === 'paused')) break
    await new Promise((r) => setTimeout(r, 25))
  }
  const abort = await cmd('abort', '2', '--state', state)
  t.equal(abort.code, 0, abort.stderr)
  t.match(abort.stdout, /job 2 aborted/)
  const ended = await second
  t.equal(ended.code, 1, 'an aborted run exits 1')
  t.match(ended.stderr, /job 2 needs next tape pool-002/)

  const text = await cmd('list', '--state', state)
  t.match(text.stdout, /\n +1 +done +0 .* 3000 .*A,pool-001\n +2 +aborted +1 .* job 2 was aborted\n/, 'no manager: list reads the registry')
  const l1 = await cmd('log', '--level', '1', '--state', state, '--json')
  const lines = l1.stdout.trim().split('\n').map((l) => JSON.parse(l) as { job: string; backupLevel: number; level: string; message: string })
  t.ok(lines.length > 0 && lines.every((l) => l.job === '2' && l.backupLevel === 1), 'log --level 1: the level-1 job only')
  t.match(lines.map((l) => l.message), [/level 1 backup/, /changes since job 1 \(level 0/])
  const warns = await cmd('log', '1', '--severity', 'warn', '--state', state)
  t.match(warns.stdout, /job 1 L0 warn {2}tape A is full/)
  t.notMatch(warns.stdout, / info /)
  const noManager = await cmd('continue', '2', '--state', state)
  t.equal(noManager.code, 1)
  t.match(noManager.stderr, /DMA_JOB_STATE: no backup manager runs on/)
  const shown = await cmd('pool', pool)
  t.match(shown.stdout, /A +full +2048 \/ 2048\n +pool-001 +used +952 \/ 2048\n/)
  const usage = await cmd('run', 'file:x', '--to', pool)
  t.equal(usage.code, 2)
  t.match(usage.stderr, /run: EXPORT --level N --to POOL\nusage: tsnfs backup/)
  const badLevel = await cmd('run', 'file:x', '--level', '10', '--to', pool, '--state', state)
  t.equal(badLevel.code, 1)
  t.match(badLevel.stderr, /DMA_BAD_LEVEL/)
  t.equal((await cmd('frobnicate')).code, 2)
})

t.test('serve runs the manager', async (t) => {
  const dir = t.testdir({ 'f.bin': 'abc', sched: '0 3 * * *  nightly  file:f.bin  pool  levels=0@sun,1-6\n', bad: '0 3 * * * a file:f pool level=0\n0 3 * * * b file:f pool levels=0@sun,9-9-9\n' })
  await cmd('label', join(dir, 'pool'), 'T1')
  const bad = await tsnfs(['serve', '--port', '0', '--host', '127.0.0.1', '--state-dir', join(dir, 'sd0'), '--backup-schedule', join(dir, 'bad'), '--no-lock'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /bad:2: /, 'a bad schedule stops serve, naming the line')
  const state = join(dir, 'bs')
  const s = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--state-dir', join(dir, 'sd'), '--no-lock', '--log-level', 'warn', '--backup-schedule', join(dir, 'sched'), '--backup-state', state])
  t.match(s.banner, /backups: 1 scheduled jobs, state .*bs\n/)
  const list = await cmd('list', '--state', state, '--json')
  t.match(JSON.parse(list.stdout), { manager: true, jobs: [], scheduled: [{ name: 'nightly', next: /T03:00:00\.000Z$/ }] })
  const run = await cmd('run', `file:${join(dir, 'f.bin')}`, '--level', '0', '--to', join(dir, 'pool'), '--state', state, '--wait')
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /job 1 started by the manager of .*\njob 1 done\n/)
  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0)
  const after = await cmd('list', '--state', state, '--json')
  t.match(JSON.parse(after.stdout), { manager: false, jobs: [{ id: '1', state: 'done', bytes: 3 }] }, 'the manager stopped with the server')
})
