/*
 * The scale model of the cluster backend (issue 17 §6), from fresh
 * measurements on this machine:
 *
 * 1. The database alone (`pg`, no tsnfs): a round trip (SELECT 1) and a
 *    committed single-row UPDATE, on 1 and 2 connections.
 * 2. One tsnfs server in this process, exporting a cluster file system on a
 *    fresh database (data=postgres), driven by `tsnfs bench` in a child
 *    process (the client's CPU is not ours). At the end of each phase the
 *    server's counters are read: database round trips and transactions
 *    (SqlDb.stats), this process's CPU time (the server's, the pg driver
 *    included) and the CPU time of the PostgreSQL backends serving it
 *    (/proc/PID/stat of the pids pg_stat_activity lists for the database).
 * 3. The projection: for a workload mix, throughput against servers (1..16)
 *    and database nodes, and the limit each configuration reaches first.
 *
 *   npx tsx bench/cluster-model.ts [--seconds 3] [--files 2000] [--inflight 32] [--json]
 *
 * TSNFS_PG_URL names the PostgreSQL (default the test one on 127.0.0.1:5432).
 * The assumptions of the projection are printed with the table; the README's
 * "Cluster backend" section explains them.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { createServer } from '../server/index.ts'
import type { BackendFactory } from '../server/backends.ts'
import { parseExports } from '../server/exports/parse.ts'
import { PgDb } from '../vfs/cluster/clients/pg-db.ts'
import { PgStore } from '../vfs/cluster/clients/pg-store.ts'
import { initCluster, readHandleKey } from '../vfs/cluster/init.ts'
import { openClusterVfs } from '../vfs/cluster/open.ts'
import type { PhaseResult } from './results.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const ADMIN_URL = process.env['TSNFS_PG_URL'] ?? 'postgres://postgres:tsnfs@127.0.0.1:5432/postgres'
const ORDER = ['meta/create', 'meta/getattr', 'meta/lookup', 'meta/readdirplus', 'meta/remove', 'mixed/mixed', 'seq/write', 'seq/read', 'seq/write-filesync', 'seq/read-filesync']
const TICK = 100 // USER_HZ: /proc/PID/stat counts CPU in 1/100 s

interface DbCost {
  conns: number
  selectPerS: number
  selectUs: number
  commitPerS: number
  commitUs: number
}

/** Back-to-back statements on `conns` connections for `secs` seconds: rate and mean latency. */
async function dbCost(url: string, conns: number, secs: number): Promise<DbCost> {
  const clients = await Promise.all(Array.from({ length: conns }, async () => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    return c
  }))
  try {
    await clients[0]?.query('CREATE TABLE IF NOT EXISTS model_counter (id int PRIMARY KEY, n bigint NOT NULL)')
    await clients[0]?.query('INSERT INTO model_counter SELECT g, 0 FROM generate_series(0, 15) g ON CONFLICT (id) DO NOTHING')
    const run = async (sql: (i: number) => [string, unknown[]]): Promise<{ perS: number; us: number }> => {
      let n = 0
      const end = performance.now() + secs * 1000
      const t0 = performance.now()
      await Promise.all(clients.map(async (c, i) => {
        while (performance.now() < end) {
          const [text, params] = sql(i)
          await c.query(text, params)
          n++
        }
      }))
      const s = (performance.now() - t0) / 1000
      return { perS: n / s, us: (s * 1e6 * conns) / n }
    }
    const sel = await run(() => ['SELECT 1', []])
    // One row per connection: commits, not lock waits, are measured (each is its own WAL flush).
    const upd = await run((i) => ['UPDATE model_counter SET n = n + 1 WHERE id = $1', [i]])
    return { conns, selectPerS: sel.perS, selectUs: sel.us, commitPerS: upd.perS, commitUs: upd.us }
  } finally {
    await Promise.all(clients.map((c) => c.end()))
  }
}

interface Sample {
  roundTrips: number
  transactions: number
  cpuUs: number
  dbCpuUs: number
}

interface PhaseCost {
  phase: string
  ops: number
  opsPerS: number
  rtPerOp: number
  txPerOp: number
  cpuUsPerOp: number
  dbCpuUsPerOp: number
}

function procCpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(f[11]) + Number(f[12])) * 1e6) / TICK
  } catch {
    return 0 // the backend exited
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      files: { type: 'string', default: '2000' },
      inflight: { type: 'string', default: '32' },
      json: { type: 'boolean', default: false },
    },
  })
  const secs = Number(values.seconds)
  const files = Number(values.files)
  const inflight = Number(values.inflight)
  const log = (s: string): void => { process.stderr.write(`${s}\n`) }

  const name = `tsnfs_model_${process.pid}`
  const admin = new pg.Client({ connectionString: ADMIN_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const url = new URL(ADMIN_URL)
  url.pathname = `/${name}`
  const state = mkdtempSync(join(tmpdir(), 'tsnfs-model-'))
  const dbs: PgDb[] = []
  try {
    log('database alone: SELECT 1 and UPDATE commit, 1, 2 and 8 connections')
    // 8 connections besides the brief's 1 and 2: commits then share WAL flushes (group commit).
    const costs = [await dbCost(url.toString(), 1, secs), await dbCost(url.toString(), 2, secs), await dbCost(url.toString(), 8, secs)]

    const db = new PgDb({ url: url.toString() })
    dbs.push(db)
    await initCluster(db, { data: 'postgres' })
    const store = new PgStore(db)
    await store.init()
    const key = await readHandleKey(db)
    // The real backend minus the error mapping, on a PgDb this script can read the counters of.
    const factories = new Map<string, BackendFactory>([['cluster', async (exp, ctx) => {
      const vfs = await openClusterVfs({ db, store, exportPath: exp.path, exportId: exp.id, heartbeatMs: 60_000 })
      ctx.clusterKeys?.set(exp.id, {}, key)
      return vfs
    }]])
    const text = `/model *(rw,insecure,no_root_squash,async,backend=cluster,meta=postgres://postgres@127.0.0.1/${name},data=postgres)\n`
    const server = await createServer({ exports: parseExports(text, 'exports'), stateDir: state, port: 0, host: '127.0.0.1', locking: false, backends: factories })
    // PostgreSQL backends come and go with the pool: each pid's CPU as last seen, so the sum never drops.
    const backendCpu = new Map<number, number>()
    const sample = async (): Promise<Sample> => {
      const pids = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name])
      for (const r of pids.rows) {
        const us = procCpuUs(r.pid)
        if (us > 0) backendCpu.set(r.pid, us)
      }
      const cpu = process.cpuUsage()
      const st = db.stats()
      return { roundTrips: st.roundTrips, transactions: st.transactions, cpuUs: cpu.user + cpu.system, dbCpuUs: [...backendCpu.values()].reduce((n, x) => n + x, 0) }
    }
    const phases: PhaseCost[] = []
    const target = `nfs://127.0.0.1/model?nfsport=${server.port}&mountport=${server.port}`
    try {
      for (const workload of [['meta', '-N', String(files)], ['mixed', '-T', String(secs)], ['seq', '-S', '16', '--stable', 'both']]) {
        log(`tsnfs bench ${workload.join(' ')} against one server`)
        // The child reports a workload's phases together when the workload ends: the counters are
        // sampled every 100 ms, and each phase's share is read off at its start and end, counted
        // back from the report by the phases' own durations (they run back to back).
        const series: { at: number; s: Sample }[] = []
        const sampling = new AbortController()
        const sampler = (async (): Promise<void> => {
          while (!sampling.signal.aborted) {
            series.push({ at: performance.now(), s: await sample() })
            await new Promise((resolve) => setTimeout(resolve, 100))
          }
        })()
        const reports: { at: number; r: PhaseResult }[] = []
        await new Promise<void>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/main.ts'), 'bench', '--target', target, '--json', '-K', String(inflight), ...workload], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
          let buf = ''
          child.stdout.on('data', (d: Buffer) => {
            const at = performance.now()
            buf += d.toString()
            let nl
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl)
              buf = buf.slice(nl + 1)
              if (line.startsWith('{')) reports.push({ at, r: JSON.parse(line) as PhaseResult })
            }
          })
          child.on('error', reject)
          child.on('exit', (code) => {
            if (code === 0) resolve()
            else reject(new Error(`tsnfs bench exited ${String(code)}`))
          })
        })
        sampling.abort()
        await sampler
        const at = (t: number): Sample => {
          let best = series[0]
          for (const x of series) if (Math.abs(x.at - t) < Math.abs((best?.at ?? Infinity) - t)) best = x
          if (best === undefined) throw new Error('no samples')
          return best.s
        }
        let end = reports[0]?.at ?? performance.now()
        for (let i = reports.length - 1; i >= 0; i--) {
          const r = reports[i]?.r
          if (r === undefined) continue
          const start = end - r.secs * 1000
          const a = at(start)
          const b = at(end)
          const ops = Math.max(1, r.ops)
          phases.push({
            phase: `${r.mode}/${r.phase}`, ops: r.ops, opsPerS: r.ops_per_s,
            rtPerOp: (b.roundTrips - a.roundTrips) / ops, txPerOp: (b.transactions - a.transactions) / ops,
            cpuUsPerOp: (b.cpuUs - a.cpuUs) / ops, dbCpuUsPerOp: (b.dbCpuUs - a.dbCpuUs) / ops,
          })
          end = start
        }
      }
    } finally {
      await server.close()
    }
    report(costs, phases.sort((x, y) => ORDER.indexOf(x.phase) - ORDER.indexOf(y.phase)), values.json)
  } finally {
    for (const d of dbs) await d.close()
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
    rmSync(state, { recursive: true, force: true })
  }
}

/** The mix the projection is for: the bench's `mixed` phase as measured (40 % GETATTR, 20 % LOOKUP, 20 % READ, 10 % WRITE, 5 % CREATE, 5 % REMOVE). */
function report(costs: DbCost[], phases: PhaseCost[], json: boolean): void {
  const f = (x: number, d = 1): string => (Number.isFinite(x) ? (x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(d)) : '-')
  const out: string[] = []
  out.push('## Measured: the database alone (pg, loopback)')
  out.push('| connections | SELECT 1 /s | round trip µs | UPDATE commits /s | commit µs |')
  out.push('|---|---|---|---|---|')
  for (const c of costs) out.push(`| ${c.conns} | ${f(c.selectPerS)} | ${f(c.selectUs)} | ${f(c.commitPerS)} | ${f(c.commitUs)} |`)
  out.push('')
  out.push('## Measured: one server, per NFS operation (cluster backend, data=postgres)')
  out.push('| phase | ops/s | DB round trips/op | DB transactions/op | server CPU µs/op | PostgreSQL CPU µs/op |')
  out.push('|---|---|---|---|---|---|')
  for (const p of phases) out.push(`| ${p.phase} | ${f(p.opsPerS)} | ${f(p.rtPerOp, 2)} | ${f(p.txPerOp, 2)} | ${f(p.cpuUsPerOp)} | ${f(p.dbCpuUsPerOp)} |`)
  const mix = phases.find((p) => p.phase === 'mixed/mixed')
  const one = costs[0]
  if (mix === undefined || one === undefined) {
    process.stdout.write(`${out.join('\n')}\n`)
    return
  }
  // Writes among the mix's statements: WRITE, CREATE and REMOVE are 20 % of its operations.
  const writeShare = 0.2
  const A = {
    serverCores: 1, // one event loop per server process (run one process per core)
    dbCores: 2, // the cores of a database node, like this machine's
    inflightPerServer: 64, // requests in flight per server (clients × their outstanding RPCs)
    replication: 3, // CockroachDB-style: every write is committed on 3 replicas
    consensusUs: 500, // one Raft round between nodes in one zone, added to each write commit
    scaleEfficiency: 0.8, // what each added node gives of a node's throughput (range splits, hot ranges)
  }
  const serverLimit = (s: number): number => (s * A.serverCores * 1e6) / mix.cpuUsPerOp
  // PostgreSQL: one primary takes every statement. Its CPU per op was measured with it on the same 2 cores as the server.
  const pgCpuLimit = (A.dbCores * 1e6) / Math.max(1, mix.dbCpuUsPerOp)
  const commitsPerOp = Math.max(mix.txPerOp, writeShare)
  // Group commit: the best measured rate (many servers' pools are many sessions sharing WAL flushes).
  const commitRate = Math.max(...costs.map((c) => c.commitPerS))
  const pgCommitLimit = commitRate / commitsPerOp
  const latencyUs = (extraPerWrite: number): number => mix.rtPerOp * one.selectUs + commitsPerOp * (one.commitUs - one.selectUs + extraPerWrite) + mix.cpuUsPerOp
  const latencyLimit = (s: number, extra: number): number => (s * A.inflightPerServer * 1e6) / latencyUs(extra)
  const rows: string[][] = []
  const pick = (limits: [string, number][]): [string, number] => limits.reduce((a, b) => (b[1] < a[1] ? b : a))
  for (const s of [1, 2, 4, 8, 16]) {
    const [what, v] = pick([['server CPU', serverLimit(s)], ['DB CPU', pgCpuLimit], ['DB commits/s', pgCommitLimit], ['DB latency × in-flight', latencyLimit(s, 0)]])
    rows.push([String(s), 'PostgreSQL, 1 primary', f(v, 0), what])
  }
  for (const d of [3, 6, 12]) {
    const eff = d * A.scaleEfficiency
    // Reads spread over all nodes; each write costs `replication` nodes' work.
    const cpuPerOp = mix.dbCpuUsPerOp * ((1 - writeShare) + writeShare * A.replication)
    const dbCpu = (eff * A.dbCores * 1e6) / Math.max(1, cpuPerOp)
    const commits = (eff * commitRate) / A.replication / commitsPerOp
    for (const s of [1, 4, 16]) {
      const [what, v] = pick([['server CPU', serverLimit(s)], ['DB CPU', dbCpu], ['DB commits/s', commits], ['DB latency × in-flight', latencyLimit(s, A.consensusUs)]])
      rows.push([String(s), `CockroachDB-style, ${d} nodes`, f(v, 0), what])
    }
  }
  out.push('')
  out.push(`## Projected: the mixed workload (${f(mix.rtPerOp, 2)} round trips, ${f(commitsPerOp, 2)} commits, ${f(mix.cpuUsPerOp)} µs server CPU, ${f(mix.dbCpuUsPerOp)} µs PostgreSQL CPU per op)`)
  out.push(`Assumptions: ${JSON.stringify(A)}; writes are ${writeShare * 100} % of the mix's operations.`)
  out.push('| servers | database | ops/s | first limit |')
  out.push('|---|---|---|---|')
  for (const r of rows) out.push(`| ${r.join(' | ')} |`)
  out.push('')
  out.push(`Limits: server CPU ${f(serverLimit(1), 0)} ops/s per server; PostgreSQL CPU ${f(pgCpuLimit, 0)} ops/s; commits ${f(pgCommitLimit, 0)} ops/s; latency ${f(latencyUs(0), 0)} µs per op (${f(latencyLimit(1, 0), 0)} ops/s per server at ${A.inflightPerServer} in flight).`)
  process.stdout.write(`${out.join('\n')}\n`)
  if (json) process.stdout.write(`${JSON.stringify({ costs, phases, assumptions: A })}\n`)
}

await main()
