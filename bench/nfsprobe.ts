/*
 * The independent client: nfsprobe, our C program on Debian's libnfs
 * (tools/nfsprobe, see its README.md), in its meta, seq and rand modes
 * against a URL; its JSON lines become PhaseResults. Unless --nfsprobe or
 * $NFSPROBE names another binary, it is built on first use into
 * tools/nfsprobe/nfsprobe (ignored by git), and rebuilt when a source is
 * newer; that needs gcc, pkg-config and libnfs-dev.
 */
import { execFile } from 'node:child_process'
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { PhaseResult } from './results.ts'
import type { Workload, WorkloadOptions } from './workloads.ts'

const exec = promisify(execFile)

export const NFSPROBE_WORKLOADS: ReadonlySet<Workload> = new Set<Workload>(['meta', 'seq', 'rand'])

/** tools/nfsprobe of the checkout this module runs from (bench/ under tsx, dist/bench/ when built). */
export function nfsprobeSourceDir(): string {
  const here = dirname(fileURLToPath(import.meta.url))
  const fromSource = resolve(here, '..', 'tools', 'nfsprobe')
  const fromDist = resolve(here, '..', '..', 'tools', 'nfsprobe')
  return existsSync(join(fromSource, 'probe.h')) || !existsSync(join(fromDist, 'probe.h')) ? fromSource : fromDist
}

const BUILT_IN = (): string => join(nfsprobeSourceDir(), 'nfsprobe')

export function defaultNfsprobe(): string {
  return process.env.NFSPROBE ?? BUILT_IN()
}

/**
 * Compile nfsprobe from `sourceDir` into `out` (through a temporary name, so
 * a half-written binary is never run). Resolves to the compiler's warnings,
 * which the tests require to be none.
 */
export async function buildNfsprobe(out: string, sourceDir = nfsprobeSourceDir()): Promise<string> {
  if (!existsSync(join(sourceDir, 'probe.h'))) throw new Error(`nfsprobe sources not found in ${sourceDir}: run from a checkout of tsnfs`)
  const sources = readdirSync(sourceDir).filter((f) => f.endsWith('.c')).sort().map((f) => join(sourceDir, f))
  let flags: string[]
  try {
    flags = (await exec('pkg-config', ['--cflags', '--libs', 'libnfs'])).stdout.trim().split(/\s+/).filter((f) => f !== '')
  } catch (err) {
    throw new Error('pkg-config does not know libnfs: apt-get install libnfs-dev pkg-config gcc', { cause: err })
  }
  const tmp = `${out}.tmp-${String(process.pid)}`
  try {
    const { stderr } = await exec('gcc', ['-O2', '-Wall', '-Wextra', '-o', tmp, ...sources, ...flags], { maxBuffer: 4 * 1024 * 1024 })
    renameSync(tmp, out)
    return stderr
  } catch (err) {
    rmSync(tmp, { force: true })
    const e = err as { stderr?: string; message: string }
    throw new Error(`building nfsprobe failed: ${e.stderr ?? e.message}`, { cause: err })
  }
}

/** The built-in binary, (re)built when missing or older than a source; any other path is used as given. */
export async function ensureNfsprobe(bin: string): Promise<void> {
  if (resolve(bin) !== BUILT_IN()) return
  const dir = nfsprobeSourceDir()
  const built = existsSync(bin) ? statSync(bin).mtimeMs : 0
  const newest = Math.max(...readdirSync(dir).filter((f) => /\.[ch]$/.test(f)).map((f) => statSync(join(dir, f)).mtimeMs))
  if (built < newest) await buildNfsprobe(bin, dir)
}

function argsFor(w: Workload, o: WorkloadOptions, stable: 'unstable' | 'filesync'): string[] {
  const common = ['-K', String(o.inflight), '-l', o.label]
  switch (w) {
    case 'meta': return [...common, '-N', String(o.files), 'meta']
    case 'seq': return [...common, '-S', String(o.sizeMiB), '-R', String(o.reqSize), '--stable', stable, 'seq']
    case 'rand': return [...common, '-S', String(o.sizeMiB), '-T', String(o.seconds), 'rand']
    default: throw new Error(`nfsprobe has no ${w} mode`)
  }
}

function runOnce(bin: string, args: string[]): Promise<PhaseResult[]> {
  return new Promise((ok, fail) => {
    execFile(bin, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const rows: PhaseResult[] = []
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue
        const j = JSON.parse(line) as Record<string, unknown>
        rows.push(fromProbe(j))
      }
      // Exit status 1 means "some phase had errors": the rows say which, so keep them.
      if (rows.length === 0 && err !== null) fail(new Error(`nfsprobe ${args.join(' ')}: ${err.message}\n${stderr}`))
      else ok(rows)
    })
  })
}

function num(j: Record<string, unknown>, k: string): number | undefined {
  const v = j[k]
  return typeof v === 'number' ? v : undefined
}

function fromProbe(j: Record<string, unknown>): PhaseResult {
  const mode = String(j.mode)
  const stable = typeof j.stable === 'string' ? j.stable : undefined
  let phase = String(j.phase)
  if (mode === 'seq' && stable !== undefined && stable !== 'unstable') phase += `-${stable.replace('_', '')}`
  const opt = (k: string): Partial<PhaseResult> => {
    const v = num(j, k)
    return v === undefined ? {} : { [k]: v }
  }
  return {
    tool: 'nfsprobe',
    mode,
    phase,
    label: typeof j.label === 'string' ? j.label : '',
    inflight: num(j, 'inflight') ?? 0,
    ops: num(j, 'ops') ?? 0,
    errors: num(j, 'errors') ?? 0,
    ...(typeof j.first_error === 'string' ? { first_error: j.first_error } : {}),
    secs: num(j, 'secs') ?? 0,
    ops_per_s: num(j, 'ops_per_s') ?? 0,
    lat_us_p50: num(j, 'lat_us_p50') ?? 0,
    lat_us_p99: num(j, 'lat_us_p99') ?? 0,
    ...opt('bytes'),
    ...(mode === 'meta' && phase !== 'readdirplus' ? {} : opt('mib_per_s')),
    ...opt('entries_per_s'),
    ...opt('req_size'),
    ...(stable === undefined ? {} : { stable }),
  }
}

/** One workload through nfsprobe (seq once per stability variant asked for). */
export async function runNfsprobe(bin: string, url: string, w: Workload, o: WorkloadOptions): Promise<PhaseResult[]> {
  if (!NFSPROBE_WORKLOADS.has(w)) return []
  await ensureNfsprobe(bin)
  const variants = w === 'seq' ? (o.stable === 'both' ? (['unstable', 'filesync'] as const) : [o.stable]) : (['unstable'] as const)
  const out: PhaseResult[] = []
  for (const s of variants) out.push(...(await runOnce(bin, [...argsFor(w, o, s), url])))
  return out
}
