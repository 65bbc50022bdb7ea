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

/** The first script both NLM servers (ours and Ganesha's) must answer alike: grant, conflict with the holder named, unlock. */
export const BASIC_OPS: readonly string[] = [
  'null',
  'lock,x,off=0,len=100,svid=1,oh=owner1',
  'test,x,off=50,len=10,svid=2,oh=owner2',
  'lock,x,off=50,len=10,svid=2,oh=owner2',
  'test,off=99,len=1,svid=3,oh=owner3',
  'lock,x,off=100,len=10,svid=2,oh=owner2',
  'test,x,off=0,len=100,svid=1,oh=owner1',
  'unlock,off=0,len=100,svid=1,oh=owner1',
  'test,x,off=0,len=100,svid=3,oh=owner3',
  'unlock,off=100,len=10,svid=2,oh=owner2',
  'test,x,svid=3,oh=owner3',
]
export const BASIC_REPLIES: readonly string[] = [
  'NULL ok',
  'LOCK NLM4_GRANTED',
  'TEST NLM4_DENIED excl=1 svid=1 oh=owner1 off=0 len=100',
  'LOCK NLM4_DENIED',
  'TEST NLM4_DENIED excl=1 svid=1 oh=owner1 off=0 len=100',
  'LOCK NLM4_GRANTED',
  'TEST NLM4_GRANTED',
  'UNLOCK NLM4_GRANTED',
  'TEST NLM4_GRANTED',
  'UNLOCK NLM4_GRANTED',
  'TEST NLM4_GRANTED',
]
