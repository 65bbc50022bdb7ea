/*
 * A mount only root may enter (no allow_other): no default_permissions
 * (client/fuse/mount.ts), so the server, not the kernel's cached mode,
 * judges root's calls, as the Linux NFS client leaves them to the server's
 * ACCESS. On a root_squash export root acts as nobody there: access(2)
 * says what the server would allow nobody (with default_permissions the
 * kernel granted root everything and access(2) said yes to reads that then
 * failed). The kernel's own check of execute bits stays.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { chmodSync, chownSync, constants, statSync, writeFileSync } from 'node:fs'
import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, mountFlags, mountFuse, mountpointDir } from '../helpers/fuse.ts'

const skip = canFuse ? false : 'needs root and FUSE'

/**
 * The errno code a call fails with, or 'OK'. Calls on the mount are asynchronous: the server runs in
 * this process, and a synchronous call would stop it from answering.
 */
async function outcome(f: () => Promise<unknown>): Promise<string> {
  try {
    await f()
    return 'OK'
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err)
  }
}

/**
 * Runs file through sh (exec(2) of a file on the mount must not happen in this process's own spawn, which
 * waits for the exec while the server it needs is this process): its stdout, or sh's exit status (126: the
 * kernel refused the exec).
 */
function run(file: string): Promise<string> {
  return new Promise(resolve => {
    execFile('/bin/sh', ['-c', 'exec "$0"', file], { encoding: 'utf8' }, (err, stdout) => {
      resolve(err === null ? stdout : `exit ${String(err.code)}`)
    })
  })
}

t.test('root-only mount of a root_squash export: the server judges root as nobody', { skip }, async t => {
  const base = t.testdir({})
  const ex = await exportDir(t, base, 'export', 'rw,insecure,root_squash')
  chmodSync(ex.dir, 0o777)
  const secret = join(ex.dir, 'secret')
  writeFileSync(secret, 'only 2001 reads this\n')
  chownSync(secret, 2001, 2001)
  chmodSync(secret, 0o600)
  const open = join(ex.dir, 'open')
  writeFileSync(open, '#!/bin/sh\necho ran\n')
  chmodSync(open, 0o644)
  writeFileSync(join(ex.dir, 'tool'), '#!/bin/sh\necho ran\n')
  chmodSync(join(ex.dir, 'tool'), 0o755)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)

  const flags = mountFlags(mnt)
  t.notOk(flags.includes('allow_other'), `/proc/mounts: ${flags.join(',')}`)
  t.notOk(flags.includes('default_permissions'), 'no default_permissions on a mount only root enters')
  t.ok(flags.includes('nosuid') && flags.includes('nodev'), 'still nosuid,nodev')

  t.equal(await outcome(() => access(join(mnt, 'secret'), constants.R_OK)), 'EACCES', 'access(2): the server does not let nobody read it')
  t.equal(await outcome(() => readFile(join(mnt, 'secret'))), 'EACCES', 'and the open agrees')
  t.equal(await outcome(() => access(join(mnt, 'open'), constants.R_OK)), 'OK', 'a file nobody may read: access(2) says so')
  t.equal(await readFile(join(mnt, 'open'), 'utf8'), '#!/bin/sh\necho ran\n')

  t.equal(await run(join(mnt, 'open')), 'exit 126', 'no execute bit: the kernel refuses the exec itself')
  t.equal(await run(join(mnt, 'tool')), 'ran\n', 'with one, nobody may run it')

  await writeFile(join(mnt, 'made'), 'x')
  t.equal(statSync(join(ex.dir, 'made')).uid, 65534, "root's new file belongs to nobody on the server")
})
