import t from 'tap'
import { nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import { ALICE, BOB, nfs3Fixture, resfail, resok, ROOT, sattr } from '../../helpers/nfs3-host.ts'

t.test('SETATTR changes and reports wcc', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'hello world', { owner: { uid: 1000, gid: 1000 } })
  fx.host.user = ALICE
  const r = resok(await fx.call('NFSPROC3_SETATTR', { object: fx.fh(f), new_attributes: sattr({ mode: 0o600, size: 5n }), guard: null }))
  t.match(r.obj_wcc.before, { size: 11n })
  t.match(r.obj_wcc.after, { size: 5n, mode: 0o600 })
  const times = resok(
    await fx.call('NFSPROC3_SETATTR', {
      object: fx.fh(f),
      new_attributes: sattr({ atime: { set_it: 2, atime: { seconds: 100, nseconds: 5 } }, mtime: { set_it: 2, mtime: { seconds: 200, nseconds: 6 } } }),
      guard: null,
    }),
  )
  t.match(times.obj_wcc.after, { atime: { seconds: 100, nseconds: 5 }, mtime: { seconds: 200, nseconds: 6 } })
  const nothing = resok(await fx.call('NFSPROC3_SETATTR', { object: fx.fh(f), new_attributes: sattr({}), guard: null }))
  t.same(nothing.obj_wcc.after?.ctime, times.obj_wcc.after?.ctime, 'nothing to change changes nothing')
})

t.test('SETATTR guard: NOT_SYNC on a ctime mismatch, nothing changed', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'abc')
  const a = resok(await fx.call('NFSPROC3_GETATTR', { object: fx.fh(f) })).obj_attributes
  const bad = await fx.call('NFSPROC3_SETATTR', {
    object: fx.fh(f),
    new_attributes: sattr({ size: 0n }),
    guard: { seconds: a.ctime.seconds, nseconds: (a.ctime.nseconds + 1) % 1e9 },
  })
  t.equal(bad.status, nfsstat3.NFS3ERR_NOT_SYNC)
  t.match(resfail(bad).obj_wcc.after, { size: 3n }, 'obj_wcc carries current attributes')
  t.equal((await fx.vfs.getattr(f)).size, 3n, 'unchanged')
  const good = await fx.call('NFSPROC3_SETATTR', { object: fx.fh(f), new_attributes: sattr({ size: 0n }), guard: a.ctime })
  t.equal(good.status, nfsstat3.NFS3_OK)
  t.equal((await fx.vfs.getattr(f)).size, 0n)
})

t.test('SETATTR permissions: chmod/chown by non-owner PERM, truncate ACCES, ROFS', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'abc', { mode: 0o644, owner: { uid: 1000, gid: 1000 } })
  const call = (s: Parameters<typeof sattr>[0]) => fx.call('NFSPROC3_SETATTR', { object: fx.fh(f), new_attributes: sattr(s), guard: null })
  fx.host.user = BOB
  const perm = await call({ mode: 0o777 })
  t.equal(perm.status, nfsstat3.NFS3ERR_PERM, 'chmod by non-owner')
  t.match(resfail(perm).obj_wcc.after, { mode: 0o644 })
  t.equal((await call({ uid: 1001 })).status, nfsstat3.NFS3ERR_PERM, 'chown by non-root')
  t.equal((await call({ size: 0n })).status, nfsstat3.NFS3ERR_ACCES, 'truncate without write permission')
  t.equal((await call({ mtime: { set_it: 1 } })).status, nfsstat3.NFS3ERR_ACCES, 'touch without write permission')
  t.equal((await call({ mtime: { set_it: 2, mtime: { seconds: 1, nseconds: 0 } } })).status, nfsstat3.NFS3ERR_PERM)
  fx.host.user = ALICE
  t.equal((await call({ uid: 1001 })).status, nfsstat3.NFS3ERR_PERM, 'owner cannot give a file away')
  t.equal((await call({ gid: 1001 })).status, nfsstat3.NFS3ERR_PERM, 'chgrp to a group not his')
  fx.host.user = ROOT
  t.equal((await call({ uid: 1001, gid: 1001 })).status, nfsstat3.NFS3_OK, 'root chowns')
  fx.host.readOnly = true
  const rofs = await call({ mode: 0o600 })
  t.equal(rofs.status, nfsstat3.NFS3ERR_ROFS)
  t.match(resfail(rofs).obj_wcc.after, { uid: 1001 })
})

t.test('SETATTR errors from the vfs carry wcc; size on a directory is ISDIR', async (t) => {
  const fx = nfs3Fixture(t)
  const d = await fx.dir('d')
  const r = await fx.call('NFSPROC3_SETATTR', { object: fx.fh(d), new_attributes: sattr({ size: 0n }), guard: null })
  t.equal(r.status, nfsstat3.NFS3ERR_ISDIR)
  t.match(resfail(r).obj_wcc.after, { fileid: d.id })
  const f = await fx.file('f')
  const badTime = await fx.call('NFSPROC3_SETATTR', {
    object: fx.fh(f),
    new_attributes: sattr({ mtime: { set_it: 2, mtime: { seconds: 1, nseconds: 2e9 } } }),
    guard: null,
  })
  t.equal(badTime.status, nfsstat3.NFS3ERR_INVAL, 'nseconds out of range')
  t.equal(resfail(await fx.call('NFSPROC3_SETATTR', { object: { data: Buffer.alloc(0) }, new_attributes: sattr({}), guard: null })).obj_wcc.after, null)
})
