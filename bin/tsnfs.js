#!/usr/bin/env node
// The installed command: runs the CLI bundled in dist/bundle/ (bin/bundle.js: a few files to load
// instead of ~74 modules, ~35 ms of each start), else the compiled modules in dist/cli/ (both built
// by the prepare script: bin/prepare.js). A bundle older than dist/cli/ (tsc run alone since) is
// not used: it would run code that is no longer the build.
import { statSync } from 'node:fs'

const dist = new URL('../dist/', import.meta.url)

function bundleIsCurrent() {
  try {
    return statSync(new URL('bundle/main.js', dist)).mtimeMs >= statSync(new URL('cli/dispatch.js', dist)).mtimeMs
  } catch {
    return false
  }
}

const entry = bundleIsCurrent() ? 'bundle/main.js' : 'cli/main.js'
try {
  await import(new URL(entry, dist).href)
} catch (err) {
  // Only dist/ itself missing gets the hint; anything else (a missing dependency) is shown as it is.
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes(`dist/${entry}`)) throw err
  process.stderr.write('tsnfs: dist/ is not built: run `npm run build` in the package folder (npm install runs it)\n')
  process.exitCode = 1
}
