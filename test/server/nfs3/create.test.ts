import t from 'tap'
import { ftype3, nfsstat3 } from '../../../xdr/generated/nfs3.ts'
import type { CREATE3args } from '../../../xdr/generated/nfs3.ts'
import { ALICE, b, BOB, nfs3Fixture, NO_ATTRS, resfail, resok, ROOT, sattr } from '../../helpers/nfs3-host.ts'

t.test('CREATE UNCHECKED / GUARDED', async (t) => {
  const fx = nfs3Fixture(t)
  fx.host.user = ALICE
  const d = await fx.dir('d', { mode: 0o777 })
  const args = (mode: 0 | 1, name: string, s = sattr({ mode: 0o640 })): CREATE3args => ({
    where: { dir: fx.fh(d), name: b(name) },
    how: { mode, obj_attributes: s },
  })
  const c = resok(await fx.call('NFSPROC3_CREATE', args(1, 'g')))
  t.match(c.obj_attributes, { type: ftype3.NF3REG, mode: 0o640, uid: 1000, gid: 1000 })
  t.ok(c.obj !== null)
  t.match(c.dir_wcc.after, { fileid: d.id })
  t.ok(c.dir_wcc.before !== null)
  const exists = await fx.call('NFSPROC3_CREATE', args(1, 'g'))
  t.equal(exists.status, nfsstat3.NFS3ERR_EXIST, 'GUARDED on an existing name')
  t.match(resfail(exists).dir_wcc.after, { fileid: d.id })

  const f = await fx.file('u', 'some data', { dir: d, owner: { uid: 1000, gid: 1000 } })
  const again = resok(await fx.call('NFSPROC3_CREATE', args(0, 'u', sattr({ size: 0n, mode: 0o600 }))))
  t.same(again.obj?.data, fx.fh(f).data, 'UNCHECKED returns the existing file')
  t.match(again.obj_attributes, { size: 0n, mode: 0o644 }, 'only the size applies to an existing file (knfsd)')
  await fx.file('theirs', 'data', { dir: d, owner: { uid: 1001, gid: 1001 } })
  t.equal((await fx.call('NFSPROC3_CREATE', args(0, 'theirs', sattr({ size: 0n })))).status, nfsstat3.NFS3ERR_ACCES, 'truncating needs write permission')
  t.equal((await fx.call('NFSPROC3_CREATE', args(1, 'owned', sattr({ uid: 0, gid: 0 })))).status, nfsstat3.NFS3_OK)
  t.match(await fx.vfs.getattr((await fx.vfs.lookup(d, b('owned'))).ref), { uid: 1000, gid: 1000 }, 'uid/gid in create attributes are for root only')
})

t.test('CREATE EXCLUSIVE: replay with the same verifier succeeds, another verifier is EXIST', async (t) => {
  const fx = nfs3Fixture(t)
  const verf = Buffer.from('12345678')
  const args = (v: Buffer): CREATE3args => ({ where: { dir: fx.root, name: b('x') }, how: { mode: 2, verf: v } })
  const first = resok(await fx.call('NFSPROC3_CREATE', args(verf)))
  const replay = resok(await fx.call('NFSPROC3_CREATE', args(Buffer.from(verf))))
  t.same(replay.obj?.data, first.obj?.data, 'the retransmission gets the same file')
  t.equal((await fx.call('NFSPROC3_CREATE', args(Buffer.from('87654321')))).status, nfsstat3.NFS3ERR_EXIST)
})

t.test('CREATE name checks and permissions (P15)', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f')
  const create = (name: Buffer, dir = fx.root) => fx.call('NFSPROC3_CREATE', { where: { dir, name }, how: { mode: 1, obj_attributes: NO_ATTRS } })
  t.equal((await create(b(''))).status, nfsstat3.NFS3ERR_ACCES, 'empty')
  t.equal((await create(b('.'))).status, nfsstat3.NFS3ERR_EXIST, '.')
  t.equal((await create(b('..'))).status, nfsstat3.NFS3ERR_EXIST, '..')
  t.equal((await create(Buffer.alloc(256, 0x61))).status, nfsstat3.NFS3ERR_NAMETOOLONG)
  t.equal((await create(Buffer.alloc(255, 0x61))).status, nfsstat3.NFS3_OK, '255 bytes is fine')
  t.equal((await create(b('a/b'))).status, nfsstat3.NFS3ERR_ACCES, 'slash')
  t.equal((await create(Buffer.from([0x61, 0]))).status, nfsstat3.NFS3ERR_ACCES, 'NUL')
  t.equal((await create(b('x'), fx.fh(f))).status, nfsstat3.NFS3ERR_NOTDIR)
  fx.host.user = BOB
  const denied = await create(b('y'))
  t.equal(denied.status, nfsstat3.NFS3ERR_ACCES, 'no write permission on the directory')
  t.match(resfail(denied).dir_wcc.after, { fileid: fx.rootRef.id })
  fx.host.user = ROOT
  fx.host.readOnly = true
  t.equal((await create(b('z'))).status, nfsstat3.NFS3ERR_ROFS)
  t.same(resfail(await create(b('z'), { data: Buffer.alloc(1) })).dir_wcc, { before: null, after: null })
})

t.test('MKDIR, with setgid directories passing their group on', async (t) => {
  const fx = nfs3Fixture(t)
  const sg = await fx.dir('sg', { mode: 0o2777, owner: { uid: 0, gid: 50 } })
  fx.host.user = ALICE
  const m = resok(await fx.call('NFSPROC3_MKDIR', { where: { dir: fx.fh(sg), name: b('sub') }, attributes: sattr({ mode: 0o750 }) }))
  t.match(m.obj_attributes, { type: ftype3.NF3DIR, mode: 0o2750, uid: 1000, gid: 50 })
  t.equal((await fx.call('NFSPROC3_MKDIR', { where: { dir: fx.fh(sg), name: b('sub') }, attributes: NO_ATTRS })).status, nfsstat3.NFS3ERR_EXIST)
  t.equal((await fx.call('NFSPROC3_MKDIR', { where: { dir: fx.root, name: b('no') }, attributes: NO_ATTRS })).status, nfsstat3.NFS3ERR_ACCES)
})

t.test('SYMLINK', async (t) => {
  const fx = nfs3Fixture(t)
  const s = resok(
    await fx.call('NFSPROC3_SYMLINK', { where: { dir: fx.root, name: b('ln') }, symlink: { symlink_attributes: sattr({ mode: 0o600 }), symlink_data: b('/a/b') } }),
  )
  t.match(s.obj_attributes, { type: ftype3.NF3LNK, mode: 0o777, size: 4n })
  const empty = await fx.call('NFSPROC3_SYMLINK', { where: { dir: fx.root, name: b('e') }, symlink: { symlink_attributes: NO_ATTRS, symlink_data: b('') } })
  t.equal(empty.status, nfsstat3.NFS3ERR_NOENT, 'empty target (as knfsd and symlink(2))')
  t.match(resfail(empty).dir_wcc.after, { fileid: fx.rootRef.id })
})

t.test('MKNOD: BADTYPE, device nodes for root only, fifos and sockets for anyone', async (t) => {
  const fx = nfs3Fixture(t)
  const where = (name: string) => ({ dir: fx.root, name: b(name) })
  for (const type of [ftype3.NF3REG, ftype3.NF3DIR, ftype3.NF3LNK] as const) {
    t.equal((await fx.call('NFSPROC3_MKNOD', { where: where('bad'), what: { type } })).status, nfsstat3.NFS3ERR_BADTYPE)
  }
  const chr = resok(
    await fx.call('NFSPROC3_MKNOD', { where: where('null'), what: { type: ftype3.NF3CHR, device: { dev_attributes: sattr({ mode: 0o666 }), spec: { specdata1: 1, specdata2: 3 } } } }),
  )
  t.match(chr.obj_attributes, { type: ftype3.NF3CHR, mode: 0o666, rdev: { specdata1: 1, specdata2: 3 } })
  const open = await fx.dir('open', { mode: 0o777 })
  fx.host.user = ALICE
  const blk = await fx.call('NFSPROC3_MKNOD', {
    where: { dir: fx.fh(open), name: b('sda') },
    what: { type: ftype3.NF3BLK, device: { dev_attributes: NO_ATTRS, spec: { specdata1: 8, specdata2: 0 } } },
  })
  t.equal(blk.status, nfsstat3.NFS3ERR_PERM, 'device nodes need root')
  const fifo = resok(await fx.call('NFSPROC3_MKNOD', { where: { dir: fx.fh(open), name: b('p') }, what: { type: ftype3.NF3FIFO, pipe_attributes: sattr({ mode: 0o600 }) } }))
  t.match(fifo.obj_attributes, { type: ftype3.NF3FIFO, uid: 1000 })
  const sock = resok(await fx.call('NFSPROC3_MKNOD', { where: { dir: fx.fh(open), name: b('s') }, what: { type: ftype3.NF3SOCK, pipe_attributes: NO_ATTRS } }))
  t.match(sock.obj_attributes, { type: ftype3.NF3SOCK })
})
