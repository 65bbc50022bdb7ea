// A bundled command started from V8's code cache. Node 20 compiles every module afresh at each
// start, and most of a short command's own start-up (after Node's own ~80 ms) went to compiling:
// the bundle's top level, then each function on its first call (bench/README.md, session 37).
// Node 22's module.enableCompileCache() keeps that work for modules; on Node 20 only vm.Script
// takes V8's cached data, so the build also writes the bundled commands as one CommonJS file
// (dist/bundle/cli.cjs, bin/bundle.js), compiled here with the bytes V8 gave at the end of an
// earlier successful run of the same command: the functions that run compiled included.
//
// A cache is code this process will run, so it is read only from a folder no other user can
// write: beside the bundle when this user owns the install, else the user's own cache folder.
'use strict'
const { mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } = require('node:fs')
const { createRequire } = require('node:module')
const { homedir } = require('node:os')
const { dirname, join } = require('node:path')
const { pathToFileURL } = require('node:url')
const vm = require('node:vm')

/** The first line of cli.cjs: `// tsnfs-bundle HASH`, the content's hash (bin/bundle.js). */
const STAMP = /^\/\/ tsnfs-bundle ([0-9a-f]{16,64})\n/

/** A folder only this user can write, or null. */
function privateDir(dir) {
  try {
    const st = statSync(dir)
    return st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0 ? dir : null
  } catch {
    return null
  }
}

function cacheDir(bundleDir) {
  const chosen = process.env.TSNFS_CODE_CACHE_DIR
  if (chosen !== undefined && chosen !== '') return privateDir(chosen)
  if (privateDir(bundleDir) !== null) {
    const dir = join(bundleDir, 'cache')
    try {
      mkdirSync(dir, { mode: 0o700 })
    } catch {
      // there already, or not writable: privateDir decides
    }
    return privateDir(dir)
  }
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache')
  const dir = join(base, 'tsnfs')
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
  } catch {
    return null
  }
  return privateDir(dir)
}

/**
 * Runs `command` from the CommonJS bundle `file` (a path), compiled with its code cache when
 * one is there and V8 takes it; writes one at exit when there was none (or V8 refused it) and the
 * command succeeded. TSNFS_CODE_CACHE=off compiles without; =trace says on stderr what happened;
 * TSNFS_CODE_CACHE_DIR names the folder (it too must be this user's alone).
 */
function runCached(file, command) {
  const source = readFileSync(file, 'utf8')
  const stamp = STAMP.exec(source)
  const mode = process.env.TSNFS_CODE_CACHE
  const dir = mode === 'off' || stamp === null ? null : cacheDir(dirname(file))
  // The bundle's hash names its cache: V8 itself checks only the source's length, its version and flags.
  const cacheFile = dir === null ? null : join(dir, `${command}-${stamp[1].slice(0, 16)}-${process.version}-${process.arch}.v8`)
  let cachedData
  if (cacheFile !== null) {
    try {
      cachedData = readFileSync(cacheFile)
    } catch {
      // none yet
    }
  }
  // Strict, as the modules it was bundled from (esbuild's own "use strict" follows the stamp line, too late to count).
  const wrapped = `(function (exports, require, module, __filename, __dirname, import_meta_url) {'use strict';${source}\n})`
  const script = new vm.Script(wrapped, {
    filename: file,
    ...(cachedData === undefined ? {} : { cachedData }),
    // The commands not bundled are imported from dist/cli/ (never on this path: bin/tsnfs.cjs sends them to the ES bundle).
    importModuleDynamically: (specifier) => import(new URL(specifier, pathToFileURL(file)).href),
  })
  const used = cachedData !== undefined && !script.cachedDataRejected
  // Not -h: some commands give it another meaning (df -h).
  const helpRun = process.argv.includes('--help')
  process.once('exit', (code) => {
    let state = cacheFile === null ? 'off' : used ? 'used' : cachedData === undefined ? 'none' : 'rejected'
    // A help page runs little of the command: its cache would stand in for the real one.
    if (cacheFile !== null && !used && code === 0 && !helpRun) {
      try {
        writeCache(cacheFile, command, script.createCachedData())
        state += ', written'
      } catch {
        // a read-only or full disk: the next start compiles again
      }
    }
    if (mode === 'trace') process.stderr.write(`tsnfs: code cache ${state}${cacheFile === null ? '' : ` (${cacheFile})`}\n`)
  })
  const module = { exports: {} }
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file), pathToFileURL(file).href)
}

/** Written whole under a temporary name, then renamed; the command's caches of other bundles or Node versions go. */
function writeCache(cacheFile, command, data) {
  const tmp = `${cacheFile}.${String(process.pid)}.tmp`
  writeFileSync(tmp, data, { mode: 0o600 })
  renameSync(tmp, cacheFile)
  const dir = dirname(cacheFile)
  const mine = cacheFile.slice(dir.length + 1)
  for (const name of readdirSync(dir)) {
    if (name !== mine && name.startsWith(`${command}-`) && name.endsWith('.v8')) {
      try {
        unlinkSync(join(dir, name))
      } catch {
        // another process's, or gone already
      }
    }
  }
}

module.exports = { runCached }
