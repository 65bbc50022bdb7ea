/*
 * Two mounts of one export (issue 11): what one mount removes, the other
 * makes again under the same names, within the attribute timeouts (60 s
 * here), as with two Linux NFS clients. The other mount's kernel still
 * holds entries for the removed names: a file's open reaches the server
 * with the old handle (STALE, RFC 1813 §2.6), and the kernel's retry
 * (LOOKUP_REVAL) must then get the server's answer for the name, not the
 * name cache's old handle; mkdir asks LOOKUP again for a name it holds
 * (LOOKUP_EXCL), which must also go to the server (Linux's
 * nfs_lookup_revalidate does). And a tree the other mount added files to is
 * removed whole by rm -rf, also where the remover's kernel held the new
 * names as absent (negative entries, which plain READDIR leaves in place):
 * the directory's open revalidates it and drops them, as Linux's
 * close-to-open for directories does.
 *
 * Not covered, as Linux's client fails them too: cp -a SRC DIR through a
 * mount whose kernel still holds the removed DIR (cp 9 opens DIR with
 * O_PATH, which no NFS client revalidates, and looks SRC up from that
 * descriptor: ESTALE on Linux NFS as well).
 */
import t from 'tap'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, manifest, mountFuse, mountpointDir, sh } from '../helpers/fuse.ts'
import type { ShResult } from '../helpers/fuse.ts'

const skip = canFuse ? false : 'needs root and FUSE'

// The server runs in this process: calls through the mounts must not block its event loop (no *Sync).

/** Attribute timeouts long enough that nothing expires during the test: every change is another mount's. */
const LONG = 'acregmin=60,acregmax=60,acdirmin=60,acdirmax=60'

t.test('one mount removes a file, a directory, a tree; the other makes the same names again, and removes a tree the first added to', { skip }, async t => {
  // mkdtemp, not t.testdir: tap removes a testdir before the teardowns that unmount.
  const base = await mkdtemp(join(tmpdir(), 'tsnfs-two-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const ex = await exportDir(t, base)
  const src = join(base, 'src')
  const made = await sh(`mkdir -p ${src}/sub && echo a > ${src}/a.txt && echo b > ${src}/sub/b.txt && ln -s a.txt ${src}/link`)
  t.equal(made.code, 0, 'source tree')
  const A = mountpointDir(t)
  const B = mountpointDir(t)
  await mountFuse(t, ex.source, A, `${ex.portOpts},${TEST_OPTS},${LONG}`)
  await mountFuse(t, ex.source, B, `${ex.portOpts},${TEST_OPTS},${LONG}`)
  const ok = async (script: string): Promise<ShResult> => {
    const r = await sh(script)
    t.equal(r.code, 0, script, { stderr: r.stderr })
    return r
  }

  // A file: A's kernel holds f; B removes it; A's open of f meets STALE, and the retry creates it.
  await ok(`echo 1 > ${A}/f && cat ${A}/f`)
  await ok(`rm ${B}/f`)
  await ok(`echo 2 > ${A}/f`)
  // Through B the name stays absent within its 60 s (B removed it: a negative entry, as on Linux): read the export.
  t.equal(await readFile(join(ex.dir, 'f'), 'utf8').catch((err: unknown) => String(err)), '2\n', 'the server has what A wrote')

  // A directory: A's kernel holds e; B removes it; mkdir asks A's daemon again (LOOKUP_EXCL).
  await ok(`mkdir ${A}/e && ls ${A}/e`)
  await ok(`rmdir ${B}/e`)
  await ok(`mkdir ${A}/e && touch ${A}/e/x`)
  t.same(await manifest(join(ex.dir, 'e'), { fileTimes: false }), await manifest(join(A, 'e'), { fileTimes: false }), 'the server has the new e')

  // A tree: copied through A, removed through B, made and copied again through A.
  await ok(`cp -a ${src} ${A}/d1 && ls -lR ${A}/d1`)
  await ok(`rm -rf ${B}/d1`)
  await ok(`mkdir ${A}/d1 && cp -a ${src}/. ${A}/d1/`)
  const want = await manifest(src)
  t.same(await manifest(join(A, 'd1')), want, 'd1 through A is the source tree')
  t.same(await manifest(join(ex.dir, 'd1')), want, 'd1 on the server is the source tree')

  // A tree B added files to (at two levels) after A listed it: rm -rf through A removes all of it.
  await ok(`cp -a ${src} ${A}/d2 && ls -R ${A}/d2`)
  await ok(`ls -R ${B}/d2 && cp -a ${src} ${B}/d2/more && touch ${B}/d2/new ${B}/d2/sub/new`)
  await ok(`rm -rf ${A}/d2`)

  const left = await sh(`cd ${ex.dir} && find . | LC_ALL=C sort`)
  t.equal(left.stdout, ['.', './d1', './d1/a.txt', './d1/link', './d1/sub', './d1/sub/b.txt', './e', './e/x', './f', ''].join('\n'), 'the export holds exactly this')
})

t.test('without READDIRPLUS: rm -rf of a tree another mount added files to, names the remover had looked up as absent', { skip }, async t => {
  const base = await mkdtemp(join(tmpdir(), 'tsnfs-two-'))
  t.teardown(() => rm(base, { recursive: true, force: true }))
  const ex = await exportDir(t, base)
  const src = join(base, 'src')
  t.equal((await sh(`mkdir -p ${src}/sub && echo a > ${src}/a.txt && echo b > ${src}/sub/b.txt`)).code, 0, 'source tree')
  const A = mountpointDir(t)
  const B = mountpointDir(t)
  // Plain READDIR names no entries: the kernel keeps its negative entries through the listing.
  await mountFuse(t, ex.source, A, `${ex.portOpts},${TEST_OPTS},${LONG},nordirplus`)
  await mountFuse(t, ex.source, B, `${ex.portOpts},${TEST_OPTS},${LONG},nordirplus`)
  const ok = async (script: string): Promise<void> => {
    const r = await sh(script)
    t.equal(r.code, 0, script, { stderr: r.stderr })
  }
  await ok(`cp -a ${src} ${A}/d && ls -R ${A}/d`)
  const absent = await sh(`ls ${A}/d/new ${A}/d/sub/new ${A}/d/more`)
  t.equal(absent.code, 2, 'not there yet: A now holds them as absent')
  await ok(`ls -R ${B}/d && cp -a ${src} ${B}/d/more && touch ${B}/d/new ${B}/d/sub/new`)
  await ok(`rm -rf ${A}/d`)
  const left = await sh(`cd ${ex.dir} && find . | LC_ALL=C sort`)
  t.equal(left.stdout, '.\n', 'the export is empty')
})

