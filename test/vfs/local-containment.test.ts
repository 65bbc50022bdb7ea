/* Local backend: nothing outside the exported directory can be read, written, created or listed. */
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { genFromBirth } from '../../vfs/local/attr.ts'
import type { LocalVfs } from '../../vfs/local/local-vfs.ts'
import type { FileRef } from '../../vfs/types.ts'
import { b, mkdir, mkfile, OWNER, readAll, rejectsCode } from './conformance-helpers.ts'
import { listAll } from './conformance-readdir.ts'
import { localDirs, openLocal } from './local-helpers.ts'
import type { LocalDirs } from './local-helpers.ts'

/** An export plus a directory beside it holding a secret; `state()` describes the outside tree exactly. */
function setup(t: Test): { dirs: LocalDirs; vfs: LocalVfs; outside: string; state: () => string } {
  const dirs = localDirs()
  const outside = `${dirs.root}-outside`
  fs.mkdirSync(outside)
  fs.writeFileSync(path.join(outside, 'secret'), 'top secret')
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const state = (): string => {
    const out: string[] = []
    for (const n of fs.readdirSync(outside).sort()) {
      const st = fs.lstatSync(path.join(outside, n))
      out.push(`${n} ${st.mode} ${st.uid} ${st.size} ${st.mtimeMs} ${st.atimeMs}`)
    }
    const st = fs.lstatSync(outside)
    return `${out.join('\n')}\n. ${st.mode} ${st.mtimeMs} ${st.atimeMs}`
  }
  return { dirs, vfs, outside, state }
}

t.test('a symlink to a directory outside is handed out as a symlink, never followed', async t => {
  const { dirs, vfs, outside, state } = setup(t)
  const root = vfs.root()
  fs.symlinkSync(outside, path.join(dirs.root, 'out'))
  fs.symlinkSync('/etc', path.join(dirs.root, 'etc'))
  fs.symlinkSync(path.join(outside, 'secret'), path.join(dirs.root, 'secret-link'))
  const before = state()
  for (const name of ['out', 'etc']) {
    const l = await vfs.lookup(root, b(name))
    t.equal(l.attr.type, 'symlink', `${name}: lookup returns the symlink itself`)
    await rejectsCode(t, vfs.lookup(l.ref, b('secret')), 'ENOTDIR', `${name}: no lookup through it`)
    await rejectsCode(t, vfs.readdir(l.ref, 0n, 10), 'ENOTDIR')
    await rejectsCode(t, vfs.create(l.ref, b('planted'), { how: 'guarded', attr: {} }, OWNER), 'ENOTDIR')
    await rejectsCode(t, vfs.mkdir(l.ref, b('planted'), {}, OWNER), 'ENOTDIR')
    await rejectsCode(t, vfs.rename(root, b('secret-link'), l.ref, b('x')), 'ENOTDIR')
  }
  const s = await vfs.lookup(root, b('secret-link'))
  await rejectsCode(t, vfs.read(s.ref, 0n, 100), 'EINVAL', 'read on a symlink ref')
  await rejectsCode(t, vfs.write(s.ref, 0n, b('pwned'), 'file_sync'), 'EINVAL', 'write on a symlink ref')
  await rejectsCode(t, vfs.setattr(s.ref, { size: 0n }), 'EINVAL', 'truncate on a symlink ref')
  await vfs.setattr(s.ref, { mode: 0o600, mtime: { sec: 5, nsec: 0 } })
  await vfs.setattr(s.ref, { uid: OWNER.uid, gid: OWNER.gid })
  t.equal((await vfs.getattr(s.ref)).mtime.sec, 5, 'setattr changed the symlink itself')
  t.equal((await vfs.readlink(s.ref)).toString(), path.join(outside, 'secret'))
  await rejectsCode(t, vfs.create(root, b('secret-link'), { how: 'unchecked', attr: { size: 0n } }, OWNER), 'EEXIST', 'unchecked create does not open through it')
  await vfs.link(s.ref, root, b('hardlink-to-symlink'))
  t.equal((await vfs.lookup(root, b('hardlink-to-symlink'))).attr.type, 'symlink', 'link makes a link to the symlink, not its target')
  t.equal(state(), before, 'nothing outside changed')
  t.equal(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'top secret')
})

t.test('.. never leaves the export', async t => {
  const { vfs, state } = setup(t)
  const root = vfs.root()
  const before = state()
  let cur: FileRef = root
  for (let i = 0; i < 10; i++) cur = (await vfs.lookup(cur, b('..'))).ref
  t.same(cur, root, '.. chains from the root stay at the root')
  const d = await mkdir(vfs, root, 'd')
  const dd = await mkdir(vfs, d, 'dd')
  cur = dd
  for (let i = 0; i < 5; i++) cur = (await vfs.lookup(cur, b('..'))).ref
  t.same(cur, root, 'and from below')
  const page = await vfs.readdir(root, 0n, 10)
  t.equal(page.entries.find(e => e.name.toString() === '..')?.fileid, root.id, 'readdir .. of the root is the root')
  for (const name of ['../x', '../../etc/passwd', 'a/../../x']) {
    await rejectsCode(t, vfs.lookup(root, b(name)), 'EINVAL', `${name}: a name with / is refused`)
    await rejectsCode(t, vfs.create(root, b(name), { how: 'guarded', attr: {} }, OWNER), 'EINVAL')
  }
  await rejectsCode(t, vfs.rename(root, b('d'), root, b('..')), 'EEXIST')
  await rejectsCode(t, vfs.rmdir(root, b('..')), 'EINVAL')
  t.equal(state(), before)
})

t.test('crafted refs: objects outside the export are ESTALE', async t => {
  const { dirs, vfs, outside, state } = setup(t)
  const before = state()
  const refOf = (p: string): FileRef => {
    const st = fs.lstatSync(p, { bigint: true })
    return { id: st.ino, gen: genFromBirth(st) ?? 0 }
  }
  for (const p of ['/etc/passwd', '/etc', path.join(outside, 'secret'), outside, path.dirname(dirs.root)]) {
    const ref = refOf(p)
    await rejectsCode(t, vfs.getattr(ref), 'ESTALE', p)
    await rejectsCode(t, vfs.read(ref, 0n, 10), 'ESTALE')
  }
  const sec = refOf(path.join(outside, 'secret'))
  await rejectsCode(t, vfs.write(sec, 0n, b('pwned'), 'file_sync'), 'ESTALE')
  await rejectsCode(t, vfs.setattr(sec, { mode: 0o777 }), 'ESTALE')
  const out = refOf(outside)
  await rejectsCode(t, vfs.create(out, b('planted'), { how: 'guarded', attr: {} }, OWNER), 'ESTALE')
  await rejectsCode(t, vfs.readdir(out, 0n, 10), 'ESTALE')
  await rejectsCode(t, vfs.getattr({ id: 0xdeadbeefn, gen: 1 }), 'ESTALE', 'an inode that exists nowhere')
  t.equal(state(), before)
  const searches = vfs.stats().searches
  await rejectsCode(t, vfs.getattr(sec), 'ESTALE')
  t.equal(vfs.stats().searches, searches, 'a stale ref retried does not search the tree again')
})

t.test('a symlink swapped in for a directory between calls', async t => {
  const { dirs, vfs, outside, state } = setup(t)
  const root = vfs.root()
  const d = await mkdir(vfs, root, 'd')
  const f = await mkfile(vfs, d, 'f', 'inside')
  const before = state()
  fs.renameSync(path.join(dirs.root, 'd'), path.join(dirs.root, 'd-real'))
  fs.symlinkSync(outside, path.join(dirs.root, 'd'))
  await vfs.create(d, b('new'), { how: 'guarded', attr: {} }, OWNER)
  t.ok(fs.existsSync(path.join(dirs.root, 'd-real', 'new')), 'the old handle names the real directory')
  t.equal(await readAll(vfs, f), 'inside')
  t.equal((await vfs.lookup(root, b('d'))).attr.type, 'symlink')
  // A restarted backend (no cached fds) walks the index path, finds the symlink there, and searches.
  await vfs.close()
  const two = openLocal(dirs)
  t.teardown(() => two.close())
  t.same((await listAll(two, d, 100)).map(e => e.name.toString()).sort(), ['.', '..', 'f', 'new'])
  await two.create(d, b('newer'), { how: 'guarded', attr: {} }, OWNER)
  await two.write(f, 0n, b('INSIDE'), 'file_sync')
  t.equal(fs.readFileSync(path.join(dirs.root, 'd-real', 'f'), 'utf8'), 'INSIDE')
  t.equal(state(), before, 'nothing outside changed')
})

t.test('a symlink swapped in for a directory during calls (race)', async t => {
  const { dirs, vfs, outside, state } = setup(t)
  const root = vfs.root()
  const d = await mkdir(vfs, root, 'd')
  await mkfile(vfs, d, 'f', 'inside')
  const before = state()
  // The host flips d between the real directory and a symlink to the outside as fast as it can.
  const flipper = spawn('sh', ['-c', `cd '${dirs.root}' && while :; do mv d d-real; ln -s '${outside}' d; rm d; mv d-real d; done`], { stdio: 'ignore' })
  t.teardown(() => flipper.kill('SIGKILL'))
  const deadline = Date.now() + 1500
  let ops = 0
  for (let i = 0; Date.now() < deadline; i++) {
    const tries: Promise<unknown>[] = [
      vfs.create(d, b(`c${i}`), { how: 'guarded', attr: {} }, OWNER),
      vfs.lookup(root, b('d')).then(l => vfs.create(l.ref, b(`l${i}`), { how: 'guarded', attr: {} }, OWNER)),
      vfs.lookup(root, b('d')).then(l => vfs.lookup(l.ref, b('secret'))),
      vfs.lookup(root, b('d')).then(l => vfs.readdir(l.ref, 0n, 100)),
      vfs.lookup(root, b('d')).then(l => vfs.mkdir(l.ref, b(`m${i}`), {}, OWNER)),
    ]
    await Promise.allSettled(tries)
    ops += tries.length
  }
  flipper.kill('SIGKILL')
  await new Promise(r => flipper.once('exit', r))
  t.ok(ops > 50, `${ops} operations raced the swaps`)
  t.equal(state(), before, 'nothing outside was created, read (atime) or changed')
})

t.test('mount points below the export are not crossed', async t => {
  const { dirs, vfs } = setup(t)
  const mnt = path.join(dirs.root, 'mnt')
  fs.mkdirSync(mnt)
  try {
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', mnt], { stdio: 'ignore' })
  } catch {
    t.comment('SKIP: cannot mount a tmpfs here (needs root and mount permission)')
    t.pass('mount boundary not testable on this host')
    return
  }
  t.teardown(() => execFileSync('umount', ['-l', mnt]))
  fs.writeFileSync(path.join(mnt, 'on-tmpfs'), 'other fs')
  const root = vfs.root()
  await rejectsCode(t, vfs.lookup(root, b('mnt')), 'EACCES', 'lookup of a mount point')
  const e = (await listAll(vfs, root, 100)).find(x => x.name.toString() === 'mnt')
  t.ok(e !== undefined && e.ref === undefined && e.fileid >= 1n << 63n, 'listed with a foreign fileid and no handle')
  const st = fs.lstatSync(path.join(mnt, 'on-tmpfs'), { bigint: true })
  await rejectsCode(t, vfs.getattr({ id: st.ino, gen: genFromBirth(st) ?? 0 }), 'ESTALE', 'a ref of a file on the mount')
  const mst = fs.lstatSync(mnt, { bigint: true })
  await rejectsCode(t, vfs.getattr({ id: mst.ino, gen: genFromBirth(mst) ?? 0 }), 'ESTALE', 'a ref of the mounted root')
})
