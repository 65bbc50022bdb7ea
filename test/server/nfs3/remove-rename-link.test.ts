import t from 'tap'
import { ftype3, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import type { VfsCapabilities } from '../../../vfs/types.ts'
import { ALICE, b, BOB, nfs3Fixture, NO_ATTRS, resfail, resok, ROOT } from '../../helpers/nfs3-host.ts'

t.test('REMOVE and RMDIR', async (t) => {
  const fx = nfs3Fixture(t)
  await fx.file('f')
  const d = await fx.dir('d')
  await fx.file('inner', '', { dir: d })
  const rm = (name: string | Buffer) => fx.call('NFSPROC3_REMOVE', { object: { dir: fx.root, name: typeof name === 'string' ? b(name) : name } })
  const rd = (name: string) => fx.call('NFSPROC3_RMDIR', { object: { dir: fx.root, name: b(name) } })

  const ok = resok(await rm('f'))
  t.ok(ok.dir_wcc.before !== null && ok.dir_wcc.after !== null)
  const missing = await rm('f')
  t.equal(missing.status, nfsstat3.NFS3ERR_NOENT)
  t.match(resfail(missing).dir_wcc.after, { fileid: fx.rootRef.id })
  t.equal((await rm('d')).status, nfsstat3.NFS3ERR_ISDIR, 'REMOVE of a directory')
  t.equal((await rm('.')).status, nfsstat3.NFS3ERR_ACCES)
  t.equal((await rm('')).status, nfsstat3.NFS3ERR_ACCES)
  t.equal((await rd('d')).status, nfsstat3.NFS3ERR_NOTEMPTY)
  await fx.file('g')
  t.equal((await rd('g')).status, nfsstat3.NFS3ERR_NOTDIR, 'RMDIR of a file')
  t.equal((await rd('.')).status, nfsstat3.NFS3ERR_INVAL, 'RFC 1813 §3.3.13: . is INVAL')
  t.equal((await rd('..')).status, nfsstat3.NFS3ERR_EXIST, 'RFC 1813 §3.3.13: .. is EXIST')
  await fx.vfs.remove(d, b('inner'))
  t.equal((await rd('d')).status, nfsstat3.NFS3_OK)
  fx.host.readOnly = true
  t.equal((await rm('g')).status, nfsstat3.NFS3ERR_ROFS)
  t.equal((await rd('g')).status, nfsstat3.NFS3ERR_ROFS)
})

t.test('REMOVE in a sticky directory, and without write permission', async (t) => {
  const fx = nfs3Fixture(t)
  const tmp = await fx.dir('tmp', { mode: 0o1777 })
  await fx.file('alices', '', { dir: tmp, owner: { uid: 1000, gid: 1000 } })
  await fx.file('bobs', '', { dir: tmp, owner: { uid: 1001, gid: 1001 } })
  const rm = (name: string) => fx.call('NFSPROC3_REMOVE', { object: { dir: fx.fh(tmp), name: b(name) } })
  fx.host.user = BOB
  const perm = await rm('alices')
  t.equal(perm.status, nfsstat3.NFS3ERR_PERM, 'not his file, not his directory')
  t.match(resfail(perm).dir_wcc.after, { fileid: tmp.id })
  t.equal((await rm('nothing')).status, nfsstat3.NFS3ERR_NOENT)
  t.equal((await rm('bobs')).status, nfsstat3.NFS3_OK, 'his own file')
  fx.host.user = ROOT
  t.equal((await rm('alices')).status, nfsstat3.NFS3_OK, 'root')
  const closed = await fx.dir('closed', { mode: 0o755 })
  await fx.file('x', '', { dir: closed })
  fx.host.user = ALICE
  t.equal((await fx.call('NFSPROC3_REMOVE', { object: { dir: fx.fh(closed), name: b('x') } })).status, nfsstat3.NFS3ERR_ACCES)
})

t.test('RENAME', async (t) => {
  const fx = nfs3Fixture(t)
  const a = await fx.dir('a')
  const c = await fx.dir('c')
  const f = await fx.file('f', 'x', { dir: a })
  const mv = (fromDir: { data: Buffer }, from: string, toDir: { data: Buffer }, to: string) =>
    fx.call('NFSPROC3_RENAME', { from: { dir: fromDir, name: b(from) }, to: { dir: toDir, name: b(to) } })

  const ok = resok(await mv(fx.fh(a), 'f', fx.fh(c), 'g'))
  t.match(ok.fromdir_wcc.after, { fileid: a.id })
  t.match(ok.todir_wcc.after, { fileid: c.id })
  t.ok(ok.fromdir_wcc.before !== null && ok.todir_wcc.before !== null)
  t.same(resok(await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(c), name: b('g') } })).object.data, fx.fh(f).data, 'the handle survives')

  const missing = await mv(fx.fh(a), 'f', fx.fh(c), 'h')
  t.equal(missing.status, nfsstat3.NFS3ERR_NOENT)
  t.match(resfail(missing).fromdir_wcc.after, { fileid: a.id })
  t.match(resfail(missing).todir_wcc.after, { fileid: c.id })
  for (const [from, to] of [['.', 'x'], ['..', 'x'], ['g', '.'], ['g', '..']]) {
    t.equal((await mv(fx.fh(c), from ?? '', fx.fh(c), to ?? '')).status, nfsstat3.NFS3ERR_INVAL, `${from} -> ${to}`)
  }
  t.equal((await mv(fx.fh(c), '', fx.fh(c), 'x')).status, nfsstat3.NFS3ERR_ACCES, 'empty name')
  t.equal((await mv(fx.root, 'a', fx.fh(a), 'sub')).status, nfsstat3.NFS3ERR_INVAL, 'into its own subtree')
  t.equal((await mv(fx.fh(f), 'x', fx.fh(a), 'y')).status, nfsstat3.NFS3ERR_NOTDIR)
  const other = new MemoryVfs()
  fx.host.exports.set(2, other)
  const xdev = await mv(fx.fh(c), 'g', fx.fh(other.root(), 2), 'g')
  t.equal(xdev.status, nfsstat3.NFS3ERR_XDEV, 'another export')
  t.ok(resfail(xdev).todir_wcc.after !== null, 'both wccs present')
  const stale = await mv({ data: Buffer.alloc(16) }, 'g', fx.fh(c), 'z')
  t.equal(stale.status, nfsstat3.NFS3ERR_STALE)
  t.match(resfail(stale).todir_wcc.after, { fileid: c.id })
  await fx.dir('full', { dir: c })
  await fx.file('inside', '', { dir: (await fx.vfs.lookup(c, b('full'))).ref })
  await fx.dir('e', { dir: c })
  t.equal((await mv(fx.fh(c), 'e', fx.fh(c), 'full')).status, nfsstat3.NFS3ERR_NOTEMPTY, 'POSIX servers say NOTEMPTY (P14)')
  fx.host.readOnly = true
  t.equal((await mv(fx.fh(c), 'g', fx.fh(c), 'z')).status, nfsstat3.NFS3ERR_ROFS)
})

t.test('RENAME permissions: sticky source and target, a directory to a new parent', async (t) => {
  const fx = nfs3Fixture(t)
  const tmp = await fx.dir('tmp', { mode: 0o1777 })
  const open = await fx.dir('open', { mode: 0o777 })
  await fx.file('alices', '', { dir: tmp, owner: { uid: 1000, gid: 1000 } })
  await fx.file('bobs', '', { dir: tmp, owner: { uid: 1001, gid: 1001 } })
  await fx.dir('bobdir', { dir: open, mode: 0o555, owner: { uid: 1001, gid: 1001 } })
  const mv = (fromDir: { data: Buffer }, from: string, toDir: { data: Buffer }, to: string) =>
    fx.call('NFSPROC3_RENAME', { from: { dir: fromDir, name: b(from) }, to: { dir: toDir, name: b(to) } })
  fx.host.user = BOB
  t.equal((await mv(fx.fh(tmp), 'alices', fx.fh(tmp), 'mine')).status, nfsstat3.NFS3ERR_PERM, 'sticky source')
  t.equal((await mv(fx.fh(tmp), 'bobs', fx.fh(tmp), 'alices')).status, nfsstat3.NFS3ERR_PERM, 'sticky target')
  t.equal((await mv(fx.fh(tmp), 'bobs', fx.fh(tmp), 'bobs2')).status, nfsstat3.NFS3_OK)
  t.equal((await mv(fx.fh(open), 'bobdir', fx.fh(tmp), 'bd')).status, nfsstat3.NFS3ERR_ACCES, 'a directory moved to a new parent needs write on it')
  t.equal((await mv(fx.fh(open), 'bobdir', fx.fh(open), 'bd')).status, nfsstat3.NFS3_OK, 'same parent: no')
  t.equal((await mv(fx.root, 'tmp', fx.fh(open), 'x')).status, nfsstat3.NFS3ERR_ACCES, 'no write on the source directory')
})

t.test('LINK', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'x')
  const d = await fx.dir('d')
  const ln = (file: { data: Buffer }, name: string, dir = fx.root) => fx.call('NFSPROC3_LINK', { file, link: { dir, name: b(name) } })
  const ok = resok(await ln(fx.fh(f), 'f2'))
  t.match(ok.file_attributes, { nlink: 2 })
  t.ok(ok.linkdir_wcc.before !== null)
  const exists = await ln(fx.fh(f), 'd')
  t.equal(exists.status, nfsstat3.NFS3ERR_EXIST)
  t.match(resfail(exists).file_attributes, { fileid: f.id })
  t.match(resfail(exists).linkdir_wcc.after, { fileid: fx.rootRef.id })
  t.equal((await ln(fx.fh(d), 'd2')).status, nfsstat3.NFS3ERR_ISDIR, 'knfsd: a link to a directory is ISDIR')
  t.equal((await ln(fx.fh(f), '.')).status, nfsstat3.NFS3ERR_EXIST)
  t.equal((await ln(fx.fh(f), 'x', fx.fh(f))).status, nfsstat3.NFS3ERR_NOTDIR)
  const other = new MemoryVfs()
  fx.host.exports.set(2, other)
  t.equal((await ln(fx.fh(f), 'x', fx.fh(other.root(), 2))).status, nfsstat3.NFS3ERR_XDEV)
  const stale = await ln({ data: Buffer.alloc(16) }, 'x')
  t.equal(stale.status, nfsstat3.NFS3ERR_STALE)
  t.equal(resfail(stale).file_attributes, null)
  t.match(resfail(stale).linkdir_wcc.after, { fileid: fx.rootRef.id })
  fx.host.user = ALICE
  t.equal((await ln(fx.fh(f), 'y')).status, nfsstat3.NFS3ERR_ACCES, 'no write on the directory')
  fx.host.readOnly = true
  t.equal((await ln(fx.fh(f), 'y')).status, nfsstat3.NFS3ERR_ROFS)
})

class NoExtrasVfs extends MemoryVfs {
  override capabilities(): VfsCapabilities {
    return { ...super.capabilities(), hardLinks: false, symlinks: false, deviceNodes: false }
  }
}

t.test('NOTSUPP when the backend cannot: LINK, SYMLINK, device MKNOD', async (t) => {
  const fx = nfs3Fixture(t, { vfs: new NoExtrasVfs() })
  const f = await fx.file('f')
  t.equal((await fx.call('NFSPROC3_LINK', { file: fx.fh(f), link: { dir: fx.root, name: b('l') } })).status, nfsstat3.NFS3ERR_NOTSUPP)
  const sym = await fx.call('NFSPROC3_SYMLINK', { where: { dir: fx.root, name: b('s') }, symlink: { symlink_attributes: NO_ATTRS, symlink_data: b('x') } })
  t.equal(sym.status, nfsstat3.NFS3ERR_NOTSUPP)
  const dev = await fx.call('NFSPROC3_MKNOD', {
    where: { dir: fx.root, name: b('n') },
    what: { type: ftype3.NF3CHR, device: { dev_attributes: NO_ATTRS, spec: { specdata1: 1, specdata2: 3 } } },
  })
  t.equal(dev.status, nfsstat3.NFS3ERR_NOTSUPP)
  t.equal((await fx.call('NFSPROC3_FSINFO', { fsroot: fx.root })).status, nfsstat3.NFS3_OK)
  const info = resok(await fx.call('NFSPROC3_FSINFO', { fsroot: fx.root }))
  t.equal(info.properties & 0x03, 0, 'no FSF3_LINK / FSF3_SYMLINK')
})
