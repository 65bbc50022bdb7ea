/*
 * tsnfs mkdir, rm, mv, ln against a server started here on a host
 * directory: effects checked with node:fs, exit codes and messages exact.
 */
import t from 'tap'
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { startServer } from '../helpers/server.ts'
import { ensureBuilt, localExport, ok, tsnfs } from './run-cli.ts'

// Top-level awaits, not t.before: the root test must not start (and end) before the server is up.
await ensureBuilt()
const { url, host } = await localExport(t)

t.test('mkdir, -p, -m, errors', async t => {
  await ok(t, ['mkdir', url('/mk')])
  t.ok(statSync(host('mk')).isDirectory())
  t.equal(statSync(host('mk')).mode & 0o777, 0o755, '0777 less the umask 022')
  await ok(t, ['mkdir', '-p', '-m', '700', url('/mk/a/b/c')])
  t.equal(statSync(host('mk/a/b/c')).mode & 0o777, 0o700)
  await ok(t, ['mkdir', '-p', url('/mk/a')])
  const exists = await tsnfs(['mkdir', url('/mk')])
  t.equal(exists.code, 1)
  t.equal(exists.stderr, `tsnfs mkdir: ${url('/mk')}: File exists\n`)
  const noParent = await tsnfs(['mkdir', url('/nope/x')])
  t.equal(noParent.stderr, `tsnfs mkdir: ${url('/nope/x')}: No such file or directory\n`)
  const badMode = await tsnfs(['mkdir', '-m', '99', url('/m2')])
  t.equal(badMode.code, 2)
  t.match(badMode.stderr, /^tsnfs mkdir: invalid mode '99'\n/)
})

t.test('rm, -r, -f, errors', async t => {
  mkdirSync(host('rmt/d/e'), { recursive: true })
  writeFileSync(host('rmt/f'), 'f')
  writeFileSync(host('rmt/d/e/g'), 'g')
  await ok(t, ['rm', url('/rmt/f')])
  t.notOk(existsSync(host('rmt/f')))
  const dirNoR = await tsnfs(['rm', url('/rmt/d')])
  t.equal(dirNoR.code, 1)
  t.equal(dirNoR.stderr, `tsnfs rm: ${url('/rmt/d')}: Is a directory\n`)
  await ok(t, ['rm', '-r', url('/rmt/d')])
  t.notOk(existsSync(host('rmt/d')))
  const missing = await tsnfs(['rm', url('/rmt/x')])
  t.equal(missing.code, 1)
  t.equal(missing.stderr, `tsnfs rm: ${url('/rmt/x')}: No such file or directory\n`)
  const forced = await tsnfs(['rm', '-f', url('/rmt/x')])
  t.equal(forced.code, 0)
  t.equal(forced.stderr, '')
})

t.test('mv: rename, into a directory, across exports refused', async t => {
  mkdirSync(host('mvt/into'), { recursive: true })
  writeFileSync(host('mvt/a'), 'A')
  await ok(t, ['mv', url('/mvt/a'), url('/mvt/b')])
  t.equal(readFileSync(host('mvt/b'), 'utf8'), 'A')
  await ok(t, ['mv', url('/mvt/b'), url('/mvt/into')])
  t.equal(readFileSync(host('mvt/into/b'), 'utf8'), 'A', 'moved into the directory')
  const missing = await tsnfs(['mv', url('/mvt/zz'), url('/mvt/yy')])
  t.equal(missing.code, 1)
  t.equal(missing.stderr, `tsnfs mv: ${url('/mvt/zz')}: No such file or directory\n`)
  const other = await startServer(t)
  const cross = await tsnfs(['mv', url('/mvt/into/b'), other.url('/export', '/b')])
  t.equal(cross.code, 1)
  t.equal(cross.stderr, `tsnfs mv: ${other.url('/export', '/b')}: Invalid cross-device link (not on the mount of ${url('/mvt/into/b')})\n`)
  const usage = await tsnfs(['mv', url('/mvt/into/b')])
  t.equal(usage.code, 2)
})

t.test('ln: hard and symbolic links, errors', async t => {
  writeFileSync(host('lnt'), 'L')
  await ok(t, ['ln', url('/lnt'), url('/lnt-hard')])
  t.equal(statSync(host('lnt-hard')).ino, statSync(host('lnt')).ino)
  await ok(t, ['ln', '-s', '../some/where', url('/lnt-sym')])
  t.equal(readlinkSync(host('lnt-sym')), '../some/where')
  t.ok(lstatSync(host('lnt-sym')).isSymbolicLink())
  const exists = await tsnfs(['ln', '-s', 'x', url('/lnt-sym')])
  t.equal(exists.code, 1)
  t.equal(exists.stderr, `tsnfs ln: ${url('/lnt-sym')}: File exists\n`)
  const missing = await tsnfs(['ln', url('/nothing'), url('/lnt-2')])
  t.equal(missing.code, 1)
  t.equal(missing.stderr, `tsnfs ln: ${url('/lnt-2')}: No such file or directory\n`)
})
