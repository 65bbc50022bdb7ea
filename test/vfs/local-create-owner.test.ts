/*
 * CREATE on the local backend gives the new file its owner, group and mode, and answers with
 * the attributes the file really has afterwards. createFile skips the fchown and the fchmod
 * when open(2) already made the file so (a root caller's file, a mode without special bits),
 * and then answers from its first fstat: every case below compares the reply with an lstat.
 * Runs as root (CI does), so that the server's chown is exercised; skipped otherwise.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import path from 'node:path'
import type { Attr, Owner } from '../../vfs/types.ts'
import { localDirs, openLocal } from './local-helpers.ts'

const isRoot = process.getuid?.() === 0

/** The reply's attributes against the file's own, field by field (times to the nanosecond). */
function sameAsDisk(t: Test, a: Attr, file: string): void {
  const st = fs.lstatSync(file, { bigint: true })
  t.equal(a.uid, Number(st.uid), 'uid as on disk')
  t.equal(a.gid, Number(st.gid), 'gid as on disk')
  t.equal(a.mode & 0o7777, Number(st.mode) & 0o7777, 'mode as on disk')
  t.equal(a.size, st.size, 'size as on disk')
  t.equal(BigInt(a.ctime.sec) * 1_000_000_000n + BigInt(a.ctime.nsec), st.ctimeNs, 'ctime as on disk')
  t.equal(BigInt(a.mtime.sec) * 1_000_000_000n + BigInt(a.mtime.nsec), st.mtimeNs, 'mtime as on disk')
}

t.test('a new file has its caller, group and mode, and the reply says what the disk holds', { skip: isRoot ? false : 'needs root (chown)' }, async t => {
  const dirs = localDirs()
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const root = vfs.root()
  const cases: { name: string; owner: Owner; mode?: number; want: { uid: number; gid: number; mode: number } }[] = [
    { name: 'root-default', owner: { uid: 0, gid: 0 }, want: { uid: 0, gid: 0, mode: 0o644 } },
    { name: 'root-0600', owner: { uid: 0, gid: 0 }, mode: 0o600, want: { uid: 0, gid: 0, mode: 0o600 } },
    { name: 'root-setuid', owner: { uid: 0, gid: 0 }, mode: 0o4755, want: { uid: 0, gid: 0, mode: 0o4755 } },
    { name: 'user', owner: { uid: 1234, gid: 5678 }, mode: 0o640, want: { uid: 1234, gid: 5678, mode: 0o640 } },
    { name: 'group-only', owner: { uid: 0, gid: 5678 }, want: { uid: 0, gid: 5678, mode: 0o644 } },
  ]
  for (const c of cases) {
    const made = await vfs.create(root, Buffer.from(c.name), { how: 'guarded', attr: c.mode === undefined ? {} : { mode: c.mode } }, c.owner)
    const file = path.join(dirs.root, c.name)
    const st = fs.lstatSync(file)
    t.same({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, c.want, `${c.name}: owner and mode on disk`)
    sameAsDisk(t, made.attr, file)
    // And a GETATTR afterwards agrees with the CREATE's reply.
    const later = await vfs.getattr(made.ref)
    t.same({ uid: later.uid, gid: later.gid, mode: later.mode, ctime: later.ctime }, { uid: made.attr.uid, gid: made.attr.gid, mode: made.attr.mode, ctime: made.attr.ctime }, `${c.name}: GETATTR as the reply`)
  }
})

t.test('a setgid directory gives its group; the reply says so', { skip: isRoot ? false : 'needs root (chown)' }, async t => {
  const dirs = localDirs()
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const sub = path.join(dirs.root, 'shared')
  fs.mkdirSync(sub)
  fs.chownSync(sub, 0, 4321)
  fs.chmodSync(sub, 0o2775)
  const d = await vfs.lookup(vfs.root(), Buffer.from('shared'))
  for (const [name, owner] of [['by-root', { uid: 0, gid: 0 }], ['by-user', { uid: 1000, gid: 1000 }]] as const) {
    const made = await vfs.create(d.ref, Buffer.from(name), { how: 'unchecked', attr: {} }, owner)
    const file = path.join(sub, name)
    const st = fs.lstatSync(file)
    t.same({ uid: st.uid, gid: st.gid }, { uid: owner.uid, gid: 4321 }, `${name}: the directory's group`)
    sameAsDisk(t, made.attr, file)
  }
})

t.test('times asked at create are kept, and the reply carries them', { skip: isRoot ? false : 'needs root (chown)' }, async t => {
  const dirs = localDirs()
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const mtime = { sec: 1_500_000_000, nsec: 123_456_789 }
  const made = await vfs.create(vfs.root(), Buffer.from('timed'), { how: 'guarded', attr: { mtime } }, { uid: 0, gid: 0 })
  t.same(made.attr.mtime, mtime, 'the reply has the time asked')
  sameAsDisk(t, made.attr, path.join(dirs.root, 'timed'))
})
