/*
 * crossmnt end to end: a local export with a tmpfs (and a tmpfs inside it)
 * mounted below the root, through the whole server. LOOKUP crosses into it,
 * everything works inside, fileids never collide with the parent file
 * system's, `..` comes back out, RENAME across the mount point is XDEV,
 * FSSTAT in the tmpfs reports the tmpfs, handles survive a restart, and a
 * tmpfs replaced by another makes the old handles STALE. Without crossmnt
 * the mount point stays ACCES.
 */
import t from 'tap'
import type { Test } from 'tap'
import fs from 'node:fs'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NfsClient } from '../../client/index.ts'
import { fh } from '../helpers/e2e.ts'
import { Nfs3, NFS3, S, UNSTABLE } from '../helpers/local.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { startServer } from '../helpers/server.ts'
import { Mounts, SKIP_MOUNT } from '../vfs/local-mounts.ts'

const BIT63 = 1n << 63n

function tempDir(t: Test, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => {
    rmSync(d, { recursive: true, force: true })
  })
  return d
}

interface Setup { dir: string; mnt: string; stateDir: string; mounts: Mounts }

/** An export directory with a 16 MiB tmpfs at `mnt` (unmounted before the directory is removed). */
function setup(t: Test): Setup | null {
  const dir = tempDir(t, 'tsnfs-crossmnt-')
  const stateDir = tempDir(t, 'tsnfs-state-')
  const mounts = new Mounts(t)
  const mnt = join(dir, 'mnt')
  if (!mounts.tmpfs(mnt)) {
    t.comment(SKIP_MOUNT)
    t.pass('crossmnt not testable on this host')
    return null
  }
  fs.writeFileSync(join(dir, 'on-root'), 'root fs\n')
  fs.writeFileSync(join(mnt, 'on-tmpfs'), 'tmpfs\n')
  return { dir, mnt, stateDir, mounts }
}

async function serve(t: Test, s: Setup, opts = 'rw,insecure,no_root_squash,crossmnt'): Promise<{ nfs: Nfs3; root: Buffer; port: number; reload: (text: string) => Promise<void>; close: () => Promise<void> }> {
  const f = await startServer(t, `${s.dir} *(${opts})\n`, { stateDir: s.stateDir })
  const nfs = await Nfs3.connect(t, f.port)
  const root = await nfs.mount(s.dir)
  let closed: Promise<void> | null = null
  return {
    nfs, root, port: f.port,
    reload: (text) => f.server.reload(parseExports(text, 'exports')),
    close: () => {
      closed ??= (async () => {
        nfs.c.close()
        await f.server.close()
      })()
      return closed
    },
  }
}

async function fsstatBytes(nfs: Nfs3, obj: Buffer): Promise<{ status: number; tbytes?: bigint }> {
  const r = await nfs.call(NFS3.NFSPROC3_FSSTAT, { fsroot: fh(obj) })
  return r.status === S.OK ? { status: S.OK, tbytes: r.resok.tbytes } : { status: r.status }
}

t.test('LOOKUP crosses into the tmpfs; create, write, read, READDIR and READDIRPLUS inside; .. comes back', async (t) => {
  const s = setup(t)
  if (s === null) return
  const { nfs, root } = await serve(t, s)
  const m = await nfs.lookup(root, 'mnt')
  t.equal(m.status, S.OK, 'LOOKUP of the mount point')
  const mfh = m.fh ?? root
  const mst = fs.statSync(s.mnt, { bigint: true })
  t.ok(m.fileid !== undefined && m.fileid >= BIT63 && (m.fileid & ((1n << 47n) - 1n)) === mst.ino, 'a device-qualified fileid')

  const c = await nfs.create(mfh, 'new')
  t.equal(c.status, S.OK, 'CREATE in the tmpfs')
  const nfh = c.fh ?? root
  t.equal((await nfs.write(nfh, 0n, Buffer.from('hello tmpfs'), UNSTABLE)).status, S.OK)
  t.equal((await nfs.commit(nfh)).status, S.OK)
  t.equal((await nfs.read(nfh, 0n, 100)).data?.toString(), 'hello tmpfs')
  t.equal(fs.readFileSync(join(s.mnt, 'new'), 'utf8'), 'hello tmpfs', 'on the tmpfs on the host')
  const d = await nfs.mkdir(mfh, 'sub')
  t.equal(d.status, S.OK, 'MKDIR in the tmpfs')
  t.ok(fs.statSync(join(s.mnt, 'sub')).isDirectory())

  const ls = await nfs.listAll(mfh, 512)
  t.strictSame(ls.names.sort(), ['.', '..', 'new', 'on-tmpfs', 'sub'], 'READDIR of the tmpfs root')
  const plus = await nfs.listAllPlus(mfh)
  t.equal(plus.handles, 5, 'READDIRPLUS gives a handle for every entry')
  const rootPlus = await nfs.call(NFS3.NFSPROC3_READDIRPLUS, { dir: fh(root), cookie: 0n, cookieverf: Buffer.alloc(8), dircount: 8192, maxcount: 32768 })
  const entry = rootPlus.status === S.OK ? rootPlus.resok.reply.entries.find((e) => Buffer.from(e.name).toString() === 'mnt') : undefined
  const handle = entry?.name_handle
  t.ok(handle !== undefined && handle !== null && Buffer.from(handle.data).equals(mfh), 'READDIRPLUS of the root hands out the mount point with the LOOKUP handle')

  // fileids: the tmpfs reuses small inode numbers the root file system may also have.
  const rootIds = (await nfs.readdir(root)).fileids ?? []
  const tmpIds = (await nfs.readdir(mfh)).fileids ?? []
  const all = [...rootIds.slice(2), ...tmpIds.slice(2)]
  t.equal(new Set(all).size, all.length, 'no fileid repeats across the two file systems')
  t.ok(tmpIds.slice(2).every((id) => id >= BIT63), 'every tmpfs fileid is qualified')

  const up = await nfs.lookup(mfh, '..')
  t.ok(up.fh?.equals(root), 'mnt/.. is the export root')
  const sub = d.fh ?? root
  t.ok((await nfs.lookup(sub, '..')).fh?.equals(mfh), 'sub/.. is the tmpfs root')
  t.ok((await nfs.lookup(root, '..')).fh?.equals(root), '.. of the export root stays the root')
  s.mounts.unmountAll()
})

t.test('RENAME and LINK across the mount point: XDEV; FSSTAT in the tmpfs reports the tmpfs', async (t) => {
  const s = setup(t)
  if (s === null) return
  const { nfs, root } = await serve(t, s)
  const mfh = await nfs.walk(root, 'mnt')
  t.equal(await nfs.rename(root, 'on-root', mfh, 'moved'), S.XDEV, 'RENAME into the tmpfs: NFS3ERR_XDEV')
  t.equal(await nfs.rename(mfh, 'on-tmpfs', root, 'moved'), S.XDEV, 'RENAME out of the tmpfs: NFS3ERR_XDEV')
  const f = await nfs.walk(root, 'on-root')
  const l = await nfs.call(NFS3.NFSPROC3_LINK, { file: fh(f), link: { dir: fh(mfh), name: Buffer.from('hard') } })
  t.equal(l.status, S.XDEV, 'LINK into the tmpfs: NFS3ERR_XDEV')
  t.ok(fs.existsSync(join(s.dir, 'on-root')) && fs.existsSync(join(s.mnt, 'on-tmpfs')), 'nothing moved')

  const inTmp = await fsstatBytes(nfs, await nfs.walk(mfh, 'on-tmpfs'))
  t.equal(inTmp.tbytes, 16n * 1024n * 1024n, 'FSSTAT of a tmpfs file: 16 MiB')
  t.equal((await fsstatBytes(nfs, mfh)).tbytes, 16n * 1024n * 1024n, 'FSSTAT of the tmpfs root: 16 MiB')
  const atRoot = await fsstatBytes(nfs, root)
  t.equal(atRoot.status, S.OK)
  t.not(atRoot.tbytes, inTmp.tbytes, 'FSSTAT of the export root: its own file system')
  s.mounts.unmountAll()
})

t.test('nested mounts: a tmpfs inside the tmpfs', async (t) => {
  const s = setup(t)
  if (s === null) return
  const inner = join(s.mnt, 'inner')
  t.ok(s.mounts.tmpfs(inner, '4m'), 'inner tmpfs mounted')
  fs.writeFileSync(join(inner, 'on-tmpfs'), 'inner\n')
  const { nfs, root } = await serve(t, s)
  const mfh = await nfs.walk(root, 'mnt')
  const ifh = await nfs.walk(mfh, 'inner')
  const outer = await nfs.lookup(mfh, 'on-tmpfs')
  const innerF = await nfs.lookup(ifh, 'on-tmpfs')
  t.equal((await nfs.read(innerF.fh ?? root, 0n, 100)).data?.toString(), 'inner\n')
  t.not(innerF.fileid, outer.fileid, 'the same name on both tmpfs: two fileids')
  t.equal((await fsstatBytes(nfs, ifh)).tbytes, 4n * 1024n * 1024n, 'FSSTAT of the inner tmpfs')
  t.ok((await nfs.lookup(ifh, '..')).fh?.equals(mfh), 'inner/.. is the outer tmpfs root')
  t.equal((await nfs.create(ifh, 'made')).status, S.OK)
  t.ok(fs.existsSync(join(inner, 'made')))
  t.equal(await nfs.rename(ifh, 'made', mfh, 'made'), S.XDEV, 'RENAME between the two tmpfs: XDEV')
  s.mounts.unmountAll()
})

t.test('handles of tmpfs files survive a restart (same state dir)', async (t) => {
  const s = setup(t)
  if (s === null) return
  const one = await serve(t, s)
  const mfh = await one.nfs.walk(one.root, 'mnt')
  const d = await one.nfs.mkdir(mfh, 'sub')
  const c = await one.nfs.create(d.fh ?? one.root, 'file')
  const ffh = c.fh ?? one.root
  t.equal((await one.nfs.write(ffh, 0n, Buffer.from('persisted'))).status, S.OK)
  const before = await one.nfs.getattr(ffh)
  await one.close()

  const two = await serve(t, s)
  t.ok(two.root.equals(one.root), 'the same root handle')
  const g = await two.nfs.getattr(ffh)
  t.equal(g.status, S.OK, 'GETATTR with the old handle after the restart')
  t.equal(g.fileid, before.fileid, 'same fileid')
  t.equal((await two.nfs.read(ffh, 0n, 100)).data?.toString(), 'persisted', 'READ with the old handle')
  t.equal((await two.nfs.readdir(mfh)).status, S.OK, 'READDIR with the old tmpfs root handle')
  t.equal((await two.nfs.create(d.fh ?? two.root, 'after')).status, S.OK, 'CREATE in the old directory handle')
  s.mounts.unmountAll()
})

t.test('a tmpfs replaced by another while the server is down: old handles STALE', async (t) => {
  const s = setup(t)
  if (s === null) return
  const one = await serve(t, s)
  const mfh = await one.nfs.walk(one.root, 'mnt')
  const ffh = await one.nfs.walk(mfh, 'on-tmpfs')
  await one.close()
  s.mounts.unmount(s.mnt)
  t.ok(s.mounts.tmpfs(s.mnt), 'a new tmpfs in its place')
  fs.writeFileSync(join(s.mnt, 'on-tmpfs'), 'new tmpfs\n')

  const two = await serve(t, s)
  t.equal((await two.nfs.getattr(ffh)).status, S.STALE, 'a file of the old tmpfs: NFS3ERR_STALE')
  t.equal((await two.nfs.read(ffh, 0n, 100)).status, S.STALE, 'READ: NFS3ERR_STALE, never the new file')
  t.equal((await two.nfs.readdir(mfh)).status, S.STALE, 'the old tmpfs root: NFS3ERR_STALE')
  const m2 = await two.nfs.walk(two.root, 'mnt')
  t.notOk(m2.equals(mfh), 'the new tmpfs root has a new handle')
  t.equal((await two.nfs.read(await two.nfs.walk(m2, 'on-tmpfs'), 0n, 100)).data?.toString(), 'new tmpfs\n', 'and is served')
  s.mounts.unmountAll()
})

t.test('our client library through the tmpfs: paths, data, stat, df', async (t) => {
  const s = setup(t)
  if (s === null) return
  const { port } = await serve(t, s)
  const c = await NfsClient.mount({ host: '127.0.0.1', exportPath: s.dir }, { nfsport: port, mountport: port, uid: 0, gid: 0 })
  t.teardown(() => c.umount().catch(() => undefined))
  await c.mkdir('/mnt/a/b', { recursive: true })
  await c.writeFile('/mnt/a/b/data.bin', Buffer.alloc(300_000, 7))
  t.equal((await c.readFile('/mnt/a/b/data.bin')).length, 300_000, 'a file written and read back in the tmpfs')
  t.equal(fs.statSync(join(s.mnt, 'a', 'b', 'data.bin')).size, 300_000)
  t.strictSame((await c.readdir('/mnt')).sort(), ['a', 'on-tmpfs'])
  t.strictSame((await c.readdirPlus('/mnt/a')).map((e) => e.name).filter((n) => n !== '.' && n !== '..'), ['b'])
  const a = await c.stat('/mnt/on-tmpfs')
  const r = await c.stat('/on-root')
  t.not(a.fileid, r.fileid)
  t.ok(a.fileid >= BIT63 && r.fileid < BIT63, 'tmpfs fileids are qualified, root ones are not')
  t.equal((await c.readFile('/mnt/../on-root')).toString(), 'root fs\n', '.. out of the tmpfs by path')
  await t.rejects(c.rename('/mnt/on-tmpfs', '/moved'), { code: 'NFS3ERR_XDEV' }, 'rename across the mount point')
  await c.umount()
  s.mounts.unmountAll()
})

t.test('without crossmnt the mount point stays ACCES', async (t) => {
  const s = setup(t)
  if (s === null) return
  const { nfs, root } = await serve(t, s, 'rw,insecure,no_root_squash')
  t.equal((await nfs.lookup(root, 'mnt')).status, S.ACCES, 'LOOKUP of the mount point: ACCES')
  const ls = await nfs.readdir(root)
  const i = ls.names?.indexOf('mnt') ?? -1
  t.ok(i >= 0 && (ls.fileids?.[i] ?? 0n) >= BIT63, 'listed with a foreign-marked fileid')
  t.equal(fs.existsSync(join(s.stateDir, 'local')) && fs.readdirSync(join(s.stateDir, 'local')).some((id) => fs.existsSync(join(s.stateDir, 'local', id, 'devices'))), false, 'no device table')
  s.mounts.unmountAll()
})

t.test('a reload that turns crossmnt on or off takes effect on the export', async (t) => {
  const s = setup(t)
  if (s === null) return
  const { nfs, root, reload } = await serve(t, s, 'rw,insecure,no_root_squash')
  t.equal((await nfs.lookup(root, 'mnt')).status, S.ACCES, 'without crossmnt: ACCES')
  await reload(`${s.dir} *(rw,insecure,no_root_squash,crossmnt)\n`)
  const m = await nfs.lookup(root, 'mnt')
  t.equal(m.status, S.OK, 'after a reload with crossmnt: crossed')
  t.equal((await nfs.getattr(root)).status, S.OK, 'the root handle still works')
  await reload(`${s.dir} *(rw,insecure,no_root_squash)\n`)
  t.equal((await nfs.lookup(root, 'mnt')).status, S.ACCES, 'reloaded without it: ACCES again')
  t.equal((await nfs.getattr(m.fh ?? root)).status, S.STALE, 'and the tmpfs handle is STALE')
  await t.rejects(reload(`${s.dir} 127.0.0.1(rw,crossmnt) *(ro)\n`), { message: /crossmnt must be set for every client/ }, 'a list with clients disagreeing is refused')
  t.equal((await nfs.lookup(root, 'mnt')).status, S.ACCES, 'and the running list stays')
  s.mounts.unmountAll()
})
