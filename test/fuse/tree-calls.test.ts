/*
 * Trees through the mount: rsync -a and mkdir -p (issue 11 point 3), NFS calls counted on the
 * server. rsync's generator fchmods each directory it makes, and the kernel
 * then drops its entry for that directory (fuse_setattr: a directory's mode
 * changed) and looks it up again: a plain LOOKUP, not a forced revalidation,
 * which must be answered from the name cache and leave the parent's names
 * known complete; else every temporary name rsync then creates in the parent
 * costs a LOOKUP (session 35: 0.53 LOOKUPs per entry instead of 0.11). And
 * rsync's generator looks each name up (absent) before the receiver renames
 * its temporary file onto it: the kernel no longer holds that name as absent,
 * so rm -rf's opendirs need no GETATTR (kernel-entries.ts). The fchmod
 * itself (0700 to the source's mode) leaves the maker's search permission
 * on the directory known (attr-cache.ts): no LOOKUP at all (session 40; one
 * per directory before).
 *
 * mkdir -p of directories that exist: each mkdir(2) makes the kernel ask
 * LOOKUP again for a name it holds (LOOKUP_EXCL), which goes to the server;
 * when the server's answer is the one the name cache had, the parent's other
 * names stay known complete, and a missing name in it costs no LOOKUP.
 */
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, manifest, mountFuse, mountpointDir, sh } from '../helpers/fuse.ts'
import { calls, diff } from './server-calls.ts'

const hasRsync = (await sh('command -v rsync')).code === 0
const skip = !canFuse ? 'needs root and FUSE' : !hasRsync ? 'needs rsync' : false

// The server runs in this process: calls through the mount must not block its event loop (no *Sync after the mount).

/** Attribute timeouts long enough that nothing expires during the test. */
const LONG = 'acregmin=60,acregmax=60,acdirmin=60,acdirmax=60'
const DIRS = 4
const FILES = 8

t.test('rsync -a of a tree: one LOOKUP (its destination), none per directory or file, and rm -rf of it sends no GETATTR', { skip }, async t => {
  // mkdtemp, not t.testdir: tap removes a testdir before the teardowns that unmount.
  const base = await mkdtemp(join(tmpdir(), 'tsnfs-rsync-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const src = join(base, 'src')
  for (let d = 0; d < DIRS; d++) {
    mkdirSync(join(src, `d${String(d)}`, 'sub'), { recursive: true })
    for (let f = 0; f < FILES; f++) {
      writeFileSync(join(src, `d${String(d)}`, `f${String(f)}.txt`), `file ${String(d)}/${String(f)}\n`)
      writeFileSync(join(src, `d${String(d)}`, 'sub', `g${String(f)}.txt`), `sub ${String(d)}/${String(f)}\n`)
    }
  }
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},${LONG}`)
  const made = 1 + DIRS * 2

  let before = calls(ex)
  const r = await sh(`rsync -a ${src}/ ${mnt}/copy/`)
  t.equal(r.code, 0, 'rsync -a', { stderr: r.stderr })
  const copy = diff(before, calls(ex))
  t.equal(copy.MKDIR, made, 'one MKDIR per directory')
  t.equal(copy.CREATE, DIRS * FILES * 2, 'one CREATE per file')
  // rsync makes each directory 0700 and fchmods it to 0755: the maker's search permission outlives that (attr-cache.ts).
  t.equal(copy.LOOKUP, 1, 'one LOOKUP, of copy in the export root (the first name asked there): every other is answered by the name cache')
  t.same(await manifest(join(ex.dir, 'copy')), await manifest(src), 'the server has the tree')

  before = calls(ex)
  const gone = await sh(`rm -rf ${mnt}/copy`)
  t.equal(gone.code, 0, 'rm -rf', { stderr: gone.stderr })
  const removal = diff(before, calls(ex))
  t.equal(removal.RMDIR, made, 'one RMDIR per directory')
  t.equal(removal.GETATTR, undefined, 'no GETATTR: no directory holds names the kernel keeps as absent')
  t.equal((await sh(`ls -A ${ex.dir}`)).stdout, '', 'the export is empty')
})

t.test("a directory made here and chmodded by its maker: searched from the name cache while its owner may execute it, else by the server", { skip }, async t => {
  const base = await mkdtemp(join(tmpdir(), 'tsnfs-chmod-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},${LONG}`)
  const made = await sh(`mkdir -m 700 ${mnt}/d`)
  t.equal(made.code, 0, 'mkdir -m 700 d', { stderr: made.stderr })
  let before = calls(ex)
  const open = await sh(`chmod 755 ${mnt}/d && ! stat ${mnt}/d/n1 2>/dev/null`)
  t.equal(open.code, 0, 'chmod 755 d; d/n1 is absent')
  t.strictSame(diff(before, calls(ex)), { SETATTR: 1 }, 'the chmod only: its maker still searches d (owner execute kept)')
  before = calls(ex)
  const shut = await sh(`chmod 600 ${mnt}/d && ! stat ${mnt}/d/n2 2>/dev/null`)
  t.equal(shut.code, 0, 'chmod 600 d; d/n2 is absent (the server lets root search it)')
  t.strictSame(diff(before, calls(ex)), { SETATTR: 1, LOOKUP: 1 }, 'the owner may not execute d: the server is asked')
  before = calls(ex)
  const again = await sh(`chmod 700 ${mnt}/d && ! stat ${mnt}/d/n3 2>/dev/null`)
  t.equal(again.code, 0, 'chmod 700 d; d/n3 is absent')
  t.strictSame(diff(before, calls(ex)), { SETATTR: 1 }, 'owner execute again: the name cache answers')
})

t.test('mkdir -p of directories that exist: one LOOKUP each, and missing names in them still cost none', { skip }, async t => {
  const base = await mkdtemp(join(tmpdir(), 'tsnfs-mkdirp-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS},${LONG}`)
  const made = await sh(`mkdir -p ${mnt}/x/y`)
  t.equal(made.code, 0, 'mkdir -p x/y', { stderr: made.stderr })
  let before = calls(ex)
  const again = await sh(`mkdir -p ${mnt}/x/y`)
  t.equal(again.code, 0, 'mkdir -p x/y again', { stderr: again.stderr })
  t.strictSame(diff(before, calls(ex)), { LOOKUP: 2 }, 'x and y asked of the server once each (LOOKUP_EXCL)')
  before = calls(ex)
  const missing = await sh(`for i in 1 2 3 4 5; do ! stat ${mnt}/x/n$i ${mnt}/x/y/n$i 2>/dev/null || exit 1; done`)
  t.equal(missing.code, 0, 'the names are absent')
  t.strictSame(diff(before, calls(ex)), {}, 'x and y still known complete: no LOOKUP')
})
