/*
 * A failed commit of a namespace change (server/nfs3/durable.ts) answers
 * NFS3ERR_IO on a sync export (the change was made, its durability is not
 * known: the client must not take it as done), and an async export never asks
 * for one. A local backend wrapped by FaultyVfs, commitMetadata failing.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { LocalVfs } from '../../vfs/local/local-vfs.ts'
import { NFS_PROG, NO_ATTRS, Nfs, fh } from '../helpers/e2e.ts'
import { FaultyVfs } from '../helpers/faulty-vfs.ts'
import { NFS3, connect, mountRoot, startServer } from '../helpers/server.ts'


for (const option of ['sync', 'async'] as const) {
  t.test(`${option} export: a commit that fails`, async (t) => {
    const base = mkdtempSync(join(tmpdir(), 'tsnfs-durable-err-'))
    t.teardown(() => {
      rmSync(base, { recursive: true, force: true })
    })
    mkdirSync(join(base, 'root'))
    const backend = new FaultyVfs(new LocalVfs({ root: join(base, 'root'), stateDir: join(base, 'state') }))
    const s = await startServer(t, `/export *(rw,insecure,no_root_squash,${option},backend=memory)\n`, { backends: new Map([['memory', () => backend.vfs]]) })
    const c = await connect(t, s.port)
    const raw = new Nfs(c)
    const root = await mountRoot(c, '/export')
    await raw.create(root, 'f')
    t.equal(backend.count('commitMetadata'), option === 'sync' ? 1 : 0, 'CREATE asks for a commit only on a sync export')

    backend.fail('commitMetadata', 'EIO')
    const created = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_CREATE, { where: { dir: fh(root), name: Buffer.from('g') }, how: { mode: 0, obj_attributes: NO_ATTRS } })
    const removed = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_REMOVE, { object: { dir: fh(root), name: Buffer.from('f') } })
    const mkdir = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_MKDIR, { where: { dir: fh(root), name: Buffer.from('d') }, attributes: NO_ATTRS })
    const renamed = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_RENAME, { from: { dir: fh(root), name: Buffer.from('d') }, to: { dir: fh(root), name: Buffer.from('e') } })
    const g = await raw.lookup(root, 'g')
    const setattr = await c.call(NFS_PROG, 3, NFS3.NFSPROC3_SETATTR, { object: fh(g.fh!), new_attributes: { ...NO_ATTRS, mode: 0o600 }, guard: null })
    const want = option === 'sync' ? nfsstat3.NFS3ERR_IO : nfsstat3.NFS3_OK
    t.strictSame([created.status, removed.status, mkdir.status, renamed.status, setattr.status], [want, want, want, want, want], 'CREATE, REMOVE, MKDIR, RENAME, SETATTR')
    t.equal(backend.injected.get('commitMetadata') ?? 0, option === 'sync' ? 5 : 0)
    // The changes themselves were made: only their durability failed.
    t.equal((await raw.lookup(root, 'e')).status, nfsstat3.NFS3_OK, 'the rename was made')
    t.equal((await raw.lookup(root, 'f')).status, nfsstat3.NFS3ERR_NOENT, 'the remove was made')
  })
}
