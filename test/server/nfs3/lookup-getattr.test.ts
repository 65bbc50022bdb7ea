import t from 'tap'
import { FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_LINK, FSF3_SYMLINK, ftype3, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import { ALICE, b, BOB, nfs3Fixture, resfail, resok } from '../../helpers/nfs3-host.ts'

t.test('NULL answers nothing', async (t) => {
  const fx = nfs3Fixture(t)
  const nothing: Promise<unknown> = fx.call('NFSPROC3_NULL', undefined)
  t.equal(await nothing, undefined)
  const v3 = fx.program.versions.get(3)
  t.equal(v3?.procs.size, 22, 'all 22 procedures')
  t.same(
    [...(v3?.procs.values() ?? [])].filter((p) => p.nonIdempotent).map((p) => p.proc),
    [2, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    'SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK are non-idempotent',
  )
})

t.test('GETATTR: attributes with the export id as fsid; BADHANDLE, STALE', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'hello', { mode: 0o4755, owner: { uid: 7, gid: 8 } })
  const a = resok(await fx.call('NFSPROC3_GETATTR', { object: fx.fh(f) })).obj_attributes
  t.match(a, { type: ftype3.NF3REG, mode: 0o4755, uid: 7, gid: 8, size: 5n, fsid: 1n, fileid: f.id, nlink: 1 })
  t.equal((await fx.call('NFSPROC3_GETATTR', { object: { data: Buffer.alloc(3) } })).status, nfsstat3.NFS3ERR_BADHANDLE)
  t.equal((await fx.call('NFSPROC3_GETATTR', { object: fx.fh(f, 9) })).status, nfsstat3.NFS3ERR_STALE, 'unknown export')
  await fx.vfs.remove(fx.rootRef, b('f'))
  const gone = await fx.call('NFSPROC3_GETATTR', { object: fx.fh(f) })
  t.equal(gone.status, nfsstat3.NFS3ERR_STALE, 'removed object')
  t.notOk('resfail' in gone, 'GETATTR failure arm is void')
})

t.test('LOOKUP', async (t) => {
  const fx = nfs3Fixture(t)
  const d = await fx.dir('d', { mode: 0o700, owner: { uid: 1000, gid: 1000 } })
  const f = await fx.file('f', 'x', { dir: d })
  await fx.vfs.symlink(fx.rootRef, b('ln'), b('d'), {}, { uid: 0, gid: 0 })
  fx.host.user = ALICE

  const ok = resok(await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(d), name: b('f') } }))
  t.same(ok.object.data, fx.fh(f).data)
  t.match(ok.obj_attributes, { fileid: f.id })
  t.match(ok.dir_attributes, { fileid: d.id })

  const ln = resok(await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.root, name: b('ln') } }))
  t.match(ln.obj_attributes, { type: ftype3.NF3LNK }, 'symlinks are not followed')

  const up = resok(await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.root, name: b('..') } }))
  t.same(up.object.data, fx.root.data, '.. of the export root is the root')
  const dot = resok(await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(d), name: b('.') } }))
  t.same(dot.object.data, fx.fh(d).data)

  const missing = await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(d), name: b('nope') } })
  t.equal(missing.status, nfsstat3.NFS3ERR_NOENT)
  t.match(resfail(missing).dir_attributes, { fileid: d.id }, 'failure carries the directory attributes')

  t.equal((await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(f), name: b('x') } })).status, nfsstat3.NFS3ERR_NOTDIR)
  t.equal((await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(d), name: b('') } })).status, nfsstat3.NFS3ERR_ACCES, 'empty name (P15)')
  t.equal((await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(d), name: b('a/b') } })).status, nfsstat3.NFS3ERR_ACCES, 'slash')
  t.equal(
    (await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(d), name: Buffer.alloc(256, 0x61) } })).status,
    nfsstat3.NFS3ERR_NAMETOOLONG,
  )
  fx.host.user = BOB
  const denied = await fx.call('NFSPROC3_LOOKUP', { what: { dir: fx.fh(d), name: b('f') } })
  t.equal(denied.status, nfsstat3.NFS3ERR_ACCES, 'no search permission')
  t.match(resfail(denied).dir_attributes, { fileid: d.id })
  const stale = await fx.call('NFSPROC3_LOOKUP', { what: { dir: { data: Buffer.alloc(16) }, name: b('f') } })
  t.equal(stale.status, nfsstat3.NFS3ERR_STALE)
  t.equal(resfail(stale).dir_attributes, null)
})

t.test('ACCESS answers only the bits asked', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'x', { mode: 0o640, owner: { uid: 1000, gid: 1000 } })
  fx.host.user = ALICE
  t.equal(resok(await fx.call('NFSPROC3_ACCESS', { object: fx.fh(f), access: 0x3f })).access, 0x01 | 0x04 | 0x08)
  t.equal(resok(await fx.call('NFSPROC3_ACCESS', { object: fx.fh(f), access: 0x01 })).access, 0x01)
  fx.host.user = BOB
  t.equal(resok(await fx.call('NFSPROC3_ACCESS', { object: fx.fh(f), access: 0x3f })).access, 0)
  fx.host.readOnly = true
  fx.host.user = ALICE
  t.equal(resok(await fx.call('NFSPROC3_ACCESS', { object: fx.fh(f), access: 0x3f })).access, 0x01, 'read-only export')
  t.equal(resfail(await fx.call('NFSPROC3_ACCESS', { object: { data: Buffer.alloc(1) }, access: 1 })).obj_attributes, null)
})

t.test('READLINK', async (t) => {
  const fx = nfs3Fixture(t)
  const { ref } = await fx.vfs.symlink(fx.rootRef, b('ln'), b('../target'), {}, { uid: 0, gid: 0 })
  const ok = resok(await fx.call('NFSPROC3_READLINK', { symlink: fx.fh(ref) }))
  t.same(ok.data, b('../target'))
  t.match(ok.symlink_attributes, { type: ftype3.NF3LNK })
  const f = await fx.file('f')
  const inval = await fx.call('NFSPROC3_READLINK', { symlink: fx.fh(f) })
  t.equal(inval.status, nfsstat3.NFS3ERR_INVAL)
  t.match(resfail(inval).symlink_attributes, { type: ftype3.NF3REG })
})

t.test('FSSTAT, FSINFO (TCP and UDP), PATHCONF', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f')
  const st = resok(await fx.call('NFSPROC3_FSSTAT', { fsroot: fx.fh(f) }))
  t.equal(st.invarsec, 0)
  t.ok(st.tbytes > 0n && st.abytes <= st.tbytes)
  const info = resok(await fx.call('NFSPROC3_FSINFO', { fsroot: fx.root }))
  t.match(info, { rtmax: 1 << 20, wtmax: 1 << 20, rtpref: 1 << 20, wtpref: 1 << 20, rtmult: 4096, wtmult: 4096, dtpref: 65536 })
  t.equal(info.properties, FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME)
  t.same(info.time_delta, { seconds: 0, nseconds: 1 })
  t.equal(info.maxfilesize, fx.vfs.capabilities().maxFileSize)
  fx.transport = 'udp'
  const udp = resok(await fx.call('NFSPROC3_FSINFO', { fsroot: fx.fh(f) }))
  t.match(udp, { rtmax: 32768, wtmax: 32768, rtpref: 32768, wtpref: 32768, dtpref: 32768 }, 'UDP caps at 32 KiB')
  const pc = resok(await fx.call('NFSPROC3_PATHCONF', { object: fx.root }))
  t.match(pc, { name_max: 255, no_trunc: true, chown_restricted: true, case_insensitive: false, case_preserving: true })
  t.equal((await fx.call('NFSPROC3_FSINFO', { fsroot: { data: Buffer.alloc(2) } })).status, nfsstat3.NFS3ERR_BADHANDLE)
  t.equal((await fx.call('NFSPROC3_FSSTAT', { fsroot: { data: Buffer.alloc(2) } })).status, nfsstat3.NFS3ERR_BADHANDLE)
  t.equal((await fx.call('NFSPROC3_PATHCONF', { object: { data: Buffer.alloc(2) } })).status, nfsstat3.NFS3ERR_BADHANDLE)
})
