/*
 * The installed command (bin/tsnfs.js) runs the bundled CLI that the build
 * writes to dist/bundle/ (bin/bundle.js): the client commands from its
 * chunks, the other commands from dist/cli/ through the bundle's
 * dispatcher. Which files each run loads is recorded by a module resolve
 * hook (node --import), so a bin that quietly fell back to dist/cli/, or a
 * bundle that pulled modules from dist/ again, fails here. Needs the build
 * (`npm run build`, which `npm test` runs first): it fails if the bundle is
 * missing or older than dist/cli/.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startServer } from '../helpers/server.ts'
import { root } from './run-cli.ts'
import { runNode } from './cli.ts'
import type { RunResult } from './cli.ts'

const BIN = join(root, 'bin/tsnfs.js')
const BUNDLE = join(root, 'dist/bundle/main.js')
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

/** node [--import the hook] ENTRY ...args, with the files it loaded. */
async function runTraced(entry: string, args: string[]): Promise<Run> {
  const trace = join(dir, `trace-${String(++runs)}`)
  writeFileSync(trace, '')
  // Without tap's coverage hook, which would load modules of its own.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_PROCESSINFO')))
  const r = await runNode(['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, entry, ...args], { cwd: dir, env: { ...env, TSNFS_TRACE_IMPORTS: trace } })
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

t.test('cp up and down through the bin: the bundle chunks alone, byte-exact', async (t) => {
  const srv = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  // Around a block: a full 1 MiB block and a short one.
  const data = randomBytes(1024 * 1024 + 4097)
  const src = join(dir, 'src')
  writeFileSync(src, data)
  const up = await runTraced(BIN, ['cp', src, srv.url('/export', '/f')])
  t.equal(up.code, 0, up.stderr)
  t.equal(up.stderr, '')
  t.same(onlyBundle(up.loaded), [], 'cp loaded nothing of dist/ outside dist/bundle/')
  t.ok(up.loaded.some((f) => /^dist\/bundle\/cp-[A-Z0-9]+\.js$/.test(f)), 'the cp chunk was loaded')
  const down = await runTraced(BIN, ['cp', srv.url('/export', '/f'), join(dir, 'back')])
  t.equal(down.code, 0, down.stderr)
  t.ok(readFileSync(join(dir, 'back')).equals(data), 'the file came back byte-exact')
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
