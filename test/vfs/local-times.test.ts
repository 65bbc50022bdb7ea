/*
 * Setting times on the local backend (vfs/local/times.ts): the native helper
 * keeps nanoseconds, leaves an omitted time alone, sets a symlink's own
 * times through an O_PATH pin, and reports errors as errnos (EPERM for a
 * caller who does not own the file); the touch(1) fallback does the same.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { nativeTimes, nativeTimesPath, whyNoNativeTimes } from '../../vfs/local/native-times.ts'
import { decimalSeconds, fromNs, setTimes, setTimesFallback, setTimesNative } from '../../vfs/local/times.ts'
import { PIN_FLAGS } from '../../vfs/local/sys.ts'
import { VfsError } from '../../vfs/errors.ts'

const native = nativeTimes()
const ns = (sec: number, nsec: number): bigint => BigInt(sec) * 1_000_000_000n + BigInt(nsec)

function scratch(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-times-'))
  t.teardown(() => { fs.rmSync(dir, { recursive: true, force: true }) })
  return dir
}

function pin(t: Test, p: string): number {
  const fd = fs.openSync(p, PIN_FLAGS)
  t.teardown(() => { fs.closeSync(fd) })
  return fd
}

t.test('the native helper is built and loads', async t => {
  t.equal(whyNoNativeTimes(), null)
  t.not(native, null)
})

const impls: [string, (fd: number, a: Parameters<typeof setTimes>[1], m: Parameters<typeof setTimes>[2]) => Promise<void>][] = [
  ['setTimes', setTimes],
  ['touch fallback', setTimesFallback],
]

for (const [name, set] of impls) {
  t.test(`${name}: nanoseconds kept, one time omitted, now`, async t => {
    const dir = scratch(t)
    const f = path.join(dir, 'f')
    fs.writeFileSync(f, 'x')
    const fd = pin(t, f)
    await set(fd, { sec: 1_000_000_000, nsec: 123_456_789 }, { sec: 1_200_000_000, nsec: 987_654_321 })
    let st = fs.lstatSync(f, { bigint: true })
    t.equal(st.atimeNs, ns(1_000_000_000, 123_456_789), 'atime to the ns')
    t.equal(st.mtimeNs, ns(1_200_000_000, 987_654_321), 'mtime to the ns')
    await set(fd, undefined, { sec: 1_300_000_000, nsec: 1 })
    st = fs.lstatSync(f, { bigint: true })
    t.equal(st.atimeNs, ns(1_000_000_000, 123_456_789), 'atime left alone')
    t.equal(st.mtimeNs, ns(1_300_000_000, 1), 'mtime set')
    await set(fd, { sec: 5, nsec: 999_999_999 }, undefined)
    st = fs.lstatSync(f, { bigint: true })
    t.equal(st.atimeNs, ns(5, 999_999_999), 'atime set')
    t.equal(st.mtimeNs, ns(1_300_000_000, 1), 'mtime left alone')
    const before = BigInt(Date.now() - 5000) * 1_000_000n
    await set(fd, 'now', undefined)
    st = fs.lstatSync(f, { bigint: true })
    t.ok(st.atimeNs > before, "'now' is the clock")
    t.equal(st.mtimeNs, ns(1_300_000_000, 1), 'mtime still left alone')
  })

  t.test(`${name}: times before 1970, to the ns, and one left alone`, async t => {
    const dir = scratch(t)
    const f = path.join(dir, 'f')
    fs.writeFileSync(f, 'x')
    const fd = pin(t, f)
    // Microsecond-exact, so the fallback would take fs.utimes, which reads a negative number as "now".
    await set(fd, { sec: -315_619_200, nsec: 0 }, { sec: -316, nsec: 750_000_000 })
    let st = fs.lstatSync(f, { bigint: true })
    t.equal(st.atimeNs, ns(-315_619_200, 0), 'atime 1960-01-01')
    t.equal(st.mtimeNs, -315_250_000_000n, 'mtime 1969-12-31 23:54:44.75')
    await set(fd, undefined, { sec: -1, nsec: 1 })
    st = fs.lstatSync(f, { bigint: true })
    t.equal(st.atimeNs, ns(-315_619_200, 0), 'atime before 1970 left alone')
    t.equal(st.mtimeNs, -999_999_999n, 'mtime a ns after -1 s')
  })

  t.test(`${name}: a symlink's own times, the target untouched`, async t => {
    const dir = scratch(t)
    const target = path.join(dir, 'target')
    fs.writeFileSync(target, 'x')
    fs.utimesSync(target, 1000, 2000)
    const link = path.join(dir, 'link')
    fs.symlinkSync('target', link)
    const fd = pin(t, link)
    await set(fd, { sec: 1_100_000_000, nsec: 111 }, { sec: 1_100_000_001, nsec: 222 })
    const l = fs.lstatSync(link, { bigint: true })
    t.equal(l.atimeNs, ns(1_100_000_000, 111))
    t.equal(l.mtimeNs, ns(1_100_000_001, 222))
    const tg = fs.statSync(target, { bigint: true })
    t.equal(tg.atimeNs, ns(1000, 0), 'target atime unchanged')
    t.equal(tg.mtimeNs, ns(2000, 0), 'target mtime unchanged')
  })
}

t.test('errors come back as the errno', { skip: native === null ? 'no native helper' : false }, async t => {
  if (native === null) return
  const dir = scratch(t)
  t.throws(() => { setTimesNative(native, 987_654, { sec: 1, nsec: 0 }, undefined) }, { code: 'ENOENT' }, 'an fd that is not open: its /proc link is missing')
  const f = path.join(dir, 'f')
  fs.writeFileSync(f, 'x')
  const fd = pin(t, f)
  t.throws(() => { setTimesNative(native, fd, { sec: 1, nsec: 1_000_000_000 }, undefined) }, { code: 'EINVAL' }, 'nsec out of range')
  const err = (() => {
    try {
      setTimesNative(native, fd, { sec: 1, nsec: 1_000_000_000 }, undefined)
    } catch (e) {
      return e
    }
    return null
  })()
  t.ok(err instanceof VfsError, 'a VfsError')
})

t.test('EPERM when the caller does not own the file', { skip: process.getuid?.() === 0 ? false : 'needs root to act as another user' }, async t => {
  const dir = scratch(t)
  fs.chmodSync(dir, 0o755)
  const f = path.join(dir, 'f')
  fs.writeFileSync(f, 'x', { mode: 0o666 })
  fs.chmodSync(f, 0o666)
  // A child running as nobody loads the same helper, pins the root-owned file and sets its times.
  const addon = nativeTimesPath()
  if (addon === null) {
    t.fail('no native helper')
    return
  }
  const script = `
    const n = require(${JSON.stringify(addon)})
    const fs = require('node:fs')
    const fd = fs.openSync(${JSON.stringify(f)}, 0o10000000 | fs.constants.O_NOFOLLOW)
    const explicit = n.setTimes(fd, 1, 0, 2, 0)
    const now = n.setTimes(fd, 0, n.UTIME_NOW, 0, n.UTIME_NOW)
    console.log(JSON.stringify({ explicit, now }))
  `
  // (env -u: tap's process tracking would follow the child into a directory nobody may write.)
  const r = spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } })
  t.equal(r.status, 0, `child as nobody exited 0 ${r.stderr}`)
  const out = JSON.parse(r.stdout) as { explicit: number; now: number }
  t.equal(out.explicit, os.constants.errno.EPERM, 'explicit times: owner only (EPERM)')
  t.equal(out.now, 0, 'both times to now: write permission is enough')
  const st = fs.statSync(f)
  t.not(st.mtimeMs, 2000, 'explicit times not applied')
})

t.test('times before 1970 as nanoseconds and as decimal seconds', async t => {
  t.same(fromNs(-315_250_000_000n), { sec: -316, nsec: 750_000_000 })
  t.same(fromNs(-1n), { sec: -1, nsec: 999_999_999 })
  t.same(fromNs(-1_000_000_000n), { sec: -1, nsec: 0 })
  t.same(fromNs(1_500_000_001n), { sec: 1, nsec: 500_000_001 })
  t.equal(decimalSeconds({ sec: -316, nsec: 750_000_000 }), '-315.250000000')
  t.equal(decimalSeconds({ sec: -1, nsec: 1 }), '-0.999999999')
  t.equal(decimalSeconds({ sec: -5, nsec: 0 }), '-5.000000000')
  t.equal(decimalSeconds({ sec: 7, nsec: 5 }), '7.000000005')
})
