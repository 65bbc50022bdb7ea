/*
 * Runs nfsprobe's nlm mode (tools/nfsprobe: libnfs's raw NLM v4 and NSM
 * calls) for the lock tests: a script of ops in, the lines it printed out,
 * one per reply, so a test asserts exact statuses.
 */
import { execFile } from 'node:child_process'
import { exitCodeOf, targetArgs } from '../../bench/nlm-probe.ts'
import type { NlmTarget } from '../../bench/nlm-probe.ts'

export interface NlmRun {
  /** One line per op, as printed ("LOCK NLM4_GRANTED", "TEST NLM4_DENIED excl=1 ..."). */
  lines: string[]
  exitCode: number
  stderr: string
}

/** `nfsprobe nlm URL PATH OP...` */
export function runNlm(bin: string, target: NlmTarget, path: string, ops: readonly string[]): Promise<NlmRun> {
  return new Promise((resolve) => {
    execFile(bin, [...targetArgs(target), 'nlm', target.url, path, ...ops], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ lines: stdout.split('\n').filter((l) => l !== ''), exitCode: exitCodeOf(err), stderr })
    })
  })
}
