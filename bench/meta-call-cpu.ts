/*
 * The server's own CPU per GETATTR and per LOOKUP (issue 13 item 7: nfsprobe's meta phases run
 * K=32 calls in flight, so their rate is the server's CPU per call once the client is fast
 * enough). A raw-RPC client (nfs-driver.ts) makes N files in one directory, then GETATTRs and
 * LOOKUPs each of them P times over (one untimed pass first), K at a time, against `node BUILD serve` of one export per backend;
 * the figure is the server process's user + system CPU (/proc/PID/stat) over a phase divided by
 * its calls, steadier under load than wall time. Backends and builds run in turn, rotating the
 * order each run; medians printed.
 *
 *   npx tsx bench/meta-call-cpu.ts [--runs R] [-N files] [-K inflight] [--reps P] [--backends memory,engine]
 *       [BUILD/dist/cli/main.js...]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
import { median } from './results.ts'
import { defaultExportsText, makeEngineImage, serveChild } from './targets.ts'
import { cpuOf } from './tree-procs.ts'

const ENGINE_IMAGE_BYTES = 1024 * 1024 * 1024

interface Phase { name: string; usPerCall: number; callsPerSec: number }

async function pool(k: number, n: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) await one(i)
  }
  await Promise.all(Array.from({ length: k }, worker))
}

async function run(entry: string, backend: string, n: number, k: number, reps: number): Promise<Phase[]> {
  const stateDir = await mkdtemp(join(tmpdir(), 'tsnfs-metacpu-'))
  const image = join(stateDir, 'engine.img')
  if (backend === 'engine') await makeEngineImage(image, ENGINE_IMAGE_BYTES)
  const exportsFile = join(stateDir, 'exports')
  await writeFile(exportsFile, defaultExportsText(backend, undefined, { image }))
  const { child, port } = await serveChild(entry, exportsFile, stateDir)
  const pid = child.pid ?? 0
  try {
    const d = await NfsDriver.connect(parseBenchUrl(`nfs://127.0.0.1/export?nfsport=${port}&mountport=${port}`))
    try {
      const dir = await d.mkdir(d.root, 'd')
      const handles: Buffer[] = []
      await pool(k, n, async (i) => { handles[i] = await d.create(dir, `f${i}`) })
      const phases: Phase[] = []
      const timed = async (name: string, one: (i: number) => Promise<void>): Promise<void> => {
        // One untimed pass first: the phase measures the server's steady path, not its JIT.
        await pool(k, n, one)
        const before = cpuOf(pid)
        const t0 = performance.now()
        // /proc/PID/stat counts 10 ms ticks: enough passes that a tick is a small part of the figure.
        for (let r = 0; r < reps; r++) await pool(k, n, one)
        const wall = (performance.now() - t0) / 1000
        phases.push({ name, usPerCall: ((cpuOf(pid) - before) * 1e6) / (n * reps), callsPerSec: (n * reps) / wall })
      }
      await timed('getattr', async (i) => {
        const r = await d.getattr(handles[i] ?? Buffer.alloc(0))
        if (r.status !== 0) throw new Error(`GETATTR: status ${r.status}`)
      })
      await timed('lookup', async (i) => { await d.lookup(dir, `f${i}`) })
      return phases
    } finally {
      await d.close()
    }
  } finally {
    const exited = new Promise((ok) => child.once('exit', ok))
    child.kill('SIGTERM')
    await exited
    await rm(stateDir, { recursive: true, force: true })
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string', default: '3' },
      N: { type: 'string', short: 'N', default: '5000' },
      K: { type: 'string', short: 'K', default: '32' },
      backends: { type: 'string', default: 'memory,engine' },
      reps: { type: 'string', default: '10' },
    },
  })
  const n = Number(values.N)
  const k = Number(values.K)
  const reps = Number(values.reps)
  const builds = positionals.length > 0 ? positionals : [resolve(import.meta.dirname, '..', 'dist', 'cli', 'main.js')]
  const combos = builds.flatMap(b => values.backends.split(',').map(be => ({ b, be })))
  const results = new Map<string, number[]>()
  console.log(`${n} files x ${reps} passes, ${k} in flight, ${values.runs} runs, rotating`)
  for (let r = 0; r < Number(values.runs); r++) {
    for (let j = 0; j < combos.length; j++) {
      const c = combos[(r + j) % combos.length]
      if (c === undefined) continue
      for (const p of await run(c.b, c.be, n, k, reps)) {
        const key = `${c.b} ${c.be} ${p.name}`
        results.set(key, [...(results.get(key) ?? []), p.usPerCall])
        console.log(`run ${r + 1}  ${key}  server CPU ${p.usPerCall.toFixed(1)} µs/call  ${Math.round(p.callsPerSec)} calls/s`)
      }
    }
  }
  for (const [key, xs] of results) console.log(`${key.padEnd(70)} median ${median(xs).toFixed(1)} µs/call`)
}

await main()
