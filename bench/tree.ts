/*
 * The `tree` workload (issue 11 point 3): everyday commands on a real source
 * tree with node_modules, run on a host directory and through `tsnfs mount`
 * of a local export and of a memory export, in the same run, alternating
 * the order of the three each run. Per command and target: median seconds,
 * entries per second and the ratio to the host directory; the server's and
 * the mount daemons' resident memory; the CPU time the server and the mount
 * daemon spent per entry (what to compare when the load moves the wall
 * clock); with --calls, NFS calls per entry; with --requests, FUSE requests
 * per entry (the mount daemons log at info into the work directory and
 * are asked with SIGUSR2, which a daemon older than session 40 does not
 * handle: it would die of it, so not with --tsnfs of such a build).
 * --warmup N first runs every command on every target N times unmeasured
 * (one server and one mount per target live through the whole invocation).
 *
 *   npm run build && npx tsx bench/tree.ts [--full] [--runs 3] [--warmup N] [--calls] [--requests] [--only cp,tar,...]
 *     [--targets host,local,memory] [--export-opts async] [--mount-opts OPTS]
 *     [--tsnfs OTHER/dist/cli/main.js] [--server-node-args '--cpu-prof …'] [--mount-node-args …]
 *
 * The tree: this repository's tracked files plus, by default, node_modules
 * of its runtime dependencies (~2,000 entries, ~10 MB); --full takes all of
 * node_modules (~18,800 entries, ~235 MB). Commands, each timed alone
 * after a `sync`: cp -a, tar x (of a tar of the tree), rsync -a, git clone
 * (file:// of a bare clone of this repository: index-pack and checkout), and
 * rm -rf of all four results.
 *
 * Export options (stated with the figures): the local export is
 * `DIR *(rw,insecure,no_root_squash)`, the memory export `/mem
 * *(rw,insecure,no_root_squash,backend=memory)`: the defaults (sync,
 * root_squash off so that root's cp -a may chown). --export-opts adds
 * options to both (e.g. async). Mounts use tsnfs mount's defaults.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { callDiff, cpuOf, fuseRequests, mount, nfsCalls, rssOf, startServer, tsnfsEntry, useEntry } from './tree-procs.ts'
import type { MountProc } from './tree-procs.ts'

const ROOT = resolve(import.meta.dirname, '..')
const RUNTIME_DEPS = ['@sinclair', 'lru-cache', 'pino']
const COMMANDS = ['cp', 'tar', 'rsync', 'git', 'rm'] as const
type Command = (typeof COMMANDS)[number]

interface Target {
  name: string
  dir: string
  mount: MountProc | null
  /** The mount daemon's log (--requests). */
  log: string | null
}

interface Sample {
  seconds: number
  entries: number
  calls: Map<string, number> | null
  /** FUSE requests the target's mount daemon received during the command (--requests). */
  requests: Map<string, number> | null
  /** CPU seconds the server and the target's mount daemon spent on the command (mount targets only). */
  cpu: { server: number; daemon: number } | null
}

function sh(cmd: string, env: Record<string, string> = {}): void {
  const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 })
  if (r.status !== 0) throw new Error(`${cmd}: exit ${String(r.status)}: ${r.stderr.trim().slice(0, 2000)}`)
}

/** Entries below dir (files, directories, links), dir itself not counted. */
function countEntries(dir: string): number {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    n++
    if (e.isDirectory()) n += countEntries(join(dir, e.name))
  }
  return n
}

/** The source tree (tracked files + node_modules), its tar, and a bare clone of the repository. */
function prepareSources(work: string, full: boolean): { src: string; tar: string; bare: string; entries: number } {
  const src = join(work, 'src')
  mkdirSync(src)
  const listed = spawnSync('git', ['-C', ROOT, 'ls-files', '-z'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })
  if (listed.status !== 0) throw new Error('git ls-files failed: the tree benchmark runs in a git checkout')
  writeFileSync(join(work, 'files'), listed.stdout)
  sh(`tar -C "${ROOT}" --null -T "${work}/files" -cf - | tar -C "${src}" -xf -`)
  const modules = full ? readdirSync(join(ROOT, 'node_modules')).filter(n => n !== '.bin' && n !== '.package-lock.json') : RUNTIME_DEPS
  mkdirSync(join(src, 'node_modules'))
  for (const m of modules) if (existsSync(join(ROOT, 'node_modules', m))) sh(`cp -a "${join(ROOT, 'node_modules', m)}" "${join(src, 'node_modules')}/"`)
  const tar = join(work, 'src.tar')
  sh(`tar -C "${src}" -cf "${tar}" .`)
  const bare = join(work, 'src.git')
  sh(`git clone -q --bare "${ROOT}" "${bare}"`)
  return { src, tar, bare, entries: countEntries(src) }
}

function commandLine(c: Command, d: string, s: { src: string; tar: string; bare: string }): string {
  switch (c) {
    case 'cp':
      return `cp -a "${s.src}" "${d}/cp"`
    case 'tar':
      return `mkdir "${d}/tar" && tar -C "${d}/tar" -xf "${s.tar}"`
    case 'rsync':
      return `rsync -a "${s.src}/" "${d}/rsync/"`
    case 'git':
      return `git clone -q "file://${s.bare}" "${d}/git"`
    case 'rm':
      return `rm -rf "${d}/cp" "${d}/tar" "${d}/rsync" "${d}/git"`
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      full: { type: 'boolean', default: false },
      runs: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '0' },
      calls: { type: 'boolean', default: false },
      requests: { type: 'boolean', default: false },
      only: { type: 'string' },
      targets: { type: 'string', default: 'host,local,memory' },
      'export-opts': { type: 'string', default: '' },
      'mount-opts': { type: 'string', default: '' },
      'server-node-args': { type: 'string' },
      'mount-node-args': { type: 'string' },
      work: { type: 'string' },
      tsnfs: { type: 'string' },
    },
  })
  if (values.tsnfs !== undefined) useEntry(values.tsnfs)
  const runs = Number(values.runs)
  const warmup = Number(values.warmup)
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`--warmup: a count of passes, not ${values.warmup}`)
  const only = values.only === undefined ? [...COMMANDS] : values.only.split(',').map(s => s.trim()) as Command[]
  for (const c of only) if (!COMMANDS.includes(c)) throw new Error(`--only: unknown command ${c} (${COMMANDS.join(', ')})`)
  // rm -rf removes what the others made; cleaning up after a partial list happens untimed.
  const commands = COMMANDS.filter(c => only.includes(c))
  const wanted = values.targets.split(',')
  const work = values.work ?? mkdtempSync(join(tmpdir(), 'tsnfs-tree-'))
  mkdirSync(work, { recursive: true })
  const s = prepareSources(work, values.full)
  const extra = values['export-opts'] === '' ? '' : `,${values['export-opts']}`
  const localExport = join(work, 'export')
  mkdirSync(localExport)
  const exportsText = `${localExport} *(rw,insecure,no_root_squash${extra})\n/mem *(rw,insecure,no_root_squash${extra},backend=memory)\n`
  writeFileSync(join(work, 'exports'), exportsText)
  mkdirSync(join(work, 'state'))
  // A signal ends the run between two commands, cleaning up (unmounting) on the way out.
  let stop: string | null = null
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { stop = sig })
  const check = (): void => {
    if (stop !== null) throw new Error(`stopped by ${stop}`)
  }
  const server = await startServer(join(work, 'exports'), join(work, 'state'), values['server-node-args'])
  const targets: Target[] = []
  try {
    for (const name of wanted) {
      const dir = join(work, `on-${name}`)
      mkdirSync(dir)
      if (name === 'host') targets.push({ name, dir, mount: null, log: null })
      else if (name === 'local' || name === 'memory') {
        const log = values.requests ? join(work, `mount-${name}.log`) : null
        targets.push({ name, dir, log, mount: mount(server.port, name === 'local' ? localExport : '/mem', dir, values['mount-opts'], values['mount-node-args'], log ?? undefined) })
      } else throw new Error(`--targets: unknown target ${name} (host, local, memory)`)
    }
    process.stdout.write(`tree: ${fmt(s.entries)} entries (${values.full ? 'repository + all of node_modules' : `repository + node_modules/{${RUNTIME_DEPS.join(',')}}`}), ${runs} runs after ${warmup} unmeasured, load average ${loadavg().map(l => l.toFixed(2)).join(' ')}\n`)
    process.stdout.write(`tsnfs: ${tsnfsEntry()}\n`)
    process.stdout.write(`exports: ${exportsText.trim().split('\n').join(' | ')}; mount options: ${values['mount-opts'] === '' ? 'defaults' : values['mount-opts']}\n\n`)
    const samples = new Map<string, Sample[]>()
    // Runs below 0 are the warm-up (--warmup): every command on every target, checked but not
    // counted, so that the measured runs meet a server and mount daemons whose code V8 has
    // optimized already (as after a few minutes of use), not one compiling its hot paths.
    for (let r = -warmup; r < runs; r++) {
      // Alternate: each run starts with the next target.
      const order = targets.map((_, i) => targets[(((i + r) % targets.length) + targets.length) % targets.length] as Target)
      for (const t of order) {
        let made = 0
        for (const c of commands) {
          check()
          sh('sync')
          const before = values.calls && t.mount !== null ? await nfsCalls(server.metricsPort) : null
          const daemonPid = t.mount?.pid ?? 0
          const requests0 = t.log === null ? null : await fuseRequests(daemonPid, t.log)
          const cpu0 = t.mount === null ? null : { server: cpuOf(server.pid), daemon: cpuOf(daemonPid) }
          const t0 = process.hrtime.bigint()
          sh(commandLine(c, t.dir, s))
          const seconds = Number(process.hrtime.bigint() - t0) / 1e9
          const cpu = cpu0 === null ? null : { server: cpuOf(server.pid) - cpu0.server, daemon: cpuOf(daemonPid) - cpu0.daemon }
          const calls = before === null ? null : callDiff(before, await nfsCalls(server.metricsPort))
          const requests = requests0 === null || t.log === null ? null : callDiff(requests0, await fuseRequests(daemonPid, t.log))
          const entries = c === 'rm' ? made : c === 'git' ? countEntries(join(t.dir, 'git')) : s.entries
          if (c !== 'rm') made += entries
          if (c === 'cp' || c === 'tar' || c === 'rsync') {
            const got = countEntries(join(t.dir, c))
            if (got !== s.entries) throw new Error(`${t.name} ${c}: ${String(got)} entries, the source has ${String(s.entries)}`)
          }
          const key = `${t.name}/${c}`
          if (r >= 0) samples.set(key, [...(samples.get(key) ?? []), { seconds, entries, calls, requests, cpu }])
          process.stdout.write(`${r >= 0 ? `run ${String(r + 1)}` : 'warm '} ${t.name.padEnd(6)} ${c.padEnd(5)} ${seconds.toFixed(3).padStart(8)} s ${fmt(entries / seconds).padStart(8)} entries/s\n`)
        }
        if (!commands.includes('rm')) sh(commandLine('rm', t.dir, s))
        if (countEntries(t.dir) !== 0) throw new Error(`${t.dir} not empty after rm -rf`)
      }
    }
    const mem = { server: rssOf(server.pid), mounts: targets.filter(t => t.mount !== null).map(t => ({ name: t.name, ...rssOf(t.mount?.pid ?? 0) })) }
    report(commands, targets, samples, runs)
    process.stdout.write(`\nresident memory at the end: server ${fmt(mem.server.rssMiB)} MiB (peak ${fmt(mem.server.peakMiB)})`)
    for (const m of mem.mounts) process.stdout.write(`, mount daemon ${m.name} ${fmt(m.rssMiB)} MiB (peak ${fmt(m.peakMiB)})`)
    process.stdout.write(`\nload average at the end ${loadavg().map(l => l.toFixed(2)).join(' ')}\n`)
  } finally {
    for (const t of targets) await t.mount?.stop()
    await server.stop()
    if (values.work === undefined) rmSync(work, { recursive: true, force: true })
  }
}

function report(commands: readonly Command[], targets: Target[], samples: Map<string, Sample[]>, runs: number): void {
  const host = targets.some(t => t.name === 'host')
  process.stdout.write(`\nmedians of ${String(runs)} runs${host ? '; ratio = target / host (median of the per-run ratios; ratio of the medians in brackets)' : ''}\n`)
  process.stdout.write(`| command | target | seconds | entries/s | ratio to host |\n|---|---|---:|---:|---:|\n`)
  for (const c of commands) {
    const h = samples.get(`host/${c}`) ?? []
    for (const t of targets) {
      const xs = samples.get(`${t.name}/${c}`) ?? []
      const sec = median(xs.map(x => x.seconds))
      const rate = median(xs.map(x => x.entries / x.seconds))
      const ratio = t.name === 'host' || h.length !== xs.length ? '' : `${median(xs.map((x, i) => x.seconds / (h[i]?.seconds ?? 1))).toFixed(1)}× (${(sec / median(h.map(x => x.seconds))).toFixed(1)}×)`
      process.stdout.write(`| ${c} | ${t.name} | ${sec.toFixed(2)} | ${fmt(rate)} | ${ratio} |\n`)
    }
  }
  const mounted = targets.filter(t => t.mount !== null)
  if (mounted.length > 0) {
    process.stdout.write(`\nCPU µs per entry (medians): server + mount daemon, the figure to compare when the load moves the seconds\n`)
    process.stdout.write(`| command | target | server | daemon | both |\n|---|---|---:|---:|---:|\n`)
    const us = (xs: Sample[], f: (c: { server: number; daemon: number }) => number): number => median(xs.map(x => (x.cpu === null ? 0 : f(x.cpu)) / x.entries * 1e6))
    for (const c of commands) {
      for (const t of mounted) {
        const xs = samples.get(`${t.name}/${c}`) ?? []
        process.stdout.write(`| ${c} | ${t.name} | ${fmt(us(xs, x => x.server))} | ${fmt(us(xs, x => x.daemon))} | ${fmt(us(xs, x => x.server + x.daemon))} |\n`)
      }
    }
  }
  perEntry('NFS calls per entry (last run)', samples, x => x.calls)
  perEntry('FUSE requests per entry (last run)', samples, x => x.requests)
}

/** Counts per entry of each command's last run, by kind, largest first. */
function perEntry(title: string, samples: Map<string, Sample[]>, counts: (x: Sample) => Map<string, number> | null): void {
  const rows = [...samples.entries()].filter(([, xs]) => xs[0] !== undefined && counts(xs[0]) !== null)
  if (rows.length === 0) return
  process.stdout.write(`\n${title}\n`)
  for (const [key, xs] of rows) {
    const last = xs[xs.length - 1]
    const c = last === undefined ? null : counts(last)
    if (last === undefined || c === null) continue
    const total = [...c.values()].reduce((a, b) => a + b, 0)
    const parts = [...c].sort((a, b) => b[1] - a[1]).map(([p, n]) => `${p} ${(n / last.entries).toFixed(2)}`)
    process.stdout.write(`  ${key.padEnd(14)} ${(total / last.entries).toFixed(2)}: ${parts.join(', ')}\n`)
  }
}

await main()
