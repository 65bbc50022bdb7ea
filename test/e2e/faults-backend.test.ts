/*
 * Backend failures reach the client as a status, never as a hang or a crash
 * (issue 7 §4): a full file system (a 2 MiB tmpfs with few inodes, exported
 * as a local export) answers WRITE and CREATE with NFS3ERR_NOSPC, and the
 * client library reports ENOSPC at close; injected I/O errors (a memory
 * backend wrapped by FaultyVfs) answer NFS3ERR_IO, and a failed COMMIT also
 * changes the write verifier (RFC 1813 §3.3.21: the client must resend its
 * unstable writes). The server keeps serving after each.
 */
import t from 'tap'
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NfsClient, NfsError } from '../../client/index.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { NFS_PROG, NO_ATTRS, Nfs, b, fh } from '../helpers/e2e.ts'
import { FaultyVfs } from '../helpers/faulty-vfs.ts'
import { NFS3, connect, mountRoot, startServer } from '../helpers/server.ts'
import type { ServerFixture } from '../helpers/server.ts'

const isRoot = process.getuid?.() === 0

/** A 2 MiB tmpfs with 24 inodes, unmounted at teardown. */
function smallTmpfs(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-full-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,nr_inodes=24,mode=0777', 'tmpfs', dir])
  t.teardown(() => {
    execFileSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

async function mountClient(t: Test, s: ServerFixture, exportPath: string): Promise<NfsClient> {
  const nfs = await NfsClient.mount({ host: '127.0.0.1', exportPath }, { nfsport: s.port, mountport: s.port, uid: 0, gid: 0 })
  t.teardown(() => nfs.umount().catch(() => undefined))
  return nfs
}

async function rejectsWith(t: Test, p: Promise<unknown>, errno: string, what: string): Promise<void> {
  try {
    await p
    t.fail(`${what}: no error`)
  } catch (err) {
    t.equal(err instanceof NfsError ? err.errno : String(err), errno, what)
  }
}

t.test('disk full: WRITE and CREATE answer NOSPC, close reports ENOSPC, the server keeps serving', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async t => {
  const dir = smallTmpfs(t)
  const s = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`)
  const c = await connect(t, s.port)
  const raw = new Nfs(c)
  const root = await mountRoot(c, dir)

  const filler = await raw.create(root, 'filler')
  const chunk = Buffer.alloc(256 * 1024, 0x5a)
  let status: number = nfsstat3.NFS3_OK
  let written = 0
  for (let i = 0; i < 40 && status === nfsstat3.NFS3_OK; i++) {
    status = await raw.write(filler, BigInt(written), chunk)
    if (status === nfsstat3.NFS3_OK) written += chunk.length
  }
  t.equal(status, nfsstat3.NFS3ERR_NOSPC, `FILE_SYNC WRITE answers NOSPC once the 2 MiB are used (${String(written)} bytes written)`)

  let created = 0
  let createStatus: number = nfsstat3.NFS3_OK
  for (let i = 0; i < 40 && createStatus === nfsstat3.NFS3_OK; i++) {
    const r = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_CREATE, { where: { dir: fh(root), name: b(`e${String(i)}`) }, how: { mode: 1, obj_attributes: NO_ATTRS } })
    createStatus = r.status
    if (r.status === nfsstat3.NFS3_OK) created++
  }
  t.equal(createStatus, nfsstat3.NFS3ERR_NOSPC, `CREATE answers NOSPC once the inodes are used (${String(created)} created)`)

  const nfs = await mountClient(t, s, dir)
  const f = await nfs.open('/big', 'w').catch((err: unknown) => err)
  if (f instanceof Error) {
    t.equal(f instanceof NfsError ? f.errno : String(f), 'ENOSPC', 'open for writing fails with ENOSPC (no inode left)')
  }
  // Free one inode and write through the library's write-back path: the error comes at close.
  await nfs.unlink('/e0')
  const file = await nfs.open('/big', 'w')
  await file.write(Buffer.alloc(1024 * 1024, 1)).catch(() => undefined)
  await rejectsWith(t, file.close(), 'ENOSPC', 'close reports the deferred ENOSPC')

  await nfs.unlink('/filler')
  await nfs.writeFile('/after', Buffer.from('room again'))
  t.strictSame(await nfs.readFile('/after'), Buffer.from('room again'), 'with space freed, the same server writes again')
})

t.test('I/O errors: NFS3ERR_IO for each failing operation; a failed COMMIT changes the write verifier', async t => {
  const backend = new FaultyVfs(new MemoryVfs())
  const s = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n', { backends: new Map([['memory', () => backend.vfs]]) })
  const c = await connect(t, s.port)
  const raw = new Nfs(c)
  const root = await mountRoot(c, '/export')
  const file = await raw.create(root, 'f')
  t.equal(await raw.write(file, 0n, Buffer.from('hello')), nfsstat3.NFS3_OK)

  backend.fail('read', 'EIO', 1)
  t.equal((await raw.read(file, 0n, 100)).status, nfsstat3.NFS3ERR_IO, 'READ: IO')
  backend.fail('write', 'EIO', 1)
  t.equal(await raw.write(file, 0n, Buffer.from('x')), nfsstat3.NFS3ERR_IO, 'WRITE: IO')
  backend.fail('lookup', 'EIO', 1)
  t.equal((await raw.lookup(root, 'f')).status, nfsstat3.NFS3ERR_IO, 'LOOKUP: IO')
  backend.fail('create', 'EIO', 1)
  await t.rejects(raw.create(root, 'g'), /status 5\b/, 'CREATE: IO')
  backend.fail('readdir', 'EIO', 1)
  const rd = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_READDIR, { dir: fh(root), cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 })
  t.equal(rd.status, nfsstat3.NFS3ERR_IO, 'READDIR: IO')

  const unstable = async (): Promise<Buffer> => {
    const r = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_WRITE, { file: fh(file), offset: 0n, count: 5, stable: 0, data: Buffer.from('world') })
    if (r.status !== nfsstat3.NFS3_OK) throw new Error(`WRITE: ${String(r.status)}`)
    return Buffer.from(r.resok.verf)
  }
  const before = await unstable()
  backend.fail('commit', 'EIO', 1)
  const commit = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_COMMIT, { file: fh(file), offset: 0n, count: 0 })
  t.equal(commit.status, nfsstat3.NFS3ERR_IO, 'COMMIT: IO')
  const after = await unstable()
  t.not(after.toString('hex'), before.toString('hex'), 'the write verifier changed: unstable data must be sent again')
  const ok = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_COMMIT, { file: fh(file), offset: 0n, count: 0 })
  t.equal(ok.status, nfsstat3.NFS3_OK, 'a later COMMIT succeeds')
  if (ok.status === nfsstat3.NFS3_OK) t.equal(Buffer.from(ok.resok.verf).toString('hex'), after.toString('hex'), 'with the new verifier')

  // The client library maps IO to EIO.
  const nfs = await mountClient(t, s, '/export')
  backend.fail('read', 'EIO', 1)
  await rejectsWith(t, nfs.readFile('/f'), 'EIO', 'readFile rejects with EIO')
  t.strictSame(await nfs.readFile('/f'), Buffer.from('world'), 'and the next read works')
  t.equal(backend.injected.get('read'), 2, 'every injected fault was hit')
})
