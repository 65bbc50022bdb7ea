/*
 * Ordinary tools on a mount, compared with the same actions on a local
 * directory (issue 5 tests): cp -a of a tree of 0 B to 50 MiB files, tar
 * round trip, mv, ln, ln -s, chmod, touch -d, truncate, find, du, git, and
 * rsync -a both ways; contents and metadata (modes, sizes, link counts,
 * owners, nanosecond mtimes, link targets) byte-exact.
 */
import t from 'tap'
import { chmodSync, lutimesSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TEST_OPTS, canFuse, exportDir, manifest, mountFuse, mountpointDir, patternBytes, sh, shOk } from '../helpers/fuse.ts'

const SIZES = [0, 1, 511, 4095, 4096, 4097, 65_535, 131_072, 1_048_579, 5 * 1_048_576 + 17, 50 * 1_048_576]

function makeTree(src: string): void {
  mkdirSync(join(src, 'sub/deeper'), { recursive: true })
  SIZES.forEach((n, i) => {
    writeFileSync(join(src, i % 2 === 0 ? `f${String(n)}` : `sub/f${String(n)}`), patternBytes(n, i + 1))
  })
  writeFileSync(join(src, 'sub/deeper/exec.sh'), '#!/bin/sh\necho hi\n')
  chmodSync(join(src, 'sub/deeper/exec.sh'), 0o750)
  symlinkSync('../f0', join(src, 'sub/link-to-f0'))
  symlinkSync('/nonexistent/target', join(src, 'dangling'))
  utimesSync(join(src, 'sub/f1'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'))
  // rsync compares times to the second (modify-window 0): a copy made in the same second as the
  // source was last changed keeps its own directory and symlink times, on a local disk as on the
  // mount. Times in another second make both runs set them, so the comparison is deterministic.
  const past = new Date('2010-05-06T07:08:09.123Z')
  lutimesSync(join(src, 'sub/link-to-f0'), past, past)
  lutimesSync(join(src, 'dangling'), past, past)
  for (const d of ['sub/deeper', 'sub', '.']) utimesSync(join(src, d), past, past)
}

// Run with $D as the target (once local, once on the mount) and $S the source tree.
const SCRIPT = `
set -e
cp -a "$S" "$D/tree"
mkdir "$D/untar"
tar -C "$D/tree" -cf - sub | tar -C "$D/untar" -xf -
mkdir "$D/ops"
cp -a "$S/sub" "$D/ops/sub"
mv "$D/ops/sub/f131072" "$D/ops/moved"
ln "$D/ops/moved" "$D/ops/hardlink"
ln -s moved "$D/ops/symlink"
chmod 604 "$D/ops/moved"
chmod 700 "$D/ops/sub"
echo data > "$D/ops/touched"
touch -d '2020-01-02 03:04:05.123456789' "$D/ops/touched"
touch -h -d '2019-05-06 07:08:09.5' "$D/ops/symlink"
cp "$S/f0" "$D/ops/grow"; truncate -s 100000 "$D/ops/grow"
cp "$S/sub/f4095" "$D/ops/shrink"; truncate -s 1000 "$D/ops/shrink"
cp "$S/sub/f131072" "$D/ops/zero"; truncate -s 0 "$D/ops/zero"
touch -d '2021-01-01 00:00:00' "$D/ops/grow" "$D/ops/shrink" "$D/ops/zero"
mv "$D/ops/sub/deeper" "$D/ops/deeper-moved"
rm "$D/ops/sub/f4097"
(cd "$D" && find . -path ./gitrepo -prune -o -print | sort) > "$O/find.txt"
(cd "$D" && find tree -type f -size +1k | sort) > "$O/find-size.txt"
du -s --apparent-size -B1 "$D/tree" | cut -f1 > "$O/du.txt"
du -sk "$D/tree" > /dev/null
mkdir "$D/gitrepo"
cd "$D/gitrepo"
git init -q -b main .
cp -a "$S/sub/deeper" "$S/f4096" .
git add .
git -c user.name=t -c user.email=t@example.com commit -q -m first
echo more >> f4096
git -c user.name=t -c user.email=t@example.com commit -q -am second
git rev-parse HEAD > "$O/git-head.txt"
git status --porcelain > "$O/git-status.txt"
git fsck --strict 2> "$O/git-fsck.txt"
git log --format=%s > "$O/git-log.txt"
rsync -a "$S/sub/" "$D/rsync-in/"
mkdir -p "$O/rsync-out"
rsync -a "$D/tree/sub/" "$O/rsync-out/"
`

const GIT_ENV = { GIT_AUTHOR_DATE: '2020-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2020-01-01T00:00:00Z', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1' }

t.test('tools on the mount match the same tools on a local directory', { skip: canFuse ? false : 'needs root and FUSE' }, async t => {
  const base = t.testdir({ local: {}, outLocal: {}, outMount: {}, src: {} })
  makeTree(join(base, 'src'))
  const ex = await exportDir(t, base)
  const mnt = mountpointDir(t)
  await mountFuse(t, ex.source, mnt, `${ex.portOpts},${TEST_OPTS}`)

  let t0 = Date.now()
  const local = await sh(SCRIPT, { ...GIT_ENV, S: join(base, 'src'), D: join(base, 'local'), O: join(base, 'outLocal') })
  t.equal(local.code, 0, `local run: ${local.stderr}`)
  t.comment(`local ${String(Date.now() - t0)} ms`)
  t0 = Date.now()
  const mounted = await sh(SCRIPT, { ...GIT_ENV, S: join(base, 'src'), D: mnt, O: join(base, 'outMount') })
  t.comment(`mount ${String(Date.now() - t0)} ms`)
  t.equal(mounted.code, 0, `mount run: ${mounted.stderr}`)

  for (const f of ['find.txt', 'find-size.txt', 'du.txt', 'git-head.txt', 'git-status.txt', 'git-fsck.txt', 'git-log.txt']) {
    t.equal(await shOk(t, `cat "${join(base, 'outMount', f)}"`), await shOk(t, `cat "${join(base, 'outLocal', f)}"`), f)
  }
  // Copied trees: everything, directory times included.
  for (const sub of ['tree', 'untar/sub', 'rsync-in']) {
    t.strictSame(await manifest(join(mnt, sub), { dirTimes: true }), await manifest(join(base, 'local', sub), { dirTimes: true }), `${sub} through the mount`)
  }
  t.strictSame(await manifest(join(base, 'outMount/rsync-out'), { dirTimes: true }), await manifest(join(base, 'src/sub'), { dirTimes: true }), 'rsync out of the mount')
  // Worked-in trees: all but directory times (they depend on when each run happened).
  t.strictSame(await manifest(join(mnt, 'ops')), await manifest(join(base, 'local/ops')), 'ops')
  // (git wrote f4096 at the time of each run)
  t.strictSame(await manifest(join(mnt, 'gitrepo'), { skip: ['.git'], fileTimes: false }), await manifest(join(base, 'local/gitrepo'), { skip: ['.git'], fileTimes: false }), 'git work tree')
  // And the server's directory holds what the mount shows.
  t.strictSame(await manifest(join(ex.dir, 'tree'), { dirTimes: true }), await manifest(join(base, 'local/tree'), { dirTimes: true }), 'the exported directory itself')
})
