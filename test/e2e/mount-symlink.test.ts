/*
 * MNT through symlinks inside the export (issue 11 point 4), as rpc.mountd
 * resolves them: relative and absolute targets inside the export mount the
 * directory they name; a target that leaves the export (`..` above its
 * root, an absolute path outside it), a loop, a missing target and a
 * non-directory are refused with the status mountd gives. Both backends,
 * judged by raw MNT, by our client and by libnfs's nfs-ls.
 */
import t from 'tap'
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { MountError, NfsClient } from '../../client/index.ts'
import { mountstat3 } from '../../xdr/generated/mount.ts'
import { MOUNT3, connect, startServer } from '../helpers/server.ts'
import type { ServerFixture } from '../helpers/server.ts'
import { MOUNT_PROG, b } from '../helpers/e2e.ts'

const run = promisify(execFile)

/**
 * The tree every case uses, below the export root E:
 *   real/sub/marker        a directory with a file to recognise it by
 *   file                   a regular file
 *   rel -> real            relative link          chain -> rel
 *   abs -> E/real          absolute link inside   dots -> real/../real
 *   up -> ..               leaves the export      out -> /etc (absolute, outside)
 *   deep -> real/sub/../../..  leaves through a longer path
 *   missing -> nowhere     dangling               tofile -> file
 *   loopa -> loopb, loopb -> loopa                self -> self
 */
interface Tree {
  fixture: ServerFixture
  exportPath: string
}

const LINKS: [string, (e: string) => string][] = [
  ['rel', () => 'real'],
  ['chain', () => 'rel'],
  ['abs', (e) => `${e}/real`],
  ['dots', () => 'real/../real'],
  ['up', () => '..'],
  ['out', () => '/etc'],
  ['deep', () => 'real/sub/../../..'],
  ['missing', () => 'nowhere'],
  ['tofile', () => 'file'],
  ['loopa', () => 'loopb'],
  ['loopb', () => 'loopa'],
  ['self', () => 'self'],
]

async function memoryTree(t: Test): Promise<Tree> {
  const fixture = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const c = await NfsClient.mount(fixture.url('/export'))
  try {
    await c.mkdir('/real/sub', { recursive: true })
    await c.writeFile('/real/sub/marker', b('here'))
    await c.writeFile('/file', b('f'))
    for (const [name, target] of LINKS) await c.symlink(target('/export'), `/${name}`)
  } finally {
    await c.umount()
  }
  return { fixture, exportPath: '/export' }
}

async function localTree(t: Test): Promise<Tree> {
  const base = mkdtempSync(join(tmpdir(), 'tsnfs-mntlink-'))
  t.teardown(() => {
    rmSync(base, { recursive: true, force: true })
  })
  const dir = join(base, 'export')
  mkdirSync(join(dir, 'real', 'sub'), { recursive: true })
  writeFileSync(join(dir, 'real', 'sub', 'marker'), 'here')
  writeFileSync(join(dir, 'file'), 'f')
  for (const [name, target] of LINKS) symlinkSync(target(dir), join(dir, name))
  const fixture = await startServer(t, `${dir} *(rw,insecure,no_root_squash)\n`)
  return { fixture, exportPath: dir }
}

/** path below the export → expected MNT status. */
const CASES: [string, number, string][] = [
  ['real/sub', mountstat3.MNT3_OK, 'no link at all'],
  ['rel/sub', mountstat3.MNT3_OK, 'a relative link in the middle'],
  ['rel', mountstat3.MNT3_OK, 'a link as the last component'],
  ['chain/sub', mountstat3.MNT3_OK, 'a link to a link'],
  ['abs/sub', mountstat3.MNT3_OK, 'an absolute link inside the export'],
  ['dots/sub', mountstat3.MNT3_OK, '.. inside the export in a target'],
  ['up', mountstat3.MNT3ERR_ACCES, 'a link to .. of the export root'],
  ['up/export', mountstat3.MNT3ERR_ACCES, 'back in through the parent is still out'],
  ['deep', mountstat3.MNT3ERR_ACCES, 'out through a longer relative path'],
  ['out', mountstat3.MNT3ERR_ACCES, 'an absolute link outside the export'],
  ['missing', mountstat3.MNT3ERR_NOENT, 'a dangling link'],
  ['real/nothing', mountstat3.MNT3ERR_NOENT, 'a missing directory'],
  ['tofile', mountstat3.MNT3ERR_NOTDIR, 'a link to a regular file'],
  ['file', mountstat3.MNT3ERR_NOTDIR, 'a regular file'],
  ['file/x', mountstat3.MNT3ERR_NOTDIR, 'a path through a regular file'],
  ['loopa/x', mountstat3.MNT3ERR_ACCES, 'a two-link loop'],
  ['self', mountstat3.MNT3ERR_ACCES, 'a link to itself'],
]

for (const [backend, make] of [['memory', memoryTree], ['local', localTree]] as const) {
  t.test(`${backend} backend: MNT statuses`, async (t) => {
    const { fixture, exportPath } = await make(t)
    const cl = await connect(t, fixture.port)
    const mnt = async (p: string): Promise<{ status: number; fh: string | null }> => {
      const r = await cl.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b(`${exportPath}/${p}`))
      return { status: r.fhs_status, fh: r.fhs_status === mountstat3.MNT3_OK ? Buffer.from(r.mountinfo.fhandle).toString('hex') : null }
    }
    const sub = await mnt('real/sub')
    for (const [p, status, what] of CASES) {
      const r = await mnt(p)
      t.equal(r.status, status, `${p}: ${what}`)
      if (status === mountstat3.MNT3_OK && p.endsWith('sub')) t.equal(r.fh, sub.fh, `${p}: the handle of real/sub`)
    }
    t.equal((await mnt('rel')).fh, (await mnt('real')).fh, 'rel: the handle of real')
  })

  t.test(`${backend} backend: our client mounts through the link`, async (t) => {
    const { fixture, exportPath } = await make(t)
    const c = await NfsClient.mount({ host: '127.0.0.1', exportPath: `${exportPath}/rel/sub` }, { nfsport: fixture.port, mountport: fixture.port })
    t.teardown(() => c.umount())
    t.strictSame(await c.readdir('/'), ['marker'], 'the directory the link leads to')
    t.equal((await c.readFile('/marker')).toString(), 'here')
    const refused = await NfsClient.mount({ host: '127.0.0.1', exportPath: `${exportPath}/up` }, { nfsport: fixture.port, mountport: fixture.port }).then(
      () => null,
      (err: unknown) => err,
    )
    t.ok(refused instanceof MountError, 'a link out of the export fails to mount')
    t.equal((refused as MountError).code, 'MNT3ERR_ACCES')
  })

  t.test(`${backend} backend: nfs-ls mounts through the link`, async (t) => {
    const { fixture, exportPath } = await make(t)
    const q = `?nfsport=${String(fixture.port)}&mountport=${String(fixture.port)}`
    const ls = await run('nfs-ls', [`nfs://127.0.0.1${exportPath}/chain/sub${q}`])
    t.match(ls.stdout, /marker/, 'nfs-ls lists the directory behind the links')
    await t.rejects(run('nfs-ls', [`nfs://127.0.0.1${exportPath}/out${q}`]), 'and fails to mount a link out of the export')
  })
}
