#!/usr/bin/env node
// `npm run build [-- TSC-OPTIONS]`: compile the TypeScript sources to dist/ (tsc, with the options
// given, e.g. --noCheck), then bundle the CLI's client commands into dist/bundle/ (bin/bundle.js),
// which the installed command runs.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bundle } from './bundle.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc')
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' })
if (r.error !== undefined) throw r.error
if (r.status !== 0) {
  process.exitCode = r.status ?? 1
} else {
  try {
    await bundle()
  } catch (err) {
    process.stderr.write(`tsnfs: bundling dist/cli failed: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}
