/*
 * Local backend with crossmnt: file systems mounted below the root (tmpfs,
 * nested too) are served with device-qualified ids, survive a restart,
 * and are found again by the fallback search; RENAME/LINK between file
 * systems are EXDEV; FSSTAT describes the object's file system; a remounted
 * file system makes the old handles stale.
 */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { MAX_DEVICES, splitId } from '../../vfs/local/devices.ts'
import type { LocalVfs } from '../../vfs/local/local-vfs.ts'
import type { FileRef } from '../../vfs/types.ts'
import { b, mkdir, mkfile, OWNER, readAll, rejectsCode } from './conformance-helpers.ts'
import { listAll } from './conformance-readdir.ts'
import { localDirs, openLocal } from './local-helpers.ts'
import type { LocalDirs } from './local-helpers.ts'
import { Mounts, SKIP_MOUNT } from './local-mounts.ts'

const BIT63 = 1n << 63n

interface Setup { dirs: LocalDirs; mnt: string; mounts: Mounts; vfs: LocalVfs; open: () => LocalVfs }

/** An export with a tmpfs at `mnt`, served with crossmnt; null (skipped) when mounting is not allowed. */
function setup(t: Test): Setup | null {
  const dirs = localDirs()
  const mounts = new Mounts(t)
  const mnt = path.join(dirs.root, 'mnt')
  if (!mounts.tmpfs(mnt)) {
    t.comment(SKIP_MOUNT)
    t.pass('crossmnt not testable on this host')
    return null
  }
  fs.writeFileSync(path.join(mnt, 'on-tmpfs'), 'other fs\n')
  fs.writeFileSync(path.join(dirs.root, 'on-root'), 'root fs\n')
  const open = (): LocalVfs => {
    const v = openLocal(dirs, { crossmnt: true })
    t.teardown(() => v.close())
    return v
  }
  return { dirs, mnt, mounts, vfs: open(), open }
}

t.test('lookup, create, write, read and readdir inside a mounted tmpfs', async t => {
  const s = setup(t)
  if (s === null) return
  const { vfs, mnt, dirs } = s
  const root = vfs.root()
  const m = await vfs.lookup(root, b('mnt'))
  const mst = fs.statSync(mnt, { bigint: true })
  t.equal(m.attr.type, 'dir')
  t.strictSame(splitId(m.ref.id), { k: 1, ino: mst.ino }, 'the tmpfs root: device 1, its own inode')
  t.equal(m.attr.fileid, m.ref.id, 'fileid is the qualified id')
  t.ok(m.ref.id >= BIT63)
  const f = await vfs.lookup(m.ref, b('on-tmpfs'))
  t.equal(await readAll(vfs, f.ref), 'other fs\n')
  t.equal(splitId(f.ref.id).k, 1)
  const r = await vfs.lookup(root, b('on-root'))
  t.equal(r.ref.id, fs.statSync(path.join(dirs.root, 'on-root'), { bigint: true }).ino, 'root-device ids stay raw inodes')

  const n = await mkfile(vfs, m.ref, 'new', 'written through the backend')
  t.equal(fs.readFileSync(path.join(mnt, 'new'), 'utf8'), 'written through the backend', 'the file is on the tmpfs')
  t.equal(splitId(n.id).ino, fs.statSync(path.join(mnt, 'new'), { bigint: true }).ino)
  const d = await mkdir(vfs, m.ref, 'sub')
  const deep = await mkfile(vfs, d, 'deep', 'deep data')
  await vfs.write(deep, 4n, b('DATA'), 'unstable')
  await vfs.commit(deep)
  t.equal(await readAll(vfs, deep), 'deepDATAa')
  await vfs.symlink(d, b('link'), b('../on-tmpfs'), {}, OWNER)
  t.equal((await vfs.readlink((await vfs.lookup(d, b('link'))).ref)).toString(), '../on-tmpfs')
  await vfs.setattr(deep, { mode: 0o600 })
  t.equal((await vfs.getattr(deep)).mode, 0o600)

  const inMnt = await listAll(vfs, m.ref, 2)
  t.strictSame(inMnt.map(e => e.name.toString()).sort(), ['.', '..', 'new', 'on-tmpfs', 'sub'])
  for (const e of inMnt.filter(x => !['.', '..'].includes(x.name.toString()))) {
    t.ok(e.ref !== undefined && e.fileid === e.ref.id && splitId(e.fileid).k === 1, `${e.name.toString()}: a handle and a qualified fileid`)
    t.equal(e.attr?.fileid, e.fileid)
  }
  const inRoot = await listAll(vfs, root, 100)
  const me = inRoot.find(e => e.name.toString() === 'mnt')
  t.strictSame(me?.ref, m.ref, 'READDIR of the root lists the mount point with the handle LOOKUP gives')
  t.equal(me?.fileid, m.ref.id)
  const ids = new Set([...inRoot, ...inMnt].filter(e => !['.', '..'].includes(e.name.toString())).map(e => e.fileid))
  t.equal(ids.size, inRoot.length - 2 + inMnt.length - 2, 'fileids are unique across both file systems')

  await vfs.remove(m.ref, b('new'))
  await rejectsCode(t, vfs.getattr(n), 'ESTALE', 'a removed tmpfs file is stale')
  await vfs.rename(d, b('deep'), m.ref, b('moved'))
  t.equal(await readAll(vfs, deep), 'deepDATAa', 'a handle survives a rename inside the tmpfs')
  s.mounts.unmountAll()
})

t.test('.. from a mounted root goes back to the mount point\'s parent', async t => {
  const s = setup(t)
  if (s === null) return
  const { vfs } = s
  const root = vfs.root()
  const m = await vfs.lookup(root, b('mnt'))
  const up = await vfs.lookup(m.ref, b('..'))
  t.strictSame(up.ref, root, 'mnt/.. is the export root')
  const page = await vfs.readdir(m.ref, 0n, 10)
  const dd = page.entries.find(e => e.name.toString() === '..')
  t.strictSame(dd?.ref, root, 'READDIR .. of the tmpfs root is the export root')
  t.equal(dd?.fileid, root.id)
  const sub = await mkdir(vfs, m.ref, 'sub')
  t.strictSame((await vfs.lookup(sub, b('..'))).ref, m.ref, 'sub/.. is the tmpfs root')
  let cur: FileRef = sub
  for (let i = 0; i < 6; i++) cur = (await vfs.lookup(cur, b('..'))).ref
  t.strictSame(cur, root, 'and it never goes above the export')
  s.mounts.unmountAll()
})

t.test('RENAME and LINK between file systems are EXDEV; FSSTAT and PATHCONF describe the object\'s file system', async t => {
  const s = setup(t)
  if (s === null) return
  const { vfs, dirs, mnt } = s
  const root = vfs.root()
  const m = await vfs.lookup(root, b('mnt'))
  const onRoot = await vfs.lookup(root, b('on-root'))
  const onTmp = await vfs.lookup(m.ref, b('on-tmpfs'))
  await rejectsCode(t, vfs.rename(root, b('on-root'), m.ref, b('x')), 'EXDEV', 'rename into the tmpfs')
  await rejectsCode(t, vfs.rename(m.ref, b('on-tmpfs'), root, b('x')), 'EXDEV', 'rename out of the tmpfs')
  await rejectsCode(t, vfs.link(onRoot.ref, m.ref, b('x')), 'EXDEV', 'link into the tmpfs')
  await rejectsCode(t, vfs.link(onTmp.ref, root, b('x')), 'EXDEV', 'link out of the tmpfs')
  t.ok(fs.existsSync(path.join(dirs.root, 'on-root')) && fs.existsSync(path.join(mnt, 'on-tmpfs')) && !fs.existsSync(path.join(mnt, 'x')), 'nothing moved')

  const tmp = await vfs.fsstat(onTmp.ref)
  t.equal(tmp.totalBytes, 16n * 1024n * 1024n, 'FSSTAT of a tmpfs file: the 16 MiB tmpfs')
  t.equal((await vfs.fsstat(m.ref)).totalBytes, tmp.totalBytes, 'and of its root')
  t.not((await vfs.fsstat(root)).totalBytes, tmp.totalBytes, 'the export root: its own file system')
  t.not((await vfs.fsstat(onRoot.ref)).totalBytes, tmp.totalBytes)
  t.equal((await vfs.pathconf(onTmp.ref)).linkMax, 2147483647, 'PATHCONF of tmpfs')
  s.mounts.unmountAll()
})

t.test('nested mounts: a tmpfs inside a tmpfs gets its own device number', async t => {
  const s = setup(t)
  if (s === null) return
  const { vfs, mnt } = s
  const inner = path.join(mnt, 'inner')
  t.ok(s.mounts.tmpfs(inner, '4m'), 'mounted the inner tmpfs')
  fs.writeFileSync(path.join(inner, 'on-tmpfs'), 'inner fs\n')
  const root = vfs.root()
  const m = await vfs.lookup(root, b('mnt'))
  const i = await vfs.lookup(m.ref, b('inner'))
  t.equal(splitId(i.ref.id).k, 2, 'device 2')
  const outerFile = await vfs.lookup(m.ref, b('on-tmpfs'))
  const innerFile = await vfs.lookup(i.ref, b('on-tmpfs'))
  t.equal(await readAll(vfs, innerFile.ref), 'inner fs\n')
  t.not(innerFile.ref.id, outerFile.ref.id, 'one name on two file systems, two ids')
  t.strictSame((await vfs.lookup(i.ref, b('..'))).ref, m.ref, 'inner/.. is the outer tmpfs root')
  t.equal((await vfs.fsstat(innerFile.ref)).totalBytes, 4n * 1024n * 1024n, 'FSSTAT: the inner tmpfs')
  await rejectsCode(t, vfs.rename(i.ref, b('on-tmpfs'), m.ref, b('x')), 'EXDEV')
  s.mounts.unmountAll()
})

t.test('handles of tmpfs objects survive a restart, and are found by search when the index is lost', async t => {
  const s = setup(t)
  if (s === null) return
  const { vfs, mnt, dirs } = s
  const root = vfs.root()
  const m = await vfs.lookup(root, b('mnt'))
  const sub = await mkdir(vfs, m.ref, 'sub')
  const f = await mkfile(vfs, sub, 'f', 'kept')
  await vfs.commit(f)
  await vfs.close()
  const two = s.open()
  t.equal(await readAll(two, f), 'kept', 'a tmpfs file handle after a restart')
  t.equal((await two.getattr(sub)).type, 'dir')
  t.equal(two.stats().searches, 0, 'resolved through the index, no search')
  await two.close()

  for (const name of ['index.snap', 'index.log']) fs.rmSync(path.join(dirs.stateDir, name), { force: true })
  const three = s.open()
  t.equal(await readAll(three, f), 'kept', 'without an index the search crosses into the tmpfs and finds it')
  t.equal(three.stats().searches, 1)
  t.equal(fs.readFileSync(path.join(mnt, 'sub', 'f'), 'utf8'), 'kept')
  s.mounts.unmountAll()
})

t.test('a remounted file system: old handles are stale, the new one is served', async t => {
  const s = setup(t)
  if (s === null) return
  const { vfs, mnt, dirs } = s
  const root = vfs.root()
  const m = await vfs.lookup(root, b('mnt'))
  const f = await vfs.lookup(m.ref, b('on-tmpfs'))
  const devBefore = fs.statSync(mnt, { bigint: true }).dev
  await vfs.close()
  s.mounts.unmount(mnt)
  // Another tmpfs outside the export first, so the new one at mnt is likely to get another st_dev.
  const elsewhere = `${dirs.root}-elsewhere`
  t.ok(s.mounts.tmpfs(elsewhere, '1m'))
  t.ok(s.mounts.tmpfs(mnt), 'a new tmpfs in its place')
  fs.writeFileSync(path.join(mnt, 'on-tmpfs'), 'other fs\n')
  const devAfter = fs.statSync(mnt, { bigint: true }).dev
  const two = s.open()
  await rejectsCode(t, two.getattr(f.ref), 'ESTALE', 'a file of the old tmpfs')
  await rejectsCode(t, two.readdir(m.ref, 0n, 10), 'ESTALE', 'the old tmpfs root')
  const m2 = await two.lookup(root, b('mnt'))
  t.notSame(m2.ref, m.ref, 'the new tmpfs root has another handle')
  if (devAfter !== devBefore) t.equal(splitId(m2.ref.id).k, 2, 'another st_dev: another device number')
  else t.equal(splitId(m2.ref.id).k, 1, 'the same st_dev: the same device number (the generation tells the objects apart)')
  t.equal(await readAll(two, (await two.lookup(m2.ref, b('on-tmpfs'))).ref), 'other fs\n')
  s.mounts.unmountAll()
})

t.test('objects that cannot have an id: a full device table', async t => {
  const s = setup(t)
  if (s === null) return
  await s.vfs.close()
  const rows = ['tsnfs-devices 1']
  for (let k = 1; k <= MAX_DEVICES; k++) rows.push(`${k} ${0xfff0_0000 + k}`)
  fs.writeFileSync(path.join(s.dirs.stateDir, 'devices'), `${rows.join('\n')}\n`)
  const vfs = s.open()
  const root = vfs.root()
  await rejectsCode(t, vfs.lookup(root, b('mnt')), 'EACCES', 'LOOKUP of the mount point: no device number left')
  const e = (await listAll(vfs, root, 100)).find(x => x.name.toString() === 'mnt')
  t.ok(e !== undefined && e.ref === undefined && e.attr === undefined && e.fileid >= BIT63, 'listed foreign-marked, without a handle')
  t.ok((await vfs.lookup(root, b('on-root'))).ref.id < BIT63, 'the root device is served as ever')
  s.mounts.unmountAll()
})

t.test('without crossmnt nothing changes: ACCES, foreign-marked, no device table', async t => {
  const s = setup(t)
  if (s === null) return
  await s.vfs.close()
  const plain = openLocal(s.dirs)
  t.teardown(() => plain.close())
  const root = plain.root()
  await rejectsCode(t, plain.lookup(root, b('mnt')), 'EACCES')
  const e = (await listAll(plain, root, 100)).find(x => x.name.toString() === 'mnt')
  t.ok(e !== undefined && e.ref === undefined && e.fileid === (fs.statSync(s.mnt, { bigint: true }).ino | BIT63), 'listed as before: inode | bit 63')
  t.equal(fs.existsSync(path.join(s.dirs.stateDir, 'devices')), false, 'no device table is written')
  s.mounts.unmountAll()
})
