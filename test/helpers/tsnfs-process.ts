/*
 * A long-running `tsnfs COMMAND ...` child (standby, witness) for end-to-end
 * tests: its stdout kept whole, a wait for a line matching a pattern (a line
 * printed between two waits is not lost), SIGKILL at teardown.
 */
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, TSNFS_ARGS } from '../cli/cli.ts'

export interface TsnfsProcess {
  child: ChildProcess
  waitFor: (re: RegExp, ms?: number) => Promise<RegExpExecArray>
  stdout: () => string
  stderr: () => string
}

export function tsnfsProcess(t: Test, args: string[], defaultWaitMs = 20_000): TsnfsProcess {
  const child = spawn(process.execPath, [...TSNFS_ARGS, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const waiters = new Set<() => void>()
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
    for (const w of [...waiters]) w()
  })
  const waitFor = (re: RegExp, ms = defaultWaitMs): Promise<RegExpExecArray> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const m = re.exec(out)
        if (m === null) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(m)
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`tsnfs ${args[0] ?? ''}: no ${String(re)} within ${ms} ms\nstdout: ${out}\nstderr: ${err}`))
      }, ms)
      waiters.add(check)
      check()
    })
  return { child, waitFor, stdout: () => out, stderr: () => err }
}

/** A temporary directory removed at teardown. */
export function tempDir(t: Test, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => {
    rmSync(d, { recursive: true, force: true })
  })
  return d
}

/** `tsnfs standby ...`: its replication port from the banner, and a wait for a stdout line. */
export async function standbyProcess(t: Test, args: string[], defaultWaitMs = 20_000): Promise<TsnfsProcess & { port: number }> {
  const p = tsnfsProcess(t, ['standby', ...args], defaultWaitMs)
  const m = await p.waitFor(/replication on [^\s]+:(\d+),/)
  return { ...p, port: Number(m[1]) }
}
