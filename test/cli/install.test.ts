/*
 * `npm install -g` gives a working tsnfs command (issue 11 point 7): from a
 * fresh clone (no devDependencies, no dist/: bin/prepare.js fetches the
 * compiler to a temporary directory and installs the dependencies into the
 * linked folder) and from the tarball `npm pack` makes (dist/ inside, no
 * prepare). Each into its own temporary prefix. It fetches packages (from
 * npm's cache when they are there) and takes about a minute, so it runs
 * only when asked: TSNFS_INSTALL_TEST=1 npx tap test/cli/install.test.ts
 */
import t from 'tap'
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { ROOT } from './cli.ts'

const run = promisify(execFile)
const skip = process.env.TSNFS_INSTALL_TEST === '1' ? false : 'set TSNFS_INSTALL_TEST=1 to install into temporary prefixes (a minute, uses the npm registry or cache)'
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

/** npm as a user runs it: none of the npm_* settings of an npm that may be running this test. */
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')))

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-install-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

async function works(t: Test, bin: string): Promise<void> {
  // The build bundled the client commands (bin/bundle.js), which the command runs.
  const pkg = join(dirname(bin), '..', 'lib', 'node_modules', 'tsnfs')
  t.ok(existsSync(join(pkg, 'dist', 'bundle', 'main.js')), 'dist/bundle/ built')
  const v = await run(bin, ['--version'], { env })
  t.equal(v.stdout, `tsnfs ${VERSION}\n`, 'tsnfs --version')
  const help = await run(bin, ['serve', '--help'], { env })
  t.match(help.stdout, /^usage: tsnfs serve /, 'tsnfs serve --help')
  // A bundled client command runs from the CommonJS bundle (bin/code-cache.cjs), its packages resolved from the install.
  t.ok(existsSync(join(pkg, 'dist', 'bundle', 'cli.cjs')), 'dist/bundle/cli.cjs built')
  const cp = await run(bin, ['cp', '--help'], { env: { ...env, TSNFS_CODE_CACHE: 'trace' } })
  t.match(cp.stdout, /^usage: tsnfs cp /, 'tsnfs cp --help')
  t.match(cp.stderr, /^tsnfs: code cache none/, 'through the CommonJS bundle')
  // The dependencies resolve: exports --check loads the server's parser (TypeBox) and backends.
  const check = await run(bin, ['exports', '--check', join(ROOT, 'deploy/exports.example'), '--syntax-only'], { env })
  t.match(check.stdout, /OK \(7 exports\)/, 'tsnfs exports --check runs with its dependencies')
}

t.test('from a fresh clone: git clone, then npm install -g ./clone', { skip, timeout: 600_000 }, async (t) => {
  const dir = scratch(t)
  await run('git', ['clone', '-q', ROOT, join(dir, 'clone')])
  await run('npm', ['install', '-g', '--prefix', join(dir, 'prefix'), '--prefer-offline', '--no-audit', '--no-fund', join(dir, 'clone')], { env, cwd: dir })
  await works(t, join(dir, 'prefix', 'bin', 'tsnfs'))
})

t.test('from the tarball npm pack makes', { skip, timeout: 600_000 }, async (t) => {
  const dir = scratch(t)
  const packed = await run('npm', ['pack', '--silent', '--pack-destination', dir], { env, cwd: ROOT })
  const tarball = join(dir, packed.stdout.trim().split('\n').pop() ?? '')
  await run('npm', ['install', '-g', '--prefix', join(dir, 'prefix'), '--prefer-offline', '--no-audit', '--no-fund', tarball], { env, cwd: dir })
  await works(t, join(dir, 'prefix', 'bin', 'tsnfs'))
})
