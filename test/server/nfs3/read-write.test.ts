import t from 'tap'
import { nfsstat3, stable_how } from '../../../xdr/generated/nfs3.ts'
import { VfsError } from '../../../vfs/errors.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { ALICE, b, BOB, nfs3Fixture, resfail, resok } from '../../helpers/nfs3-host.ts'

t.test('READ: data, eof, short reads, beyond EOF, count 0', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'hello world')
  const all = resok(await fx.call('NFSPROC3_READ', { file: fx.fh(f), offset: 0n, count: 100 }))
  t.same(all.data, b('hello world'))
  t.equal(all.count, 11)
  t.equal(all.eof, true)
  t.match(all.file_attributes, { size: 11n })
  const part = resok(await fx.call('NFSPROC3_READ', { file: fx.fh(f), offset: 2n, count: 3 }))
  t.same(part.data, b('llo'))
  t.equal(part.eof, false)
  const tail = resok(await fx.call('NFSPROC3_READ', { file: fx.fh(f), offset: 6n, count: 5 }))
  t.equal(tail.eof, true, 'offset + count reaches the end')
  const beyond = resok(await fx.call('NFSPROC3_READ', { file: fx.fh(f), offset: 50n, count: 10 }))
  t.equal(beyond.count, 0)
  t.equal(beyond.eof, true)
  const zero = resok(await fx.call('NFSPROC3_READ', { file: fx.fh(f), offset: 0n, count: 0 }))
  t.equal(zero.count, 0)
})

t.test('READ is capped at rtmax (32 KiB on UDP)', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('big')
  await fx.vfs.write(f, 0n, Buffer.alloc(100_000, 7), 'file_sync')
  fx.host.limits = { ...fx.host.limits, rtmax: 40_000 }
  const tcp = resok(await fx.call('NFSPROC3_READ', { file: fx.fh(f), offset: 0n, count: 100_000 }))
  t.equal(tcp.count, 40_000)
  t.equal(tcp.eof, false, 'a short read is not eof')
  fx.transport = 'udp'
  const udp = resok(await fx.call('NFSPROC3_READ', { file: fx.fh(f), offset: 0n, count: 100_000 }))
  t.equal(udp.count, 32 * 1024)
})

t.test('READ failures: ISDIR, INVAL, ACCES, with attributes; owner override and exec-to-read', async (t) => {
  const fx = nfs3Fixture(t)
  const d = await fx.dir('d')
  const isdir = await fx.call('NFSPROC3_READ', { file: fx.fh(d), offset: 0n, count: 1 })
  t.equal(isdir.status, nfsstat3.NFS3ERR_ISDIR)
  t.match(resfail(isdir).file_attributes, { fileid: d.id })
  const { ref: ln } = await fx.vfs.symlink(fx.rootRef, b('ln'), b('x'), {}, { uid: 0, gid: 0 })
  t.equal((await fx.call('NFSPROC3_READ', { file: fx.fh(ln), offset: 0n, count: 1 })).status, nfsstat3.NFS3ERR_INVAL)
  const secret = await fx.file('secret', 'x', { mode: 0o000, owner: { uid: 1000, gid: 1000 } })
  fx.host.user = BOB
  const denied = await fx.call('NFSPROC3_READ', { file: fx.fh(secret), offset: 0n, count: 1 })
  t.equal(denied.status, nfsstat3.NFS3ERR_ACCES)
  t.match(resfail(denied).file_attributes, { mode: 0 })
  fx.host.user = ALICE
  t.equal((await fx.call('NFSPROC3_READ', { file: fx.fh(secret), offset: 0n, count: 1 })).status, nfsstat3.NFS3_OK, 'owner reads a 000 file')
  const bin = await fx.file('bin', 'x', { mode: 0o711 })
  fx.host.user = BOB
  t.equal((await fx.call('NFSPROC3_READ', { file: fx.fh(bin), offset: 0n, count: 1 })).status, nfsstat3.NFS3_OK, 'execute grants read')
  t.equal(resfail(await fx.call('NFSPROC3_READ', { file: { data: Buffer.alloc(1) }, offset: 0n, count: 1 })).file_attributes, null)
})

t.test('WRITE: stable levels, committed >= stable, one verifier shared with COMMIT', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f')
  for (const stable of [stable_how.UNSTABLE, stable_how.DATA_SYNC, stable_how.FILE_SYNC]) {
    const w = resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: 3, stable, data: b('abc') }))
    t.equal(w.count, 3)
    t.ok(w.committed >= stable, `committed ${w.committed} >= ${stable}`)
    t.same(w.verf, fx.host.verifier)
  }
  const w = resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 3n, count: 2, stable: 0, data: b('de') }))
  t.match(w.file_wcc.before, { size: 3n })
  t.match(w.file_wcc.after, { size: 5n })
  const c = resok(await fx.call('NFSPROC3_COMMIT', { file: fx.fh(f), offset: 0n, count: 0 }))
  t.same(c.verf, w.verf, 'COMMIT returns the WRITE verifier')
  t.match(c.file_wcc.after, { size: 5n })
  t.same((await fx.vfs.read(f, 0n, 10)).data, b('abcde'))
})

t.test('WRITE: count 0 changes nothing; count mismatch INVAL; wtmax caps; UDP', async (t) => {
  const fx = nfs3Fixture(t)
  const f = await fx.file('f', 'x')
  const before = await fx.vfs.getattr(f)
  const zero = resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: 0, stable: 2, data: Buffer.alloc(0) }))
  t.equal(zero.count, 0)
  t.same((await fx.vfs.getattr(f)).mtime, before.mtime, 'mtime unchanged')
  const bad = await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: 5, stable: 2, data: b('abc') })
  t.equal(bad.status, nfsstat3.NFS3ERR_INVAL)
  t.match(resfail(bad).file_wcc.after, { size: 1n })
  fx.host.limits = { ...fx.host.limits, wtmax: 4 }
  const short = resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: 10, stable: 2, data: b('0123456789') }))
  t.equal(short.count, 4, 'short write')
  fx.host.limits = { ...fx.host.limits, wtmax: 1 << 20 }
  fx.transport = 'udp'
  const big = Buffer.alloc(40_000, 1)
  const udp = resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: big.length, stable: 2, data: big }))
  t.equal(udp.count, 32 * 1024)
})

t.test('WRITE failures: ISDIR, INVAL, ROFS, ACCES; owner override', async (t) => {
  const fx = nfs3Fixture(t)
  const d = await fx.dir('d')
  const w = (fh: { data: Buffer }) => fx.call('NFSPROC3_WRITE', { file: fh, offset: 0n, count: 1, stable: 2, data: b('x') })
  t.equal((await w(fx.fh(d))).status, nfsstat3.NFS3ERR_ISDIR)
  const { ref: fifo } = await fx.vfs.mknod(fx.rootRef, b('p'), 'fifo', { major: 0, minor: 0 }, {}, { uid: 0, gid: 0 })
  t.equal((await w(fx.fh(fifo))).status, nfsstat3.NFS3ERR_INVAL)
  const mine = await fx.file('mine', '', { mode: 0o444, owner: { uid: 1000, gid: 1000 } })
  fx.host.user = BOB
  const denied = await w(fx.fh(mine))
  t.equal(denied.status, nfsstat3.NFS3ERR_ACCES)
  t.match(resfail(denied).file_wcc.after, { fileid: mine.id })
  fx.host.user = ALICE
  t.equal((await w(fx.fh(mine))).status, nfsstat3.NFS3_OK, 'the owner writes his read-only file')
  fx.host.readOnly = true
  t.equal((await w(fx.fh(mine))).status, nfsstat3.NFS3ERR_ROFS)
  t.equal((await fx.call('NFSPROC3_COMMIT', { file: fx.fh(mine), offset: 0n, count: 0 })).status, nfsstat3.NFS3_OK, 'COMMIT is fine on ro')
  t.equal(resfail(await w({ data: Buffer.alloc(2) })).file_wcc.after, null)
})

class FailingCommitVfs extends MemoryVfs {
  override commit(): Promise<never> {
    return Promise.reject(new VfsError('EIO', 'disk on fire'))
  }
}

t.test('an async export: stable WRITEs reach the backend unstably and answer the level asked; COMMIT flushes nothing', async (t) => {
  const seen: string[] = []
  let commits = 0
  class Recording extends MemoryVfs {
    override write(...a: Parameters<MemoryVfs['write']>): ReturnType<MemoryVfs['write']> {
      seen.push(a[3])
      return super.write(...a)
    }
    override commit(...a: Parameters<MemoryVfs['commit']>): ReturnType<MemoryVfs['commit']> {
      commits++
      return super.commit(...a)
    }
  }
  const fx = nfs3Fixture(t, { vfs: new Recording() })
  const f = await fx.file('f')
  seen.length = 0
  fx.host.sync = false
  for (const stable of [stable_how.UNSTABLE, stable_how.DATA_SYNC, stable_how.FILE_SYNC]) {
    const w = resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: 3, stable, data: b('abc') }))
    t.equal(w.committed, stable, `asked ${stable}: answered ${stable}`)
  }
  t.strictSame(seen, ['unstable', 'unstable', 'unstable'], 'the backend was never asked to sync')
  const c = resok(await fx.call('NFSPROC3_COMMIT', { file: fx.fh(f), offset: 0n, count: 0 }))
  t.same(c.verf, fx.host.verifier)
  t.equal(commits, 0, 'COMMIT answered without a flush')
  t.same((await fx.vfs.read(f, 0n, 3)).data, b('abc'), 'the data is there')
  fx.host.sync = true
  resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: 3, stable: stable_how.FILE_SYNC, data: b('xyz') }))
  resok(await fx.call('NFSPROC3_COMMIT', { file: fx.fh(f), offset: 0n, count: 0 }))
  t.strictSame([seen.at(-1), commits], ['file_sync', 1], 'sync (the default): asked as asked, COMMIT flushes')
})

t.test('COMMIT: an I/O error bumps the write verifier and carries file_wcc', async (t) => {
  const fx = nfs3Fixture(t, { vfs: new FailingCommitVfs() })
  const f = await fx.file('f', 'x')
  const before = Buffer.from(fx.host.verifier)
  const r = await fx.call('NFSPROC3_COMMIT', { file: fx.fh(f), offset: 0n, count: 0 })
  t.equal(r.status, nfsstat3.NFS3ERR_IO)
  t.match(resfail(r).file_wcc.after, { fileid: f.id })
  t.equal(fx.host.bumps, 1)
  const w = resok(await fx.call('NFSPROC3_WRITE', { file: fx.fh(f), offset: 0n, count: 1, stable: 0, data: b('y') }))
  t.notSame(w.verf, before, 'later WRITEs see the new verifier: clients resend')
  const d = await fx.dir('d')
  t.equal((await fx.call('NFSPROC3_COMMIT', { file: fx.fh(d), offset: 0n, count: 0 })).status, nfsstat3.NFS3ERR_ISDIR)
})
