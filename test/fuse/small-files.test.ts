/*
 * Small files through the mount (issue 11 point 3): what a copy costs in
 * NFS calls, counted on the server, and that what the client holds back
 * (data until close, mode and times of a file it created until close) keeps
 * the meaning the same system calls have on a local disk.
 */
import t from 'tap'
import { chmodSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { TEST_OPTS, canFuse, exportDir, manifest, mountFuse, mountpointDir, sh } from '../helpers/fuse.ts'
import { startServer } from '../helpers/server.ts'
import { BACKENDS } from '../../server/backends.ts'
import type { FileRef, SetAttr, Vfs } from '../../vfs/types.ts'
import { calls, diff } from './server-calls.ts'

const skip = canFuse ? false : 'needs root and FUSE'

const FILES = 20

t.test('cp -a of small files: per file one CREATE, one FILE_SYNC WRITE and one SETATTR; no LOOKUP, no COMMIT', { skip }, async t => {
  const base = t.testdir({ src: {}, local: {} })
  const src = join(base, 'src')
  for (let i = 0; i < FILES; i++) {
    const f = join(src, `f${String(i)}`)
    writeFileSync(f, `file ${String(i)}\n`.repeat(i + 1))
    chmodSync(f, i % 2 === 0 ? 0o640 : 0o755)
    utimesSync(f, 1_000_000_000 + i + 0.123456, 1_100_000_000 + i + 0.987654)
  }
  utimesSync(src, 1_200_000_000, 1_200_000_000)
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  const m = await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`, ['--log-level', 'info'])
  const before = calls(ex)
  const r = await sh(`cp -a "${src}" "${mnt}/copy"`)
  t.equal(r.code, 0, r.stderr)
  const fuseBefore = requestsOf(m.stderr())
  t.strictSame(diff(before, calls(ex)), {
    // The name "copy" is looked up once in the export's root (not made by us); the files' names are not.
    LOOKUP: 1,
    MKDIR: 1,
    CREATE: FILES,
    WRITE: FILES,
    // Each file: times and mode in one call at close. The directory: times, owner and mode, by path.
    SETATTR: FILES + 3,
  })
  await sh(`cp -a "${src}" "${join(base, 'local')}/copy"`)
  t.strictSame(await manifest(join(ex.dir, 'copy'), { dirTimes: true }), await manifest(join(base, 'local/copy'), { dirTimes: true }), 'the export holds what a local cp -a makes')
  t.equal(fuseBefore, null, 'no counts before the end')
  t.equal(await m.stop(), 0)
  const fuse = requestsOf(m.stderr())
  t.ok(fuse !== null, 'the daemon logged its request counts')
  // What the kernel asks per copied file (bench/README.md): the name (a failing LOOKUP before the exclusive create),
  // CREATE, WRITE, the times and the mode, FLUSH, RELEASE: 7 requests, of which CREATE, WRITE and SETATTR reach the
  // server. Not the directory's attributes again after each CREATE: a mount only root enters goes without
  // default_permissions (client/fuse/mount.ts), whose check asked for them.
  for (const [op, n] of Object.entries({ LOOKUP: 1, CREATE: 1, WRITE: 1, SETATTR: 2, FLUSH: 1, RELEASE: 1 })) {
    t.ok((fuse?.[op] ?? 0) >= n * FILES && (fuse?.[op] ?? 0) <= n * FILES + 3, `${op}: ${String(n)} per file (${String(fuse?.[op])} for ${String(FILES)} files and their directory)`)
  }
  t.ok((fuse?.GETATTR ?? 0) <= 3, `GETATTR: none per file (${String(fuse?.GETATTR)} for ${String(FILES)} files and their directory)`)
  t.equal(fuse?.INIT, 1, 'one INIT')
})

t.test('rsync -a of small files: its fchmod to the mode it created the temporary file with costs no call', { skip }, async t => {
  const base = t.testdir({ src: {}, export: {} })
  const src = join(base, 'src')
  for (let i = 0; i < FILES; i++) {
    const f = join(src, `f${String(i)}`)
    writeFileSync(f, `file ${String(i)}\n`.repeat(i + 1))
    chmodSync(f, i % 2 === 0 ? 0o640 : 0o755)
    utimesSync(f, 1_000_000_000 + i + 0.123456, 1_100_000_000 + i + 0.987654)
  }
  // The export's backend records what each SETATTR sets: how many SETATTRs the times and the mode
  // take depends on timing (the mount holds times, and sends them early when a mode change comes),
  // what they set does not.
  const sets: SetAttr[] = []
  const local = BACKENDS.get('local')
  if (local === undefined) throw new Error('no local backend')
  const dir = join(base, 'export')
  const fx = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`, {
    backends: new Map([['local', async (exp, ctx) => recordingSetattr(await local(exp, ctx), sets)]]),
  })
  const ex = { ...fx, dir, source: `127.0.0.1:${dir}`, portOpts: `port=${String(fx.port)},mountport=${String(fx.port)}` }
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  const before = calls(ex)
  const r = await sh(`rsync -a "${src}/" "${mnt}/copy/"`)
  t.equal(r.code, 0, r.stderr)
  // Per file rsync creates .NAME.XXXXXX (O_EXCL, 0600), fchmods it to 0600, writes, closes, sets its times by name,
  // reopens it read-only (ACCESS), fchmods it to the source's mode and renames it over NAME. The first fchmod
  // changes nothing on the file this mount just created: no SETATTR for it, at close or before.
  t.equal(sets.filter((a) => a.mode !== undefined && (a.mode & 0o7777) === 0o600).length, 0, 'no SETATTR sets mode 0600 (the fchmod that changes nothing)')
  const modes = sets.filter((a) => a.mode !== undefined).length
  t.ok(modes >= FILES && modes <= FILES + 1, `one mode per file, and the directory's (${String(modes)} SETATTRs set a mode)`)
  // Times: once per file; the directory's by rsync at its end, which the mount may still hold when
  // the count is taken, or sends twice (held, then again with a later change): 0 to 2 for it.
  const times = sets.filter((a) => a.mtime !== undefined).length
  t.ok(times >= FILES && times <= FILES + 2, `the times of each file once, and the directory's (${String(times)} SETATTRs set times)`)
  const got = diff(before, calls(ex))
  t.equal(got['SETATTR'], sets.length, 'every SETATTR recorded')
  t.strictSame({ ...got, SETATTR: undefined }, {
    LOOKUP: 1,
    MKDIR: 1,
    CREATE: FILES,
    WRITE: FILES,
    ACCESS: FILES,
    RENAME: FILES,
    SETATTR: undefined,
  }, 'NFS calls of the copy')
  t.strictSame(await manifest(join(ex.dir, 'copy')), await manifest(src), 'the export holds the source\'s modes, times and contents')
})

/** `vfs` whose setattr calls also land in `sets`. */
function recordingSetattr(vfs: Vfs, sets: SetAttr[]): Vfs {
  return new Proxy(vfs, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver)
      if (prop === 'setattr') {
        return (f: FileRef, set: SetAttr) => {
          sets.push({ ...set })
          return target.setattr(f, set)
        }
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
}

/** The per-operation request counts the daemon logs when its connection ends (--log-level info), null before. */
function requestsOf(stderr: string): Record<string, number> | null {
  const ended = stderr.split('\n').find(l => l.includes('connection ended'))
  if (ended === undefined) return null
  return (JSON.parse(ended) as { requests?: Record<string, number> }).requests ?? {}
}

// python3 os calls on an open file: what cp, tar and rsync do, with checks in between.
const PY = `
import os, sys, json
path, mode = sys.argv[1], sys.argv[2]
out = {}
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b'hello')
os.utime(fd, ns=(1000000000123456789, 1100000000987654321))
os.fchmod(fd, 0o604)
st = os.fstat(fd)
out['held'] = [oct(st.st_mode & 0o7777), str(st.st_mtime_ns), str(st.st_atime_ns)]
if mode == 'write-after':
    os.write(fd, b' again')
if mode == 'chown':
    try:
        os.fchown(fd, 1000, 1000)
        out['chown'] = 'ok'
    except OSError as e:
        out['chown'] = e.errno
try:
    os.close(fd)
    out['close'] = 'ok'
except OSError as e:
    out['close'] = e.errno
st = os.stat(path)
out['after'] = [oct(st.st_mode & 0o7777), str(st.st_mtime_ns), str(st.st_atime_ns), st.st_size]
print(json.dumps(out))
`

/** (Times in ns as decimal strings: they do not fit a double.) */
interface PyOut {
  held: [string, string, string]
  chown?: string | number
  close: string | number
  after: [string, string, string, number]
}

async function py(path: string, mode: string): Promise<PyOut> {
  const r = await sh(`python3 -c "$PY" "$P" "$M"`, { PY, P: path, M: mode })
  if (r.code !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout) as PyOut
}

t.test('mode and times set on an open new file: seen at once through the mount, on the server once it is closed', { skip }, async t => {
  const base = t.testdir({ local: {} })
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  const local = await py(join(base, 'local/f'), 'plain')
  const mounted = await py(join(mnt, 'f'), 'plain')
  t.strictSame(mounted.held, local.held, 'fstat before close shows what was set')
  t.strictSame(mounted.after, local.after, 'and after close')
  t.equal(mounted.close, 'ok')
  const c = await NfsClient.mount(ex.url(ex.dir))
  t.teardown(() => c.umount())
  const st = await c.stat('f')
  t.equal(st.mode, 0o604, 'another client sees the mode after close')
  t.equal(st.attrs.mtime.seconds, 1_100_000_000)
  t.equal(st.attrs.mtime.nseconds, 987_654_321, 'and the mtime to the nanosecond')
  t.equal(st.attrs.atime.nseconds, 123_456_789)
  t.equal(st.size, 5n)
})

t.test('a write after the times: the write moves mtime, as on a local disk', { skip }, async t => {
  const base = t.testdir({ local: {} })
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  const local = await py(join(base, 'local/f'), 'write-after')
  const mounted = await py(join(mnt, 'f'), 'write-after')
  t.not(local.after[1], '1100000000987654321', 'local: the write set mtime to now')
  t.not(mounted.after[1], '1100000000987654321', 'mount: so did the write')
  t.ok(BigInt(mounted.after[1]) > 1_700_000_000_000_000_000n, 'to about now')
  t.equal(mounted.after[3], 11, 'both writes are there')
  t.equal(mounted.after[0], '0o604', 'the mode set in between is kept')
  t.equal(mounted.after[2], '1000000000123456789', 'atime as set')
})

t.test('a chown the server refuses fails the chown, not the close (root_squash)', { skip }, async t => {
  const base = t.testdir({ export: {} })
  mkdirSync(join(base, 'export'), { recursive: true })
  chmodSync(join(base, 'export'), 0o777)
  const fx = await startServer(t, `${join(base, 'export')} *(rw,insecure,root_squash)\n`)
  const mnt = mountpointDir(t)
  await mountFuse(t, `127.0.0.1:${join(base, 'export')}`, mnt, `port=${String(fx.port)},mountport=${String(fx.port)},${TEST_OPTS}`)
  const out = await py(join(mnt, 'f'), 'chown')
  t.equal(out.chown, 1, 'fchown: EPERM (root is nobody on the server)')
  t.equal(out.close, 'ok', 'close: the mode and times held for it were applied')
  t.strictSame(out.after.slice(0, 3), ['0o604', '1100000000987654321', '1000000000123456789'])
})

// Held mode and times go ahead of the close once the mode is set (cp -a and tar x set it last); a failure still fails close(2).
const PY_GONE = `
import os, sys, time, json
path, hostpath = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b'hello')
os.utime(fd, ns=(1000000000123456789, 1100000000987654321))
time.sleep(0.3)
os.unlink(hostpath)
os.fchmod(fd, 0o604)
time.sleep(0.3)
try:
    os.close(fd)
    print(json.dumps({'close': 'ok'}))
except OSError as e:
    print(json.dumps({'close': e.errno}))
`

t.test('a file removed on the server before its mode is sent: close fails with ESTALE', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)
  const r = await sh(`python3 -c "$PY" "$P" "$H"`, { PY: PY_GONE, P: join(mnt, 'gone'), H: join(ex.dir, 'gone') })
  t.equal(r.code, 0, r.stderr)
  t.strictSame(JSON.parse(r.stdout), { close: 116 }, 'close(2): ESTALE, the SETATTR sent ahead of it failed')
})
