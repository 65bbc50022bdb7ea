/*
 * Builds our libnfs probe (tools/nfsprobe) for a test and runs its conform
 * mode: the checks it prints, parsed, so a test asserts which passed and
 * which failed by name.
 */
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildNfsprobe } from '../../bench/nfsprobe.ts'

/** Every check conform prints, in order, when nothing fails early. */
export const CONFORM_CHECKS = [
  'mount', 'fsinfo', 'null', 'getattr-root', 'pathconf', 'workdir', 'statvfs', 'access', 'lookup-enoent', 'lookup-notdir',
  'rw-0', 'rw-1', 'rw-4095', 'rw-4096', 'rw-65537', 'rw-1048579', 'read-eof', 'write-stable',
  'truncate-grow', 'truncate-shrink', 'truncate-zero', 'sparse-hole', 'sparse-leading-hole', 'concurrent-writes-4MiB',
  'mkdir-tree', 'readdir-1000', 'readdirplus-1000', 'opendir-libnfs-1000', 'remove-1000', 'remove', 'stale-handle',
  'rmdir-notempty', 'rmdir-empty', 'rmdir-notdir', 'mkdir-eexist',
  'rename', 'rename-over-existing', 'rename-dir', 'hardlink', 'hardlink-unlink', 'symlink', 'name-max',
  'chmod', 'chmod-dir', 'utimes', 'setattr-times-ns', 'setattr-server-time', 'setattr-guard',
  'dir-times-create', 'dir-times-remove',
  'create-exclusive-eexist', 'create-exclusive-replay', 'create-unchecked-existing', 'cleanup',
] as const

export interface ConformResult {
  /** Names of the checks that passed / failed, in the order printed. */
  passed: string[]
  failed: string[]
  /** The FAIL lines themselves (for messages). */
  failLines: string[]
  summary: { passed: number; failed: number } | null
  exitCode: number
  stdout: string
}

/** nfsprobe built from the checkout into a temporary directory removed at teardown; asserts a warning-free build. */
export async function buildProbe(t: Test): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-nfsprobe-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  const bin = join(dir, 'nfsprobe')
  const warnings = await buildNfsprobe(bin)
  t.equal(warnings, '', 'nfsprobe builds with gcc -O2 -Wall -Wextra without a warning')
  return bin
}

export function runConform(bin: string, url: string): Promise<ConformResult> {
  return new Promise((resolve) => {
    execFile(bin, ['conform', url], { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 }, (err, stdout) => {
      const passed: string[] = []
      const failed: string[] = []
      const failLines: string[] = []
      let summary: ConformResult['summary'] = null
      for (const line of stdout.split('\n')) {
        const check = /^(PASS|FAIL) (\S+)/.exec(line)
        if (check?.[1] === 'PASS') passed.push(check[2] ?? '')
        else if (check?.[1] === 'FAIL') {
          failed.push(check[2] ?? '')
          failLines.push(line)
        }
        const s = /^(\d+) passed, (\d+) failed$/.exec(line)
        if (s !== null) summary = { passed: Number(s[1]), failed: Number(s[2]) }
      }
      const status = (err as { code?: unknown } | null)?.code
      const code = err === null ? 0 : typeof status === 'number' ? status : -1
      resolve({ passed, failed, failLines, summary, exitCode: code, stdout })
    })
  })
}

/** The summary is the last line and agrees with the lines; the exit status says whether any failed. */
export function checkReport(t: Test, r: ConformResult): void {
  const last = r.stdout.trimEnd().split('\n').at(-1) ?? ''
  t.match(last, /^\d+ passed, \d+ failed$/, 'the summary is the last line')
  t.strictSame(r.summary, { passed: r.passed.length, failed: r.failed.length }, 'the summary counts the PASS and FAIL lines')
  t.equal(r.exitCode, r.failed.length === 0 ? 0 : 1, 'exit status 0 only when nothing failed')
  t.equal(new Set([...r.passed, ...r.failed]).size, r.passed.length + r.failed.length, 'each check reported once')
}
