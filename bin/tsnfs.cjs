#!/usr/bin/env node
'use strict'
// The installed command. The bundled client commands (cp, ls, ...: bin/bundle.js) run from
// dist/bundle/cli.cjs, compiled with V8's code cache (bin/code-cache.cjs); the others from the ES
// bundle dist/bundle/main.js, whose dispatcher imports them from dist/cli/; without a current
// bundle, from dist/cli/main.js (all three built by the prepare script: bin/prepare.js). This file
// is CommonJS so that a bundled command never starts Node's ES module loader: with it, the start
// of a 1-byte `tsnfs cp` took ~10 ms more (bench/README.md, session 37). In a checkout, a bundle
// older than dist/cli/ (tsc run alone since) is not used: it would run code that is no longer the
// build. An install from a tarball has no sources to compile, and its dist/ and bundle were built
// together by `npm pack`, but unpacked in any order (new mtimes): its bundle is used as it is.
const { statSync } = require('node:fs')
const { join } = require('node:path')
const { pathToFileURL } = require('node:url')
const { BUNDLED } = require('./bundled-commands.cjs')

const dist = join(__dirname, '..', 'dist')

function exists(path) {
  try {
    statSync(path)
    return true
  } catch {
    return false
  }
}

function isCurrent(file) {
  try {
    if (statSync(join(dist, file)).mtimeMs >= statSync(join(dist, 'cli', 'dispatch.js')).mtimeMs) return true
  } catch {
    return false
  }
  return !exists(join(dist, '..', 'cli', 'dispatch.ts'))
}

const command = process.argv[2]
if (command !== undefined && BUNDLED.includes(command) && isCurrent('bundle/cli.cjs')) {
  require('./code-cache.cjs').runCached(join(dist, 'bundle', 'cli.cjs'), command)
} else {
  const entry = isCurrent('bundle/main.js') ? 'bundle/main.js' : 'cli/main.js'
  import(pathToFileURL(join(dist, entry)).href).catch((err) => {
    // Only dist/ itself missing gets the hint; anything else (a missing dependency) is shown as it is.
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes(`dist/${entry}`)) throw err
    process.stderr.write('tsnfs: dist/ is not built: run `npm run build` in the package folder (npm install runs it)\n')
    process.exitCode = 1
  })
}
