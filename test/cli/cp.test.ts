/*
 * tsnfs cp: a tree of files from 0 B to 5 MiB, a symlink and empty and
 * nested directories, local→server and back server→local, compared
 * byte-exact (on the server's host directory too); server→server between
 * two servers; -p; the refusals.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { startServer } from '../helpers/server.ts'
import { ensureBuilt, localExport, ok, tsnfs } from './run-cli.ts'

await ensureBuilt()
const { url, host, exp } = await localExport(t)
// Next to the export, in the same testdir (a second t.testdir() would wipe the export).
const work = join(dirname(exp), 'work')
mkdirSync(work, { recursive: true })

// Around the 1 MiB block: a copy goes block by block, the last one short.
const SIZES = [0, 1, 511, 4096, 65_537, 1_048_575, 1_048_576, 1_048_576 + 3, 5 * 1_048_576]

/** A local tree: files of every size (some nested), a symlink, an empty directory. */
function makeTree(root: string): void {
  mkdirSync(join(root, 'nested/deeper'), { recursive: true })
  mkdirSync(join(root, 'empty'))
  for (const n of SIZES) writeFileSync(join(root, `f${String(n)}`), randomBytes(n))
  writeFileSync(join(root, 'nested/deeper/small'), 'small\n')
  writeFileSync(join(root, 'nested/mid'), randomBytes(300_000))
  symlinkSync('nested/mid', join(root, 'link'))
}

/** Every entry of a tree: type, and content or link text. */
function snapshot(root: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of readdirSync(join(root, rel)).sort()) {
    const p = join(rel, name)
    const st = lstatSync(join(root, p))
    if (st.isDirectory()) {
      out[p] = 'dir'
      Object.assign(out, snapshot(root, p))
    } else if (st.isSymbolicLink()) out[p] = `link:${readlinkSync(join(root, p))}`
    else out[p] = `file:${readFileSync(join(root, p)).toString('base64')}`
  }
  return out
}

t.test('a tree local → server → local, byte-exact both ways', async t => {
  const src = join(work, 'tree')
  makeTree(src)
  const want = snapshot(src)
  const up = await ok(t, ['cp', '-r', src, url()])
  t.equal(up.stderr, '', 'no progress bar when stderr is not a terminal')
  t.strictSame(snapshot(host('tree')), want, 'the server holds the same tree (its host directory)')
  const back = join(work, 'back')
  await ok(t, ['cp', '-r', url('/tree'), back])
  t.strictSame(snapshot(back), want, 'copied back byte-exact, symlink as a symlink')
  const cat = await ok(t, ['cat', url('/tree/f5242880')])
  t.ok(cat.raw.equals(readFileSync(join(src, 'f5242880'))), 'the 5 MiB file reads back through cat')
})

t.test('single files: into a directory, to a new name, overwrite, from server to server', async t => {
  const f = join(work, 'one')
  writeFileSync(f, 'first version, longer\n')
  mkdirSync(host('into'))
  await ok(t, ['cp', f, url('/into')])
  t.equal(readFileSync(host('into/one'), 'utf8'), 'first version, longer\n', 'into an existing directory under its name')
  writeFileSync(f, 'second\n')
  await ok(t, ['cp', f, url('/into/one')])
  t.equal(readFileSync(host('into/one'), 'utf8'), 'second\n', 'overwritten and truncated')
  await ok(t, ['cp', url('/into/one'), join(work, 'renamed')])
  t.equal(readFileSync(join(work, 'renamed'), 'utf8'), 'second\n')

  const other = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  await ok(t, ['cp', '-r', url('/into'), other.url('/export', '/copy')])
  await ok(t, ['cp', url('/tree/f1048579'), other.url('/export', '/big')])
  const a = await ok(t, ['cat', other.url('/export', '/copy/one')])
  t.equal(a.stdout, 'second\n', 'server → server tree')
  const b = await ok(t, ['cat', other.url('/export', '/big')])
  t.ok(b.raw.equals(readFileSync(host('tree/f1048579'))), 'server → server 1 MiB byte-exact')
  await ok(t, ['cp', url('/into/one'), url('/into/two')])
  t.equal(readFileSync(host('into/two'), 'utf8'), 'second\n', 'within one mount')
  await ok(t, ['cp', f, join(work, 'renamed'), url('/into')])
  t.equal(readFileSync(host('into/renamed'), 'utf8'), 'second\n', 'several sources into a directory')
})

t.test('-p keeps mode and times; without it the umask applies', async t => {
  const d = join(work, 'modes')
  mkdirSync(join(d, 'sub'), { recursive: true })
  writeFileSync(join(d, 'x'), 'x')
  writeFileSync(join(d, 'sub/y'), 'y')
  const old = new Date('2010-10-10T10:10:10Z')
  for (const p of ['x', 'sub/y', 'sub']) utimesSync(join(d, p), old, old)
  // chmod after the writes: 0751 and 0600 are not what a umask would produce.
  await import('node:fs/promises').then(fs => Promise.all([fs.chmod(join(d, 'x'), 0o751), fs.chmod(join(d, 'sub'), 0o700), fs.chmod(join(d, 'sub/y'), 0o600)]))
  await ok(t, ['cp', '-r', '-p', d, url('/kept')])
  t.equal(statSync(host('kept/x')).mode & 0o7777, 0o751)
  t.equal(statSync(host('kept/sub')).mode & 0o7777, 0o700)
  t.equal(statSync(host('kept/sub/y')).mode & 0o7777, 0o600)
  t.equal(statSync(host('kept/x')).mtimeMs, old.getTime(), 'mtime kept')
  t.equal(statSync(host('kept/sub')).mtimeMs, old.getTime(), 'directory mtime kept (set after its contents)')
  t.equal(statSync(host('kept/x')).atimeMs, old.getTime(), 'atime kept')
  await ok(t, ['cp', '-r', '-p', url('/kept'), join(work, 'kept-back')])
  t.equal(statSync(join(work, 'kept-back/x')).mode & 0o7777, 0o751)
  t.equal(statSync(join(work, 'kept-back/sub/y')).mtimeMs, old.getTime())
  await ok(t, ['cp', '-r', d, url('/plain')])
  t.equal(statSync(host('plain/x')).mode & 0o7777, 0o751 & ~0o022, 'umask 022 applied without -p')
  t.not(statSync(host('plain/x')).mtimeMs, old.getTime())
})

t.test('refusals: directory without -r, missing source, several sources to a file, usage', async t => {
  const noR = await tsnfs(['cp', url('/tree'), join(work, 'x')])
  t.equal(noR.code, 1)
  t.equal(noR.stderr, `tsnfs cp: ${url('/tree')}: -r not specified; omitting directory\n`)
  const missing = await tsnfs(['cp', url('/nope'), join(work, 'x')])
  t.equal(missing.code, 1)
  t.equal(missing.stderr, `tsnfs cp: ${url('/nope')}: No such file or directory\n`)
  const localMissing = await tsnfs(['cp', join(work, 'nope'), url('/x')])
  t.equal(localMissing.code, 1)
  t.equal(localMissing.stderr, `tsnfs cp: ${join(work, 'nope')}: No such file or directory\n`)
  const many = await tsnfs(['cp', join(work, 'one'), join(work, 'renamed'), url('/into/one')])
  t.equal(many.code, 1)
  t.equal(many.stderr, `tsnfs cp: ${url('/into/one')}: target is not a directory\n`)
  const noParent = await tsnfs(['cp', join(work, 'one'), url('/no/such/dir')])
  t.equal(noParent.code, 1)
  t.equal(noParent.stderr, `tsnfs cp: ${url('/no/such/dir')}: No such file or directory\n`)
  const usage = await tsnfs(['cp', url('/x')])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^tsnfs cp: missing operand\nusage: tsnfs cp/)
})
