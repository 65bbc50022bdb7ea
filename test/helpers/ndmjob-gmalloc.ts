/**
 * ndmjob (Debian amanda-server) with malloc's answer to a zero-byte request restored. The SDK
 * allocates through NDMOS_API_MALLOC, which Amanda's ndmos_glib.h maps to g_malloc, and GLib's
 * g_malloc(0) returns NULL; ndmp_9to4_tape_write_request (ndmp4_translate.c, and its v3 and v2
 * twins) takes that NULL for "no memory" and fails the call before sending it. So the
 * zero-length TAPE_WRITE of test-tape T-BW #6 never leaves ndmjob, whatever the tape agent
 * (test/server/ndmp/tape-ndmjob.test.ts). Preloaded, this g_malloc answers 0 with a real block
 * as malloc does, the request goes out, and the self-test reaches its later phases.
 * Needs a C compiler (cc); null when there is none.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { NDMJOB } from './ndmjob.ts'
import type { NdmjobResult } from './ndmjob.ts'
import { freePort } from './ports.ts'

const SHIM = `#include <stdlib.h>
/* GLib's g_malloc, except that 0 bytes gives a block (malloc's answer), not NULL. */
void *g_malloc(size_t n) { void *p = malloc(n ? n : 1); if (!p) abort(); return p; }
`

/** Compiles the shim into a directory removed at teardown; null without a C compiler. */
export async function gmallocShim(t: Test): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-gmalloc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'gm.c'), SHIM)
  const so = join(dir, 'gm.so')
  const ok = await new Promise<boolean>((resolve) => {
    execFile('cc', ['-shared', '-fPIC', '-O2', '-o', so, join(dir, 'gm.c')], (err) => { resolve(err === null) })
  })
  return ok ? so : null
}

/** Runs ndmjob with the shim preloaded; never throws (as runNdmjob). */
export function runNdmjobPreloaded(shim: string, args: readonly string[], timeoutMs = 120_000): Promise<NdmjobResult> {
  return new Promise((resolve) => {
    execFile(NDMJOB, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, LD_PRELOAD: shim } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ code, out: `${stdout}${stderr}` })
    })
  })
}

/** ndmjob's own agent (`-o daemon`) with the shim preloaded, on a free port it listens on; killed at teardown. */
export async function ndmjobDaemonPreloaded(t: Test, shim: string, cwd: string): Promise<{ agent: string }> {
  const port = await freePort()
  const daemon = spawn(NDMJOB, ['-o', 'daemon', '-p', String(port)], { stdio: 'ignore', cwd, env: { ...process.env, LD_PRELOAD: shim } })
  t.teardown(() => {
    daemon.kill('SIGKILL')
  })
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy()
        r(true)
      })
      s.on('error', () => { r(false) })
    })
    if (up) break
    if (i >= 200) throw new Error(`ndmjob -o daemon never listened on port ${port}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return { agent: `127.0.0.1:${port}/4t,ndmp,ndmp` }
}
