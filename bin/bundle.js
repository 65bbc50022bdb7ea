#!/usr/bin/env node
// The installed command's fast start: dist/bundle/, the client commands of dist/cli/ bundled by
// esbuild, which bin/tsnfs.cjs runs. Node 20's ES module loader resolves, stats, reads, compiles and
// links each module on its own: `tsnfs cp` loaded ~74 files of dist/ and spent ~55 ms of each start
// doing it (a 1-byte copy took 0.12-0.15 s, libnfs's nfs-cp 0.005 s; bench/README.md). Bundled, with
// a chunk per command loaded only when it runs (code splitting), a command loads a few files.
//
// Bundled: the commands that only talk to a server (cp, ls, cat, ...) and what they import. The
// others (serve, mount, bench, the storage engine's tools, ...) stay the modules tsc wrote: they find
// native addons, workers and data files next to their own module (import.meta.url), which a bundle
// would move, and their start-up is not what anyone waits on. The bundle's dispatcher imports them
// from dist/cli/ as they are. Packages (pino, typebox, ...) stay external: node_modules as they are.
//
// Usage: node bin/bundle.js [--esbuild PATH]   (PATH: esbuild's package folder when it is not a
// dependency that resolves from here: bin/prepare.js fetches it for a global install). Run after tsc.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import bundled from './bundled-commands.cjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cliDir = join(root, 'dist', 'cli')
const outdir = join(root, 'dist', 'bundle')

async function loadEsbuild(from) {
  const req = createRequire(from === undefined ? join(root, 'package.json') : join(from, 'package.json'))
  const main = from === undefined ? req.resolve('esbuild') : req.resolve(from)
  const m = await import(pathToFileURL(main).href)
  // esbuild is CommonJS: its API is the default export (and, when Node detects them, named ones).
  return m.default ?? m
}

export async function bundle(esbuildDir) {
  const entry = join(cliDir, 'main.js')
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run tsc first`)
  const esbuild = await loadEsbuild(esbuildDir)
  rmSync(outdir, { recursive: true, force: true })
  const dispatch = join(cliDir, 'dispatch.js')
  const keepOut = {
    name: 'unbundled-commands',
    setup(build) {
      // A command module the dispatcher imports and that is not bundled: imported from dist/cli/ at run time.
      build.onResolve({ filter: /^\.\/[a-z-]+\.js$/ }, (args) => {
        if (args.importer !== dispatch || args.kind !== 'dynamic-import') return undefined
        const name = args.path.slice(2, -3)
        if (bundled.BUNDLED.includes(name)) return undefined
        return { path: `../cli/${name}.js`, external: true }
      })
    },
  }
  const common = { bundle: true, platform: 'node', target: 'node20', packages: 'external', logLevel: 'warning', plugins: [keepOut] }
  await esbuild.build({ ...common, entryPoints: { main: entry }, outdir, splitting: true, format: 'esm' })
  // The same commands as one CommonJS file, which bin/code-cache.cjs compiles with V8's code cache
  // (vm.Script takes cached data; Node 20's module loader does not). import.meta.url (help.ts
  // finds package.json from it) becomes the bundle's own URL, a parameter of code-cache.cjs's wrapper.
  const cjs = join(outdir, 'cli.cjs')
  await esbuild.build({
    ...common,
    entryPoints: [entry],
    outfile: cjs,
    format: 'cjs',
    define: { 'import.meta.url': 'import_meta_url' },
  })
  // Its first line names the content, and so its code cache: V8 checks only a source's length.
  const code = readFileSync(cjs)
  writeFileSync(cjs, Buffer.concat([Buffer.from(`// tsnfs-bundle ${createHash('sha256').update(code).digest('hex')}\n`), code]))
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--esbuild')
  try {
    await bundle(i === -1 ? undefined : process.argv[i + 1])
  } catch (err) {
    process.stderr.write(`tsnfs: bundling dist/cli failed: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
