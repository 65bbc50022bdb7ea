#!/usr/bin/env node
// npm's `prepare` step: compile the TypeScript sources to dist/, which bin/tsnfs.cjs runs.
//
// npm runs `prepare` on `npm ci`/`npm install` in a checkout (TypeScript is there: build with
// it), before `npm pack` (the tarball then carries dist/; installing a tarball runs no
// prepare), and in the folder of `npm install -g ./checkout` — where npm installs the
// dependencies but not the devDependencies, so there is no tsc. Then the compiler alone
// (typescript, and @types/node for the configuration's `types`, at the versions package.json
// asks for) is installed into a temporary directory outside the package, used with --noCheck
// (the sources are type-checked in development and CI; this only strips the types), and
// removed. A global install of a folder is a symlink to it, and npm installs none of its
// dependencies there either: when one does not resolve from the package, the dependencies
// (not the devDependencies) are installed into its node_modules from package-lock.json.
// After tsc, the CLI's client commands are bundled into dist/bundle/ (bin/bundle.js, with esbuild:
// the local one, or fetched beside the compiler); if that fails, the command runs dist/cli/ as
// it is (slower to start) and the install goes on.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const BUILD = ['-p', join(root, 'tsconfig.build.json')]

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env })
  if (r.error !== undefined) throw r.error
  return r.status ?? 1
}

/** Bundle dist/cli into dist/bundle (esbuildDir: a fetched esbuild package; none: the local one); a failure only warns. */
function bundle(esbuildDir) {
  const args = [join(root, 'bin', 'bundle.js'), ...(esbuildDir === undefined ? [] : ['--esbuild', esbuildDir])]
  if (run(process.execPath, args) !== 0) process.stderr.write('tsnfs: dist/bundle/ not built: the command will run dist/cli/ (slower to start)\n')
  return 0
}

function localTsc() {
  try {
    return createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
  } catch {
    return null
  }
}

function npmCommand() {
  // Under npm, npm_execpath is npm's own CLI script: the same npm, whatever the PATH says.
  const cli = process.env.npm_execpath
  return cli !== undefined && cli.endsWith('.js') ? [process.execPath, [cli]] : ['npm', []]
}

/** npm's environment without what an outer `npm install -g` set: a nested npm works on the folder it is given. */
function localEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_config_(global|prefix|location)$/i.test(k)))
}

/** Whether Node finds the package from this folder: node_modules/NAME here or in a folder above. */
function resolves(name) {
  for (let dir = root; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules', name, 'package.json'))) return true
    if (dirname(dir) === dir) return false
  }
}

function main() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const tsc = localTsc()
  if (tsc !== null) return run(process.execPath, [tsc, ...BUILD]) || bundle()
  if (!Object.keys(pkg.dependencies).every(resolves)) {
    process.stderr.write('tsnfs: installing the dependencies into the package folder (a global install of a folder links it)\n')
    const [npm, pre] = npmCommand()
    const code = run(npm, [...pre, 'ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], localEnv())
    if (code !== 0) return code
  }
  const want = ['typescript', '@types/node', 'esbuild'].map((name) => `${name}@${pkg.devDependencies[name]}`)
  const tmp = mkdtempSync(join(tmpdir(), 'tsnfs-build-'))
  try {
    process.stderr.write(`tsnfs: no TypeScript here (devDependencies not installed): fetching ${want.join(' ')} to build dist/\n`)
    const [npm, pre] = npmCommand()
    const installed = run(npm, [...pre, 'install', '--prefix', tmp, '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', ...want], localEnv())
    const fetched = join(tmp, 'node_modules', 'typescript', 'bin', 'tsc')
    if (installed !== 0 || !existsSync(fetched)) {
      if (existsSync(join(root, 'dist', 'cli', 'main.js'))) {
        process.stderr.write('tsnfs: could not fetch TypeScript; keeping the dist/ already built\n')
        return 0
      }
      process.stderr.write('tsnfs: cannot build dist/ without TypeScript: run `npm install --include=dev` in the checkout, or install a packed tarball (`npm pack`)\n')
      return 1
    }
    return run(process.execPath, [fetched, ...BUILD, '--noCheck', '--typeRoots', join(tmp, 'node_modules', '@types')]) || bundle(join(tmp, 'node_modules', 'esbuild'))
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

process.exitCode = main()
