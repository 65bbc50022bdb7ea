/*
 * The installed command (bin/tsnfs.cjs) runs the bundled CLI that the build
 * writes to dist/bundle/ (bin/bundle.js): the client commands from the
 * CommonJS bundle cli.cjs with V8's code cache (bin/code-cache.cjs), the
 * others from dist/cli/ through the ES bundle's dispatcher. Which modules
 * each run imports is recorded by a module resolve hook (node --import), so
 * a bin that quietly fell back to dist/cli/, or a bundle that pulled modules
 * from dist/ again, fails here. Needs the build (`npm run build`, which
 * `npm test` runs first): it fails if the bundle is missing or older than
 * dist/cli/.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../helpers/server.ts'
import { root } from './run-cli.ts'
import { runNode } from './cli.ts'
import type { RunResult } from './cli.ts'

const BIN = join(root, 'bin/tsnfs.cjs')
const BUNDLE = join(root, 'dist/bundle/main.js')
const CJS = join(root, 'dist/bundle/cli.cjs')
const VERSION = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version

// Resolve hook (module.register runs it on the loader's thread): every file: URL resolved, appended to $TSNFS_TRACE_IMPORTS.
const HOOKS = `import { appendFileSync } from 'node:fs'
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  if (r.url.startsWith('file:')) appendFileSync(process.env.TSNFS_TRACE_IMPORTS, r.url + '\\n')
  return r
}`
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)})`

const dir = mkdtempSync(join(tmpdir(), 'tsnfs-bin-bundle-'))
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true })
})

interface Run extends RunResult {
  /** The files of this package the run loaded, relative to its root ('dist/bundle/main.js'). */
  loaded: string[]
}

let runs = 0

/** node [--import the hook] ENTRY ...args, with the files it loaded (`extraEnv` added to the environment). */
async function runTraced(entry: string, args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const trace = join(dir, `trace-${String(++runs)}`)
  writeFileSync(trace, '')
  // Without tap's coverage hook, which would load modules of its own.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_PROCESSINFO')))
  const r = await runNode(['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, entry, ...args], { cwd: dir, env: { ...env, ...extraEnv, TSNFS_TRACE_IMPORTS: trace } })
  const prefix = `file://${root}/`
  const loaded = [...new Set(readFileSync(trace, 'utf8').split('\n').filter((u) => u.startsWith(prefix)).map((u) => u.slice(prefix.length)))]
  return { ...r, loaded }
}

/** Whether every file of dist/ a run loaded is in dist/bundle/ (what else: bin/, node_modules/). */
function onlyBundle(loaded: string[]): string[] {
  return loaded.filter((f) => f.startsWith('dist/') && !f.startsWith('dist/bundle/'))
}

t.test('the build wrote the bundle, and it is not older than dist/cli/', async (t) => {
  let bundled: number
  try {
    bundled = statSync(BUNDLE).mtimeMs
  } catch {
    t.fail(`${BUNDLE} is missing: run \`npm run build\` (tsc alone does not bundle)`)
    return
  }
  t.ok(bundled >= statSync(join(root, 'dist/cli/dispatch.js')).mtimeMs, 'dist/bundle/main.js is as new as dist/cli/dispatch.js (else `npm run build`)')
})

t.test('tsnfs --version through the bin loads the bundle, not dist/cli/', async (t) => {
  const r = await runTraced(BIN, ['--version'])
  t.equal(r.code, 0)
  t.equal(r.stdout, `tsnfs ${VERSION}\n`)
  t.equal(r.stderr, '')
  t.ok(r.loaded.includes('dist/bundle/main.js'), `loaded dist/bundle/main.js (loaded: ${r.loaded.join(' ')})`)
  t.same(onlyBundle(r.loaded), [], 'nothing of dist/ outside dist/bundle/')
})

t.test('the build wrote the CommonJS bundle, stamped with its hash, and not older than dist/cli/', async (t) => {
  t.ok(existsSync(CJS), `${CJS} is there (else \`npm run build\`)`)
  if (!existsSync(CJS)) return
  t.ok(statSync(CJS).mtimeMs >= statSync(join(root, 'dist/cli/dispatch.js')).mtimeMs, 'cli.cjs is as new as dist/cli/dispatch.js')
  t.match(readFileSync(CJS, 'utf8').split('\n', 1)[0], /^\/\/ tsnfs-bundle [0-9a-f]{64}$/)
})

t.test('cp up and down through the bin: the CommonJS bundle, no ES module of dist/, byte-exact', async (t) => {
  const srv = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  // Around a block: a full 1 MiB block and a short one.
  const data = randomBytes(1024 * 1024 + 4097)
  const src = join(dir, 'src')
  writeFileSync(src, data)
  const up = await runTraced(BIN, ['cp', src, srv.url('/export', '/f')])
  t.equal(up.code, 0, up.stderr)
  t.equal(up.stderr, '')
  t.same(up.loaded.filter((f) => f.startsWith('dist/')), [], 'cp imported no ES module of dist/ (cli.cjs is compiled, not imported)')
  const down = await runTraced(BIN, ['cp', srv.url('/export', '/f'), join(dir, 'back')])
  t.equal(down.code, 0, down.stderr)
  t.ok(readFileSync(join(dir, 'back')).equals(data), 'the file came back byte-exact')
})

t.test("the code cache: written by a successful run, used by the next, replaced when V8 refuses it, this user's alone", async (t) => {
  const srv = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const data = randomBytes(70_000)
  const src = join(dir, 'cache-src')
  writeFileSync(src, data)
  const cache = join(dir, 'code-cache')
  mkdirSync(cache, { mode: 0o700 })
  const env = { TSNFS_CODE_CACHE: 'trace', TSNFS_CODE_CACHE_DIR: cache }
  const cp = (extra: Record<string, string> = {}): Promise<Run> => runTraced(BIN, ['cp', src, srv.url('/export', '/cached')], { ...env, ...extra })
  const said = (r: Run): string => r.stderr.replace(/ \(.*\)\n$/, '')
  const stamp = /^\/\/ tsnfs-bundle ([0-9a-f]{16})/.exec(readFileSync(CJS, 'utf8'))?.[1] ?? 'none'
  const file = join(cache, `cp-${stamp}-${process.version}-${process.arch}.v8`)

  const help = await runTraced(BIN, ['cp', '--help'], env)
  t.equal(help.code, 0)
  t.equal(said(help), 'tsnfs: code cache none', 'a help page writes no cache')
  t.notOk(existsSync(file))

  const failed = await runTraced(BIN, ['cp', join(dir, 'no-such'), srv.url('/export', '/x')], env)
  t.equal(failed.code, 1)
  t.match(failed.stderr, /No such file or directory\ntsnfs: code cache none \(/, 'a failed run writes none either')
  t.notOk(existsSync(file))

  const first = await cp()
  t.equal(first.code, 0, first.stderr)
  t.equal(first.stderr, `tsnfs: code cache none, written (${file})\n`)
  t.equal(statSync(file).mode & 0o777, 0o600, 'readable by this user only')
  t.ok(statSync(file).size > 10_000, `V8's data is there (${String(statSync(file).size)} bytes)`)

  const second = await cp()
  t.equal(second.code, 0, second.stderr)
  t.equal(said(second), 'tsnfs: code cache used')

  // Not V8's data: refused (its checksum), the command runs compiled afresh, and a good one replaces it.
  writeFileSync(file, randomBytes(statSync(file).size))
  const third = await cp()
  t.equal(third.code, 0, third.stderr)
  t.equal(said(third), 'tsnfs: code cache rejected, written')
  t.equal(said(await cp()), 'tsnfs: code cache used')
  const back = join(dir, 'cache-back')
  const down = await runTraced(BIN, ['cp', srv.url('/export', '/cached'), back], env)
  t.equal(down.code, 0, down.stderr)
  t.ok(readFileSync(back).equals(data), 'what the cached runs copied came back byte-exact')

  // A folder other users may write is never read from: its cache could be anyone's code.
  chmodSync(cache, 0o777)
  const shared = await cp()
  t.equal(shared.code, 0, shared.stderr)
  t.equal(shared.stderr, 'tsnfs: code cache off\n')
  chmodSync(cache, 0o700)

  t.equal((await cp({ TSNFS_CODE_CACHE: 'off' })).stderr, '', 'off: no cache and nothing said')
})

t.test('installed from a tarball (no sources, files unpacked in any order): the bundle is used; in a checkout a stale one is not', async (t) => {
  // A package as npm unpacks it: dist/cli/ newer than the bundle, no TypeScript sources beside dist/.
  const pkg = join(dir, 'unpacked')
  for (const f of ['bin', 'dist/bundle', 'package.json']) cpSync(join(root, f), join(pkg, f), { recursive: true })
  mkdirSync(join(pkg, 'dist/cli'))
  cpSync(join(root, 'dist/cli/dispatch.js'), join(pkg, 'dist/cli/dispatch.js'))
  symlinkSync(join(root, 'node_modules'), join(pkg, 'node_modules'))
  const later = new Date(Date.now() + 60_000)
  utimesSync(join(pkg, 'dist/cli/dispatch.js'), later, later)
  const env = { TSNFS_CODE_CACHE: 'trace', TSNFS_CODE_CACHE_DIR: dir }
  const installed = await runTraced(join(pkg, 'bin/tsnfs.cjs'), ['cp', '--help'], env)
  t.equal(installed.code, 0, installed.stderr)
  t.match(installed.stdout, /^usage: tsnfs cp /)
  t.match(installed.stderr, /^tsnfs: code cache /, 'run from the CommonJS bundle')
  // The same tree with sources: a checkout where tsc ran after the bundle, so neither bundle may run (and dist/cli/main.js is not there).
  mkdirSync(join(pkg, 'cli'))
  writeFileSync(join(pkg, 'cli/dispatch.ts'), '')
  const checkout = await runTraced(join(pkg, 'bin/tsnfs.cjs'), ['cp', '--help'], env)
  t.equal(checkout.code, 1)
  t.equal(checkout.stderr, 'tsnfs: dist/ is not built: run `npm run build` in the package folder (npm install runs it)\n')
})

t.test('a failure prints and exits as dist/cli/main.js does', async (t) => {
  const srv = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const args = ['cp', join(dir, 'no-such-file'), srv.url('/export', '/g')]
  const bundled = await runTraced(BIN, args)
  const modules = await runTraced(join(root, 'dist/cli/main.js'), args)
  t.equal(bundled.code, 1)
  t.equal(bundled.stderr, modules.stderr)
  t.match(bundled.stderr, /^tsnfs cp: .*no-such-file: No such file or directory\n$/)
  t.equal(modules.code, 1)
})

t.test('a command that is not bundled runs from dist/cli/ through the bundle', async (t) => {
  const r = await runTraced(BIN, ['serve', '--help'])
  t.equal(r.code, 0)
  t.match(r.stdout, /^usage: tsnfs serve /)
  t.ok(r.loaded.includes('dist/bundle/main.js'), 'dispatched by the bundle')
  t.ok(r.loaded.includes('dist/cli/serve.js'), 'serve loaded from dist/cli/')
})
