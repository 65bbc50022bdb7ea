#!/usr/bin/env node
// The installed command: runs the compiled CLI (dist/, built by the prepare script: bin/prepare.js).
try {
  await import('../dist/cli/main.js')
} catch (err) {
  // Only dist/ itself missing gets the hint; anything else (a missing dependency) is shown as it is.
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/cli/main.js')) throw err
  process.stderr.write('tsnfs: dist/ is not built: run `npm run build` in the package folder (npm install runs it)\n')
  process.exitCode = 1
}
