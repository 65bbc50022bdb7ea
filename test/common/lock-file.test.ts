/*
 * The shared lock file (common/lock-file.ts) with real processes: a holder in another process
 * refuses us with its pid and purpose, a SIGKILLed holder's lock is taken over, a waiting taker
 * gets the lock once the holder releases it, and of processes racing for one stale lock exactly
 * one wins. Then the judgements on files written by hand: reused pid, other boot, other host,
 * a file that does not parse (held while young), an old break file, release of a lock not ours.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { acquireLockFile, JSON_LOCK_FORMAT, LockBusyError, withLockFile } from '../../common/lock-file.ts'

const ROOT = resolve(import.meta.dirname, '../..')

interface Holder {
  proc: ChildProcessWithoutNullStreams
  /** Resolves with the next line the holder prints. */
  next(): Promise<string>
  say(line: string): void
}

function holder(t: Test, path: string, purpose: string): Holder {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/lock-file-holder.ts'), path, purpose], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  const lines: string[] = []
  const waiters: Array<(l: string) => void> = []
  let buf = ''
  let err = ''
  proc.stderr.on('data', (b: Buffer) => (err += b.toString()))
  proc.stdout.on('data', (b: Buffer) => {
    buf += b.toString()
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i)
      buf = buf.slice(i + 1)
      const w = waiters.shift()
      if (w !== undefined) w(l)
      else lines.push(l)
    }
  })
  proc.once('exit', (code) => {
    for (const w of waiters.splice(0)) w(`exited ${code} ${err}`)
  })
  return {
    proc,
    next: async () => lines.shift() ?? new Promise<string>((res) => waiters.push(res)),
    say: (l) => proc.stdin.write(`${l}\n`),
  }
}

async function take(t: Test, h: Holder): Promise<string> {
  t.equal(await h.next(), 'ready')
  h.say('go')
  return h.next()
}

t.test('a holder in another process: refused with its pid, taken over once SIGKILLed', async (t) => {
  const path = join(t.testdir(), 'x.lock')
  const h = holder(t, path, 'writing tape L1')
  t.equal(await take(t, h), `held ${h.proc.pid}`)
  const err = await acquireLockFile(path, { purpose: 'verify' }).catch((e: unknown) => e)
  t.ok(err instanceof LockBusyError)
  t.match(err, { code: 'LOCK_BUSY', reason: 'held', holder: { pid: h.proc.pid, host: hostname(), purpose: 'writing tape L1' }, message: `${path} is held by process ${h.proc.pid} on ${hostname()} (writing tape L1)` })
  h.proc.kill('SIGKILL')
  await new Promise((res) => h.proc.once('exit', res))
  t.ok(existsSync(path), 'a killed holder leaves its lock')
  const mine = await acquireLockFile(path, { purpose: 'verify' })
  t.match(JSON.parse(readFileSync(path, 'utf8')), { pid: process.pid, purpose: 'verify' }, 'the stale lock is ours now')
  await mine.release()
  t.strictSame(readdirSync(join(path, '..')), [], 'release and the take-over leave nothing behind')
})

t.test('a waiting taker gets the lock when the holder releases it', async (t) => {
  const path = join(t.testdir(), 'w.lock')
  const h = holder(t, path, 'pool change')
  t.equal(await take(t, h), `held ${h.proc.pid}`)
  let got = false
  const waiting = withLockFile(path, { waitMs: 30_000 }, async () => {
    got = true
    return readFileSync(path, 'utf8')
  })
  await new Promise((res) => setTimeout(res, 200))
  t.equal(got, false, 'still waiting while the holder holds')
  h.say('release')
  t.equal(await h.next(), 'released')
  t.match(JSON.parse(await waiting), { pid: process.pid }, 'taken once released')
  t.notOk(existsSync(path), 'withLockFile releases after the work')
  // Without waiting, a live holder refuses at once.
  const h2 = holder(t, path, 'pool change')
  t.equal(await take(t, h2), `held ${h2.proc.pid}`)
  await t.rejects(withLockFile(path, { waitMs: 100 }, async () => 1), { code: 'LOCK_BUSY', reason: 'held' }, 'a short wait ends with LOCK_BUSY')
})

t.test('processes racing for one stale lock: exactly one wins', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'r.lock')
  for (let round = 0; round < 3; round++) {
    writeFileSync(path, JSON_LOCK_FORMAT.encode({ pid: 2 ** 22 + 5, start: '7', boot: '', host: hostname(), purpose: 'dead', since: '', nonce: '00' }))
    const hs = Array.from({ length: 4 }, () => holder(t, path, `racer ${round}`))
    for (const h of hs) t.equal(await h.next(), 'ready')
    for (const h of hs) h.say('go')
    const said = await Promise.all(hs.map((h) => h.next()))
    const won = hs.filter((h, i) => said[i] === `held ${h.proc.pid}`)
    t.equal(won.length, 1, `round ${round}: one winner (${said.join(', ')})`)
    const winner = won[0]?.proc.pid ?? -1
    t.strictSame(said.filter((s) => s.startsWith('busy')), Array.from({ length: 3 }, () => `busy held ${winner}`), `round ${round}: the others name it`)
    for (const h of hs) h.proc.kill('SIGKILL')
    await Promise.all(hs.map(async (h) => {
      if (h.proc.exitCode === null && h.proc.signalCode === null) await new Promise((res) => h.proc.once('exit', res))
    }))
    t.strictSame(readdirSync(dir), ['r.lock'], `round ${round}: only the winner's lock is left`)
  }
})

t.test('judging lock files written by hand', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'j.lock')
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  const myStart = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ')[19] ?? ''
  const tryWith = async (content: string, unreadableStaleMs?: number): Promise<unknown> => {
    writeFileSync(path, content)
    try {
      const lock = await acquireLockFile(path, unreadableStaleMs === undefined ? {} : { unreadableStaleMs })
      await lock.release()
      return 'taken'
    } catch (err) {
      return err
    }
  }
  const json = (pid: number, start: string, b: string, host: string): string => JSON_LOCK_FORMAT.encode({ pid, start, boot: b, host, purpose: 'p', since: '', nonce: '01' })
  t.equal(await tryWith(json(process.pid, '1', boot, hostname())), 'taken', 'a reused pid (other start time) is stale')
  t.equal(await tryWith(json(process.pid, myStart, '00000000-0000-0000-0000-000000000000', hostname())), 'taken', 'another boot is stale')
  t.equal(await tryWith(json(2 ** 22 + 1, '5', boot, hostname())), 'taken', 'a pid that does not exist is stale')
  t.equal(await tryWith('{"pid":4194309,"host":"' + hostname() + '"}\n'), 'taken', 'an older writer (pid and host only): a dead pid is stale')
  t.match(await tryWith(json(process.pid, myStart, boot, hostname())), { reason: 'held', holder: { pid: process.pid } }, 'our own live lock holds')
  t.match(await tryWith(json(1, '1', boot, 'elsewhere')), { reason: 'held', holder: { pid: 1, host: 'elsewhere' } }, 'another host is never judged stale')
  t.match(await tryWith(''), { reason: 'unreadable', holder: null, message: `${path} is held by unreadable` }, 'an empty lock is held by default')
  t.match(await tryWith('', 10_000), { reason: 'unreadable' }, 'a young empty lock is held')
  writeFileSync(path, '')
  utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
  const old = await acquireLockFile(path, { unreadableStaleMs: 10_000 })
  t.pass('an old empty lock is taken over once unreadableStaleMs allows')
  await old.release()

  // A break file left by a taker that died while breaking: the next takers remove it once old.
  writeFileSync(path, json(2 ** 22 + 1, '5', boot, hostname()))
  writeFileSync(`${path}.break`, '')
  utimesSync(`${path}.break`, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
  const after = await acquireLockFile(path)
  t.strictSame(readdirSync(dir), ['j.lock'], 'the old break file is gone, the stale lock broken')
  // A release by a holder whose lock was taken over leaves the new holder's lock alone.
  const theirs = json(process.pid, myStart, boot, hostname())
  writeFileSync(path, theirs)
  await after.release()
  t.equal(readFileSync(path, 'utf8'), theirs, 'release removes only our own lock')
})
