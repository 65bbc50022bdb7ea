/*
 * The replication lab of issue 15 §7 (test/e2e/replication-netns-*.test.ts):
 * three hosts in network namespaces (netns.ts) — primary A, standby B and a
 * client — with `tsnfs serve` and `tsnfs standby` as real processes, both
 * over local directories, and a writer (repl-writer.ts) in the client host
 * talking to the service address only.
 *
 * Both nodes export the same path (a standby applies to "the same export
 * paths"), but each keeps its own copy: B runs in a mount namespace of its
 * own (`ip netns exec` gives each command one) where its copy is bind-mounted
 * over the export path. So the test, outside, reads A's copy at the export
 * path and B's at `copyB`, and can compare the two trees byte for byte.
 */
import type { Test } from 'tap'
import type { ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT, TSNFS_ARGS } from '../cli/cli.ts'
import { snapshot } from '../server/replication/resync-fixtures.ts'
import type { Node } from '../server/replication/resync-fixtures.ts'
import { createLab } from './netns.ts'
import type { Lab } from './netns.ts'

/** A process in the lab: what it printed so far, and waits on it. */
export interface LabProcess {
  child: ChildProcess
  out: () => string
  err: () => string
  /** Resolves with the first match of `re` in stdout (or stderr) past `from` characters; rejects after `ms` or at exit. */
  wait: (re: RegExp, opts?: { stream?: 'stdout' | 'stderr'; ms?: number; from?: number }) => Promise<RegExpExecArray>
  exited: Promise<void>
}

export function labProcess(lab: Lab, host: string, argv: readonly string[], label: string): LabProcess {
  const child = lab.spawn(host, argv, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  let gone = false
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    gone = true
    resolve()
  }))
  const wait: LabProcess['wait'] = async (re, opts = {}) => {
    const end = Date.now() + (opts.ms ?? 60_000)
    const text = (): string => (opts.stream === 'stderr' ? err : out).slice(opts.from ?? 0)
    for (;;) {
      const m = re.exec(text())
      if (m !== null) return m
      if (gone || Date.now() > end) {
        throw new Error(`${label}: no ${String(re)} on ${opts.stream ?? 'stdout'} ${gone ? 'before it exited' : `within ${String(opts.ms ?? 60_000)} ms`}\nstdout: ${out.slice(-3000)}\nstderr: ${err.slice(-3000)}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return { child, out: () => out, err: () => err, wait, exited }
}

/** How many times `re` occurs in `text`. */
export function count(text: string, re: RegExp): number {
  return text.split(re).length - 1
}

export interface WriterResult {
  stable: number
  stale: number
  wrong: number
  files: Record<string, { size: number; sha256: string }>
}

export interface ReplLab {
  lab: Lab
  vip: string
  exportPath: string
  /** B's copy of the export (bind-mounted over exportPath in B's processes). */
  copyB: string
  stateA: string
  stateB: string
  replA: string
  replB: string
  /** `tsnfs serve` on A, sync, replicating to B; `extra` appended. */
  serveA: (extra?: string[]) => LabProcess
  /** `tsnfs standby` on B (its copy mounted over the export path); resolves once it listens. */
  standbyB: (extra?: string[]) => Promise<LabProcess>
  /** `tsnfs standby` on A (its own copy, the export path itself); resolves once it listens. */
  standbyA: (extra?: string[]) => Promise<LabProcess>
  /** The writer in the client host, through the service address; resolves once it has mounted. */
  writer: (seed: number) => Promise<LabProcess & { stop: () => Promise<WriterResult> }>
  tsnfs: (...args: string[]) => string[]
}

/**
 * Heartbeats as the tests want them: a partition noticed in seconds, not the default 5 s, yet a
 * timeout long enough that a starved process on a loaded CI machine is rarely taken for a dead one.
 */
export const HEARTBEAT_TIMEOUT_MS = 3000
export const HEARTBEAT = ['--heartbeat', '200', '--heartbeat-timeout', String(HEARTBEAT_TIMEOUT_MS)]

/**
 * Whether a sender's log (pino lines) says its standby is in the sync set now: every drop was
 * followed by a rejoin, and it joined once more than it was dropped.
 */
export function inSyncSet(log: string): boolean {
  return count(log, /standby joined the sync set/g) > count(log, /standby not answering; dropped from the sync set/g)
}

/** Polls `cond` every 50 ms for at most `ms`; resolves to whether it held. */
export async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 50))
  }
  return true
}

/** A removed-at-teardown directory (mkdtemp, not t.testdir(): the lab's processes must be gone first). */
function tempDir(t: Test, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => {
    // Retries: a SIGKILLed process may finish the write it was in after its lab is destroyed.
    rmSync(d, { recursive: true, force: true, maxRetries: 5 })
  })
  return d
}

export async function createReplLab(t: Test, subnet: string): Promise<ReplLab> {
  const exportPath = tempDir(t, 'tsnfs-lab-export-')
  const copyB = tempDir(t, 'tsnfs-lab-copy-b-')
  const conf = tempDir(t, 'tsnfs-lab-conf-')
  const stateA = tempDir(t, 'tsnfs-lab-a-')
  const stateB = tempDir(t, 'tsnfs-lab-b-')
  const lab = await createLab({ hosts: ['primary', 'standby', 'client'], subnet })
  // tap runs teardowns last registered first: the lab's processes are killed before their directories go.
  t.teardown(() => lab.destroy())
  const vip = lab.spareAddress(0)
  const exportsFile = join(conf, 'exports')
  writeFileSync(exportsFile, `${exportPath} *(rw,insecure,no_root_squash)\n`)
  const replA = `${lab.address('primary')}:7000`
  const replB = `${lab.address('standby')}:7000`
  const tsnfs = (...args: string[]): string[] => [process.execPath, ...TSNFS_ARGS, ...args]
  const vipArgs = ['--vip', `${vip}/${String(lab.prefix)}`, '--vip-dev', 'eth0']

  const serveA = (extra: string[] = []): LabProcess =>
    labProcess(lab, 'primary', tsnfs('serve', '--exports', exportsFile, '--port', '2049', '--state-dir', stateA, '--no-lock', '--admin', 'off',
      '--standby', replB, '--sync', ...HEARTBEAT, '--node', 'a', ...extra), 'A (serve)')
  const standbyB = async (extra: string[] = []): Promise<LabProcess> => {
    const argv = tsnfs('standby', '--listen', replB, '--exports', exportsFile, '--state-dir', stateB, '--port', '2049', '--node', 'b', ...vipArgs, ...extra)
    const p = labProcess(lab, 'standby', ['sh', '-c', 'mount --bind "$0" "$1" && shift && exec "$@"', copyB, exportPath, ...argv], 'B (standby)')
    await p.wait(/replication on/, { ms: 90_000 })
    return p
  }
  const standbyA = async (extra: string[] = []): Promise<LabProcess> => {
    const p = labProcess(lab, 'primary', tsnfs('standby', '--listen', replA, '--exports', exportsFile, '--state-dir', stateA, '--port', '2049', '--node', 'a', ...extra), 'A (standby)')
    await p.wait(/replication on/, { ms: 90_000 })
    return p
  }
  const writer = async (seed: number): Promise<LabProcess & { stop: () => Promise<WriterResult> }> => {
    const p = labProcess(lab, 'client', [process.execPath, '--import', 'tsx', join(ROOT, 'test/helpers/repl-writer.ts'), vip, '2049', exportPath, String(seed)], 'writer')
    const m = await p.wait(/mounted\n|ERROR ([^\n]*)/, { ms: 90_000 })
    if (m[1] !== undefined) throw new Error(`the writer failed to mount: ${m[1]}`)
    const stop = async (): Promise<WriterResult> => {
      p.child.stdin?.write('stop\n')
      const m = await p.wait(/RESULT (\{.*\})\n|ERROR ([^\n]*)/, { ms: 120_000 })
      if (m[2] !== undefined) throw new Error(`the writer failed: ${m[2]}\n${p.out().slice(-3000)}`)
      return JSON.parse(m[1] ?? '{}') as WriterResult
    }
    return { ...p, stop }
  }
  return { lab, vip, exportPath, copyB, stateA, stateB, replA, replB, serveA, standbyB, standbyA, writer, tsnfs }
}

/** The writer's `stable N MS` lines past `from` characters: N and MS of each. */
export function stableLines(out: string, from = 0): { n: number; ms: number }[] {
  return [...out.slice(from).matchAll(/^stable (\d+) (\d+)$/gm)].map((m) => ({ n: Number(m[1]), ms: Number(m[2]) }))
}

/** A MAC no host of a lab has (locally administered). */
const NOBODY = '02:00:00:00:be:ef'

/**
 * Lose every IP packet `host` sends to `addrs`, silently, as a broken path
 * would, while the other direction still passes: their neighbour entries in
 * `host` point at a MAC nobody has (the bridge floods the frames, no host
 * takes them). No tc classifier or firewall needed, only iproute2.
 */
export async function cutFrom(lab: Lab, host: string, addrs: readonly string[]): Promise<void> {
  for (const a of addrs) await lab.exec(host, ['ip', 'neigh', 'replace', a, 'lladdr', NOBODY, 'nud', 'permanent', 'dev', 'eth0'])
}

/** Undo cutFrom: the entries are removed, so the host asks ARP again. */
export async function healFrom(lab: Lab, host: string, addrs: readonly string[]): Promise<void> {
  for (const a of addrs) await lab.exec(host, ['ip', 'neigh', 'del', a, 'dev', 'eth0'])
}

const json = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))

/**
 * Polls until the trees under `a` and `b` are the same (type, mode, owner,
 * size, mtime, content, symlink targets, hard links: resync-fixtures.ts's
 * snapshot), at most `ms`; returns both snapshots of the last look either way,
 * for the test to compare (an acknowledged change may still be on its way
 * into the standby's backend when the client stops).
 */
export async function settledTrees(a: string, b: string, ms = 60_000): Promise<{ a: Record<string, Node>; b: Record<string, Node> }> {
  const end = Date.now() + ms
  for (;;) {
    const sa = snapshot(a)
    const sb = snapshot(b)
    if (json(sa) === json(sb) || Date.now() > end) return { a: sa, b: sb }
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** The names of `files` (a writer's RESULT) whose stable bytes are not at the start of that file under `root`. */
export function missingStable(root: string, files: WriterResult['files']): string[] {
  const missing: string[] = []
  for (const [name, f] of Object.entries(files)) {
    let data: Buffer
    try {
      data = readFileSync(join(root, name))
    } catch {
      missing.push(name)
      continue
    }
    if (createHash('sha256').update(data.subarray(0, f.size)).digest('hex') !== f.sha256) missing.push(name)
  }
  return missing
}
