/*
 * The cross-process tape lock (backup/tape-lock.ts) with real processes: one process holds a
 * tape through the NDMP tape service's drive (TAPE_OPEN for writing); another process reading it
 * as verify does fails at once with TAPE_BUSY naming the holder's pid, and our own drive answers
 * DEVICE_BUSY_ERR. Once the holder is killed (SIGKILL: no clean-up), its lock is stale and the
 * next taker breaks it. In one process a second taker is refused the same way, and release lets
 * the next one in.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { lockTape, TapeLockError } from '../../backup/tape-lock.ts'
import { TapeDrive } from '../../server/ndmp/tape/drive.ts'

const ROOT = resolve(import.meta.dirname, '../..')

/** Runs a small TypeScript program in its own node process (tsx); its stdout and exit come back. */
function child(t: Test, code: string): { proc: ChildProcess; out: () => string; line: (re: RegExp) => Promise<string>; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const waiters: Array<() => void> = []
  proc.stdout.on('data', (b: Buffer) => {
    out += b.toString()
    for (const w of waiters.splice(0)) w()
  })
  proc.stderr.on('data', (b: Buffer) => {
    out += b.toString()
  })
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  const exit = new Promise<number | null>((res) => proc.once('exit', (c) => { res(c) }))
  const line = async (re: RegExp): Promise<string> => {
    const deadline = Date.now() + 15_000
    for (;;) {
      const m = re.exec(out)
      if (m !== null) return m[0]
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no ${String(re)} in: ${out}`)
      await new Promise<void>((r) => {
        waiters.push(r)
        setTimeout(r, 200)
      })
    }
  }
  return { proc, out: () => out, line, exit }
}

const drive = (path: string): string => `import { TapeDrive } from ${JSON.stringify(join(ROOT, 'server/ndmp/tape/drive.ts'))}
const d = new TapeDrive(${JSON.stringify(path)})
await d.open({}, 'rdwr')
console.log('holding ' + process.pid)
setInterval(() => {}, 1000)`

const verifyRead = (path: string): string => `import { TapeStreamSource } from ${JSON.stringify(join(ROOT, 'dma/pool/tape-reader.ts'))}
const src = new TapeStreamSource([${JSON.stringify(path)}])
try {
  const b = await src.read(4)
  await src.close()
  console.log('read ' + (b === null ? 0 : b.length))
} catch (err) {
  console.log(err.code + ': ' + err.message)
  process.exitCode = 1
}`

t.test('two processes: a writer through the NDMP drive, a verify reader', async (t) => {
  const dir = t.testdir({})
  const tape = join(dir, 'L1.tape')
  await writeFile(tape, '')
  const holder = child(t, drive(tape))
  const pid = Number((await holder.line(/holding \d+/)).split(' ')[1])
  t.equal(pid, holder.proc.pid, 'the holder says its pid')
  const held = JSON.parse(await readFile(`${tape}.lock`, 'utf8')) as { pid: number; purpose: string }
  t.match(held, { pid, purpose: 'NDMP tape service, writing' }, 'the lock file names the holder')

  const reader = child(t, verifyRead(tape))
  t.equal(await reader.exit, 1, 'the second process fails at once')
  t.match(reader.out(), new RegExp(`^TAPE_BUSY: tape ${tape.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by process ${pid} on \\S+ \\(NDMP tape service, writing\\) since \\S+; lock file \\S+L1\\.tape\\.lock\\n$`), 'TAPE_BUSY naming the holder')

  const mine = new TapeDrive(tape)
  await t.rejects(mine.open({}, 'read'), { code: 'DEVICE_BUSY_ERR', message: new RegExp(`is in use by process ${pid}`) }, 'this process\'s drive: DEVICE_BUSY_ERR')

  holder.proc.kill('SIGKILL')
  await holder.exit
  t.ok(existsSync(`${tape}.lock`), 'a killed holder leaves its lock')
  const after = child(t, verifyRead(tape))
  t.equal(await after.exit, 0, after.out())
  t.match(after.out(), /^read \d+\n$/, 'the stale lock (its pid is gone) is broken and the tape read')
  t.notOk(existsSync(`${tape}.lock`), 'released after reading')
  const owner = {}
  await mine.open(owner, 'read')
  t.ok(existsSync(`${tape}.lock`), 'the drive holds it while open')
  await mine.release(owner)
  t.notOk(existsSync(`${tape}.lock`), 'and lets it go at close')
})

t.test('one process: a second taker is refused until release', async (t) => {
  const dir = t.testdir({})
  const tape = join(dir, 'T')
  const a = await lockTape(tape, 'backup (writing)')
  const since = (JSON.parse(await readFile(a.file, 'utf8')) as { since: string }).since
  const want = new TapeLockError(`tape ${tape} is in use by process ${process.pid} on ${hostname()} (backup (writing)) since ${since}; lock file ${tape}.lock`, process.pid)
  await t.rejects(lockTape(tape, 'verify (reading)'), want, 'TAPE_BUSY naming this process')
  await a.release()
  t.notOk(existsSync(`${tape}.lock`))
  const b = await lockTape(tape, 'verify (reading)')
  await a.release()
  t.ok(existsSync(`${tape}.lock`), 'a release by the old holder does not remove the new holder\'s lock')
  await b.release()
  // A lock file left empty by a creator that died before writing it: taken over once old.
  await writeFile(`${tape}.lock`, '')
  await t.rejects(lockTape(tape, 'x'), { code: 'TAPE_BUSY', message: `tape ${tape} is being locked by another process (${tape}.lock)` }, 'a fresh empty lock is respected')
})
