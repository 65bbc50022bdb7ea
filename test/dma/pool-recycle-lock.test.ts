/*
 * A pool recycling a tape takes the tape's lock (backup/tape-lock.ts) before emptying it: with
 * another process holding a recyclable tape's lock (as a verify reading it does), allocate()
 * passes that tape over for the next recyclable one; with every recyclable tape held, it fails
 * with TAPE_BUSY naming the first holder and empties nothing; once the holder is SIGKILLed, its
 * stale lock is broken and the tape recycled.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { tapePath } from '../../dma/pool/index-file.ts'
import { Pool } from '../../dma/pool/pool.ts'

const ROOT = resolve(import.meta.dirname, '../..')

/** Another process holding `tape`'s lock as a verify reading it does (dma/pool/tape-reader.ts), until killed. */
async function reader(t: Test, tape: string): Promise<ChildProcess> {
  const code = `import { lockTape } from ${JSON.stringify(join(ROOT, 'backup/tape-lock.ts'))}
await lockTape(${JSON.stringify(tape)}, 'verify (reading)')
console.log('holding')
setInterval(() => {}, 1000)`
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  const [line] = (await once(proc.stdout, 'data')) as [Buffer]
  t.equal(line.toString(), 'holding\n', `process ${proc.pid} holds ${tape}`)
  return proc
}

t.test('recycling passes over a tape another process reads, and fails when all are held', async (t) => {
  const dir = join(t.testdir({}), 'p')
  for (const l of ['T1', 'T2', 'T3']) await Pool.label(dir, l, { capacity: 100, keepChains: 1 })
  const pool = await Pool.open(dir)
  const backup = async (job: string, level: number, day: number, status: 'done' | 'failed' = 'done'): Promise<string> => {
    await pool.beginBackup(job, 'nas:/a', level, new Date(Date.UTC(2026, 0, day)))
    const got = await pool.allocate(job)
    if (!('label' in got)) throw new Error(`no tape for ${job}`)
    await writeFile(got.path, `data of ${job}`)
    await pool.endBackup(job, status, 10)
    return got.label
  }
  t.equal(await backup('1', 0, 1), 'T1')
  t.equal(await backup('2', 0, 2), 'T2')
  t.equal(await backup('3', 1, 3, 'failed'), 'T3')
  // Recyclable now, in order: T3 (failed backup), then T1 (the older chain).
  t.strictSame((await pool.peek()), { label: 'T3', isNew: false })

  const first = await reader(t, tapePath(dir, 'T3'))
  await pool.beginBackup('4', 'nas:/a', 0, new Date(Date.UTC(2026, 0, 4)))
  t.strictSame(await pool.allocate('4'), { label: 'T1', path: tapePath(dir, 'T1') }, 'the held tape is passed over')
  t.equal(await readFile(tapePath(dir, 'T3'), 'utf8'), 'data of 3', 'the held tape is not emptied')
  t.equal(await readFile(tapePath(dir, 'T1'), 'utf8'), '', 'the next recyclable tape is')
  await writeFile(tapePath(dir, 'T1'), 'data of 4')
  await pool.endBackup('4', 'done', 10)

  // Recyclable now: T3 (failed), T2 (job 2's chain is older than job 4's). Both held.
  const second = await reader(t, tapePath(dir, 'T2'))
  await pool.beginBackup('5', 'nas:/a', 1, new Date(Date.UTC(2026, 0, 5)))
  await t.rejects(pool.allocate('5'), { code: 'TAPE_BUSY', message: new RegExp(`^tape ${tapePath(dir, 'T3')} is in use by process ${first.pid} on \\S+ \\(verify \\(reading\\)\\)`) }, 'all held: TAPE_BUSY naming the first holder')
  t.equal(await readFile(tapePath(dir, 'T3'), 'utf8'), 'data of 3')
  t.equal(await readFile(tapePath(dir, 'T2'), 'utf8'), 'data of 2', 'nothing emptied')
  t.match((await pool.index()).backups.find((b) => b.job === '5'), { tapes: [] }, 'and nothing given to the job')

  first.kill('SIGKILL')
  await once(first, 'exit')
  t.strictSame(await pool.allocate('5'), { label: 'T3', path: tapePath(dir, 'T3') }, 'the killed holder\'s stale lock is broken')
  t.equal(await readFile(tapePath(dir, 'T3'), 'utf8'), '', 'and its tape recycled')
  t.equal(await readFile(tapePath(dir, 'T2'), 'utf8'), 'data of 2', 'the other held tape still untouched')
  second.kill('SIGKILL')
})
