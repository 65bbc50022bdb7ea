/*
 * Locks through two FUSE mounts of one server, as two client hosts (each
 * mount calls from its own loopback address, goes by its own caller name,
 * and answers PORTMAP for its lock service on the fixed port P the server
 * asks): util-linux flock(1) and Python's fcntl.lockf contend through the
 * server's NLM; a blocking wait is released by the holder's exit (the
 * GRANTED callback reaches the other mount); a process killed holding a
 * lock loses it (the kernel closes its files: FLUSH and RELEASE); a killed
 * waiter's request is cancelled; nolock keeps locks in the kernel.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { canFuse, mountFuse, mountpointDir, sh, TEST_OPTS } from '../helpers/fuse.ts'
import { freePort } from '../helpers/ports.ts'
import { startServer } from '../helpers/server.ts'

if (!canFuse) {
  t.plan(0, 'FUSE mounts need root and /proc/filesystems')
  process.exit(0)
}

const base = t.testdir({ srv: { export: {} }, a: {}, b: {} })
const P = await freePort()
const dir = join(base, 'srv/export')
mkdirSync(dir, { recursive: true })
// The server asks each client host's portmapper on P (each host answers on its own address).
const srv = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`, { locking: { nsm: { peerPortmapPort: P } } })
const f = { dir }
const portOpts = `port=${String(srv.port)},mountport=${String(srv.port)}`
const source = `127.0.0.1:${dir}`
const lockOpts = (name: string, addr: string): string => `${TEST_OPTS},${portOpts},clientaddr=${addr},callername=${name},lockportmapport=${String(P)},lockstatedir=${join(base, name)}`
const A = mountpointDir(t)
const B = mountpointDir(t)
await mountFuse(t, source, A, lockOpts('a', '127.0.0.2'))
await mountFuse(t, source, B, lockOpts('b', '127.0.0.3'))

/** A process group (bash -c script), so that killing it kills what it started (flock's command keeps the locked file open). */
function group(script: string): ChildProcess {
  return spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
}

function kill(c: ChildProcess): Promise<unknown> {
  const exited = new Promise(resolve => c.once('exit', resolve))
  if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL')
  return exited
}

/** Resolves with the first stdout line of c. */
function firstLine(c: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    c.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const nl = out.indexOf('\n')
      if (nl >= 0) resolve(out.slice(0, nl))
    })
    c.once('exit', code => { reject(new Error(`exited ${String(code)} before a line: ${out}`)) })
  })
}

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

t.test('flock: -n fails while the other mount holds it; a blocking flock gets it when the holder exits', async t => {
  writeFileSync(join(f.dir, 'fl'), 'x')
  const holder = group(`flock ${A}/fl sh -c 'echo held; exec sleep 60'`)
  t.equal(await firstLine(holder), 'held')
  const n = await sh(`flock -n ${B}/fl true`)
  t.equal(n.code, 1, 'flock -n on the other mount fails (EWOULDBLOCK)')
  const shared = await sh(`flock -n -s ${B}/fl true`)
  t.equal(shared.code, 1, 'a shared flock is refused too')
  const waiter = group(`flock ${B}/fl echo got`)
  const got = firstLine(waiter)
  await sleep(700)
  t.equal(waiter.exitCode, null, 'the blocking flock waits')
  const t0 = Date.now()
  await kill(holder)
  t.equal(await got, 'got', 'granted once the holder exited')
  t.ok(Date.now() - t0 < 10_000, `within ${String(Date.now() - t0)} ms (through the GRANTED callback, not a 30 s poll)`)
  // The waiter's lock goes with its last close, which FUSE sends as an asynchronous RELEASE (the
  // unlock reaches the server after the process is gone): free once that lands, not at its exit.
  if (waiter.exitCode === null) await new Promise(resolve => waiter.once('exit', resolve))
  const end = Date.now() + 10_000
  let free = await sh(`flock -n ${A}/fl true`)
  while (free.code !== 0 && Date.now() < end) {
    await sleep(50)
    free = await sh(`flock -n ${A}/fl true`)
  }
  t.equal(free.code, 0, 'free again afterwards')
})

const PY_LOCKS = `
import errno, fcntl, os, struct, sys
a = open(sys.argv[1], 'r+')
b = open(sys.argv[2], 'r+')
fcntl.lockf(a, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0)
fcntl.lockf(a, fcntl.LOCK_SH | fcntl.LOCK_NB, 10, 100)
def attempt(f, kind, length, start):
    try:
        fcntl.lockf(f, kind | fcntl.LOCK_NB, length, start)
        return 'ok'
    except OSError as e:
        return errno.errorcode[e.errno]
print(attempt(b, fcntl.LOCK_EX, 5, 5))      # inside a's exclusive range
print(attempt(b, fcntl.LOCK_SH, 1, 9))      # shared over exclusive
print(attempt(b, fcntl.LOCK_EX, 10, 10))    # just past it
print(attempt(b, fcntl.LOCK_SH, 10, 100))   # a second reader
print(attempt(b, fcntl.LOCK_EX, 1, 105))    # writer over readers
q = struct.pack('hhqqi', fcntl.F_WRLCK, 0, 3, 1, 0)
r = struct.unpack('hhqqi', fcntl.fcntl(b, fcntl.F_GETLK, q))
print('getlk', r[0] == fcntl.F_WRLCK, r[2], r[3])
fcntl.lockf(a, fcntl.LOCK_UN, 5, 0)
print(attempt(b, fcntl.LOCK_EX, 5, 0))      # a unlocked the first half
print(attempt(b, fcntl.LOCK_EX, 1, 5))      # the second half is still a's
a.close()                                   # close drops a's remaining locks
print(attempt(b, fcntl.LOCK_EX, 1, 5))
`

t.test('fcntl.lockf byte ranges between the mounts (Python)', async t => {
  writeFileSync(join(f.dir, 'py'), Buffer.alloc(200))
  writeFileSync(join(base, 'locks.py'), PY_LOCKS)
  const r = await sh(`python3 ${join(base, 'locks.py')} ${A}/py ${B}/py`)
  t.equal(r.stderr, '')
  t.same(r.stdout.trim().split('\n'), ['EAGAIN', 'EAGAIN', 'ok', 'ok', 'EAGAIN', 'getlk True 0 10', 'ok', 'EAGAIN', 'ok'])
})

t.test('a process killed holding a lock loses it (the kernel closes its files)', async t => {
  writeFileSync(join(f.dir, 'kill'), Buffer.alloc(10))
  for (const how of ['lockf', 'flock'] as const) {
    const script = how === 'lockf'
      ? `exec python3 -c "import fcntl, time; f = open('${A}/kill', 'r+'); fcntl.lockf(f, fcntl.LOCK_EX, 0, 0); print('held', flush=True); time.sleep(60)"`
      : `exec flock ${A}/kill sh -c 'echo held; exec sleep 60'`
    const holder = group(script)
    t.equal(await firstLine(holder), 'held')
    t.equal((await sh(`flock -n ${B}/kill true`)).code, 1, `${how}: held`)
    await kill(holder)
    let code = 1
    for (let i = 0; i < 50 && code !== 0; i++) {
      code = (await sh(`flock -n ${B}/kill true`)).code
      if (code !== 0) await sleep(100)
    }
    t.equal(code, 0, `${how}: released once the process was killed`)
  }
})

t.test('a killed waiter is cancelled: the lock does not go to it', async t => {
  writeFileSync(join(f.dir, 'wait'), Buffer.alloc(10))
  const holder = group(`flock ${A}/wait sh -c 'echo held; exec sleep 60'`)
  t.equal(await firstLine(holder), 'held')
  const waiter = group(`exec python3 -c "import fcntl; f = open('${B}/wait', 'r+'); fcntl.lockf(f, fcntl.LOCK_EX, 0, 0); print('got')"`)
  await sleep(700)
  t.equal(waiter.exitCode, null, 'the waiter blocks')
  await kill(waiter)
  await kill(holder)
  await sleep(500)
  t.equal((await sh(`flock -n ${A}/wait true`)).code, 0, 'free: the dead waiter was never granted it')
})

t.test('nolock: locks stay in the kernel of each mount', async t => {
  const C = mountpointDir(t)
  await mountFuse(t, source, C, `${TEST_OPTS},${portOpts},nolock`)
  writeFileSync(join(f.dir, 'local'), 'x')
  const holder = group(`flock ${A}/local sh -c 'echo held; exec sleep 60'`)
  t.equal(await firstLine(holder), 'held')
  t.equal((await sh(`flock -n ${C}/local true`)).code, 0, 'the nolock mount does not see the NLM lock')
  const local = group(`flock ${C}/local sh -c 'echo held; exec sleep 60'`)
  t.equal(await firstLine(local), 'held')
  t.equal((await sh(`flock -n ${C}/local true`)).code, 1, 'but its own processes contend in its kernel')
  await kill(local)
  await kill(holder)
})
