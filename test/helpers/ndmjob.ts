/**
 * Running the NDMP SDK's reference DMA, Debian amanda-server's `ndmjob`, against our NDMP server
 * (the independent judge of issue 16), and the setup the ndmjob tests share: our server with one
 * tape file and the dma/secret credentials, and ndmjob's own agent (`-o daemon`) as a reference
 * tape agent. One copy, so every test runs ndmjob the same way (a timeout, stdout and stderr
 * together, a failure as text for the assertions to read rather than a throw).
 */
import { execFile, spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { freePort } from './ports.ts'

export const NDMJOB = '/usr/lib/amanda/ndmjob'

/** Whether ndmjob is installed (CI installs amanda-server; tests that can do without it skip). */
export const haveNdmjob = existsSync(NDMJOB)

export interface NdmjobResult {
  /** The exit status (-1: killed, or the timeout). */
  code: number
  /** stdout then stderr. */
  out: string
}

/** Runs ndmjob with `args`; never throws (a failure is in code and out). */
export function runNdmjob(args: readonly string[], timeoutMs = 60_000): Promise<NdmjobResult> {
  return new Promise((resolve) => {
    execFile(NDMJOB, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ code, out: `${stdout}${stderr}` })
    })
  })
}

/** ndmjob's output, with `FAILED exit N` appended when it did not exit 0 (what the e2e tests match on). */
export async function ndmjobText(args: readonly string[], timeoutMs = 60_000): Promise<string> {
  const r = await runNdmjob(args, timeoutMs)
  return r.code === 0 ? r.out : `${r.out}FAILED exit ${r.code}`
}

export interface NdmpWithTape {
  server: NdmpServer
  /** The tape file (made empty), device name = its path. */
  tape: string
  /** ndmjob's -D/-T agent spec: v4, text authorization, dma/secret. */
  agent: string
}

/** Our NDMP server on 127.0.0.1 serving `exports` and one empty tape file `DIR/NAME`; closed at teardown. */
export async function ndmpWithTape(t: Test, dir: string, exports: readonly NdmpExport[], name = 'tape'): Promise<NdmpWithTape> {
  const tape = join(dir, name)
  writeFileSync(tape, '')
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [...exports], stateDir: dir, tapes: [{ name: tape, path: tape }] })
  t.teardown(() => server.close())
  return { server, tape, agent: `127.0.0.1:${server.port}/4t,dma,secret` }
}

/**
 * ndmjob's own agent (`-o daemon`) on a free port, answering connections; killed (SIGKILL) at teardown.
 * `cwd`: where it runs (it keeps files there).
 */
export async function ndmjobDaemon(t: Test, cwd?: string): Promise<{ port: number; agent: string }> {
  const port = await freePort()
  const daemon = spawn(NDMJOB, ['-o', 'daemon', '-p', String(port)], { stdio: 'ignore', ...(cwd === undefined ? {} : { cwd }) })
  t.teardown(() => {
    daemon.kill('SIGKILL')
  })
  await waitPort(port)
  return { port, agent: `127.0.0.1:${port}/4t,ndmp,ndmp` }
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy()
        r(true)
      })
      s.on('error', () => { r(false) })
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`ndmjob -o daemon never listened on port ${port}`)
}

/** An empty in-memory export at `path` (what the ndmjob tests back up and restore into). */
export function memExport(path: string): NdmpExport {
  const vfs = new MemoryVfs()
  return { path, backend: 'memory', vfs, root: vfs.root() }
}
