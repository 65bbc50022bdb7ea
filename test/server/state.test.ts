import t from 'tap'
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Rmtab, WriteVerifier, defaultStateDir, instanceStateDir, lockStateDir, openStateDir } from '../../server/state.ts'

t.test('openStateDir creates a private dir and a persistent 32-byte key', async (t) => {
  const dir = join(t.testdir(), 'a', 'state')
  const s1 = await openStateDir(dir)
  t.equal(s1.dir, dir)
  t.equal(s1.handleKey.length, 32)
  t.equal((await stat(dir)).mode & 0o777, 0o700)
  t.equal((await stat(join(dir, 'handle.key'))).mode & 0o777, 0o600)
  const s2 = await openStateDir(dir)
  t.ok(s2.handleKey.equals(s1.handleKey), 'the key survives a restart')
  t.strictSame(await readdir(dir), ['handle.key'], 'no temp files left')
})

t.test('servers racing to create the key all get the same key', async (t) => {
  const dir = t.testdir()
  const states = await Promise.all(Array.from({ length: 8 }, () => openStateDir(dir)))
  const first = states[0]!.handleKey
  t.ok(states.every((s) => s.handleKey.equals(first)))
  t.strictSame(await readdir(dir), ['handle.key'])
})

t.test('a key file of the wrong size is an error', async (t) => {
  const dir = t.testdir({ 'handle.key': 'short' })
  await t.rejects(openStateDir(dir), { code: 'STATE_BAD_KEY', name: 'ServerStateError' })
})

t.test('other errors reading the key propagate', async (t) => {
  const dir = t.testdir()
  await mkdir(join(dir, 'handle.key'))
  await t.rejects(openStateDir(dir), { code: 'EISDIR' })
})

t.test('defaultStateDir', async (t) => {
  t.equal(defaultStateDir({ TSNFS_STATE_DIR: '/x/y' }, 0, '/home/u'), '/x/y')
  t.equal(defaultStateDir({ TSNFS_STATE_DIR: '' }, 0, '/home/u'), '/var/lib/tsnfs')
  t.equal(defaultStateDir({ XDG_STATE_HOME: '/xdg' }, 1000, '/home/u'), '/xdg/tsnfs')
  t.equal(defaultStateDir({ XDG_STATE_HOME: 'relative' }, 1000, '/home/u'), '/home/u/.local/state/tsnfs')
  t.equal(defaultStateDir({}, 1000, '/home/u'), '/home/u/.local/state/tsnfs')
  t.type(defaultStateDir(), 'string')
})

t.test('instanceStateDir: the standard port keeps the base directory, every other port its own', async (t) => {
  t.equal(instanceStateDir('/var/lib/tsnfs', 2049), '/var/lib/tsnfs')
  t.equal(instanceStateDir('/var/lib/tsnfs', 2050), '/var/lib/tsnfs/port-2050')
  t.equal(instanceStateDir('/var/lib/tsnfs', 0), '/var/lib/tsnfs/port-0')
})

t.test('lockStateDir: one live server per state directory; a dead holder is replaced', async (t) => {
  const dir = t.testdir()
  const lock = await lockStateDir(dir, { port: 2050 })
  t.match(JSON.parse(await readFile(join(dir, 'server.pid'), 'utf8')), { pid: process.pid, port: 2050 }, 'the pid file names us')
  // Another live process holding it: a child that stays up while we try.
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
  t.teardown(() => child.kill('SIGKILL'))
  await lock.release()
  t.strictSame(await readdir(dir), [], 'release removes the pid file')
  await writeFile(join(dir, 'server.pid'), JSON.stringify({ pid: child.pid, port: 2051 }))
  await t.rejects(lockStateDir(dir, { port: 2050 }), {
    code: 'STATE_IN_USE',
    message: `${dir} is in use by the tsnfs server with pid ${String(child.pid)} (port 2051); give each server its own --state-dir`,
  })
  // The same pid with another start time: the kernel gave a dead server's pid to another process.
  await writeFile(join(dir, 'server.pid'), JSON.stringify({ pid: child.pid, port: 2051, start: 1 }))
  const recycled = await lockStateDir(dir, { port: 2050 })
  await recycled.release()
  t.strictSame(await readdir(dir), [], 'a recycled pid does not hold the directory')
  child.kill('SIGKILL')
  await once(child, 'exit')
  const again = await lockStateDir(dir, { port: 2050 })
  t.match(JSON.parse(await readFile(join(dir, 'server.pid'), 'utf8')), { pid: process.pid, port: 2050 }, "a dead server's pid file is taken over")
  await again.release()
  await writeFile(join(dir, 'server.pid'), 'garbage')
  const garbage = await lockStateDir(dir, { port: 2050 })
  await garbage.release()
  t.strictSame(await readdir(dir), [], 'an unreadable pid file is treated as stale')
})

t.test('WriteVerifier: 8 bytes, stable until bumped, unique per instance', async (t) => {
  const v = new WriteVerifier()
  const a = v.current()
  t.equal(a.length, 8)
  t.equal(v.current(), a, 'same buffer on every call')
  const copy = Buffer.from(a)
  v.bump()
  t.notOk(v.current().equals(copy), 'bump changes it')
  t.ok(a.equals(copy), 'an old reference keeps the old value')
  const seen = new Set(Array.from({ length: 1000 }, () => new WriteVerifier().current().toString('hex')))
  t.equal(seen.size, 1000, 'instances started together differ')
})

t.test('Rmtab: add, dedupe, remove, removeAll, persistence', async (t) => {
  const dir = t.testdir()
  const r = await Rmtab.open(dir)
  t.strictSame(r.list(), [])
  await Promise.all([r.add('h1', '/a'), r.add('h1', '/b'), r.add('h2', '/a'), r.add('h1', '/a')])
  t.strictSame(r.list(), [{ host: 'h1', path: '/a' }, { host: 'h1', path: '/b' }, { host: 'h2', path: '/a' }])
  t.strictSame((await Rmtab.open(dir)).list(), r.list(), 'saved')
  await r.remove('h1', '/b')
  await r.remove('h9', '/b')
  t.strictSame((await Rmtab.open(dir)).list(), [{ host: 'h1', path: '/a' }, { host: 'h2', path: '/a' }])
  await r.removeAll('h1')
  await r.removeAll('h1')
  t.strictSame((await Rmtab.open(dir)).list(), [{ host: 'h2', path: '/a' }])
  const listed = r.list()
  listed[0]!.host = 'changed'
  t.equal(r.list()[0]?.host, 'h2', 'list() returns copies')
  t.match(JSON.parse(await readFile(join(dir, 'rmtab'), 'utf8')), { version: 1 })
  t.strictSame((await readdir(dir)).sort(), ['rmtab'])
})

t.test('Rmtab: a corrupt file is logged and ignored', async (t) => {
  for (const content of ['{not json', '{"version":2,"entries":[]}', '{"version":1,"entries":[{"host":1}]}']) {
    const dir = t.testdir({ rmtab: content })
    const warnings: unknown[] = []
    const r = await Rmtab.open(dir, { warn: (obj, msg) => warnings.push([obj, msg]) })
    t.strictSame(r.list(), [], content)
    t.strictSame(warnings, [[{ path: join(dir, 'rmtab') }, 'rmtab is corrupt; starting with an empty mount list']])
    await r.add('h', '/p')
    t.strictSame((await Rmtab.open(dir)).list(), [{ host: 'h', path: '/p' }], 'overwritten with a good file')
  }
  const quiet = await Rmtab.open(t.testdir({ rmtab: 'x' }))
  t.strictSame(quiet.list(), [])
})

t.test('Rmtab: a failed save rejects, and later saves still run', async (t) => {
  const dir = t.testdir()
  const r = await Rmtab.open(dir)
  await mkdir(join(dir, 'rmtab'))
  await writeFile(join(dir, 'rmtab', 'x'), '')
  await t.rejects(r.add('h', '/a'))
  t.strictSame((await readdir(dir)).sort(), ['rmtab'], 'temp file cleaned up')
  await t.rejects(r.add('h', '/b'))
})
