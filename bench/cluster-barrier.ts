/*
 * What the close-to-open barrier costs (vfs/cluster/clients/feed.ts): GETATTR
 * of a cached node on a cluster server in cache mode 'notify' that waits for
 * a barrier on its LISTEN connection before answering ("barrier", what tsnfs
 * does) against one that answers from its cache at once ("no barrier", the
 * behaviour before: its feed's barrier is replaced by one that returns at
 * once). Both are servers on one fresh database, in this process, called
 * through the Vfs (no NFS layer: the difference is the barrier alone).
 * Interleaved rounds (round i measures both), medians printed with the ratio.
 *
 *   npx tsx bench/cluster-barrier.ts [--runs 3] [--n 2000] [--seconds 2] [--inflight 32] [--stale 200]
 *   npx tsx bench/cluster-barrier.ts --nfs [--runs 3] [--files 1000] [--inflight 32]
 *
 * Phases: latency (n GETATTRs one after another: p50, p99), throughput
 * (`inflight` GETATTRs always in flight for `seconds`: ops/s and barriers per
 * operation), stale answers (`stale` rounds of SETATTR mode on a third server,
 * then at once GETATTR on each: how many answered the old mode).
 * With --nfs: the same two servers behind two NFS servers in this process,
 * and `tsnfs bench meta --compare` (a child process) against them: the
 * metadata phases through NFS, interleaved, medians and ratios as it prints.
 * TSNFS_PG_URL names the PostgreSQL (default the test one on 127.0.0.1:5432).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
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
import type { ClusterVfs } from '../vfs/cluster/cluster-vfs.ts'
import { initCluster, readHandleKey } from '../vfs/cluster/init.ts'
import { openClusterVfs } from '../vfs/cluster/open.ts'
import type { SqlDb } from '../vfs/cluster/sql.ts'
import type { FileRef } from '../vfs/types.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const ADMIN_URL = process.env['TSNFS_PG_URL'] ?? 'postgres://postgres:tsnfs@127.0.0.1:5432/postgres'

/** `db` whose feeds vouch for the cache at once: the server answers as it did before the barrier. */
function withoutBarrier(db: SqlDb): SqlDb {
  return {
    transaction: (fn, opts) => db.transaction(fn, opts),
    query: (text, params) => db.query(text, params),
    listen: async (channel, onPayload, onLost) => {
      const feed = await db.listen(channel, onPayload, onLost)
      return { barrier: () => Promise.resolve(true), stop: () => feed.stop() }
    },
    stats: () => db.stats(),
    close: () => db.close(),
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN

async function latency(vfs: ClusterVfs, f: FileRef, n: number): Promise<{ p50: number; p99: number }> {
  const us: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await vfs.getattr(f)
    us.push((performance.now() - t0) * 1000)
  }
  return { p50: pct(us, 0.5), p99: pct(us, 0.99) }
}

async function throughput(vfs: ClusterVfs, db: PgDb, f: FileRef, inflight: number, secs: number): Promise<{ opsPerS: number; barriersPerOp: number }> {
  const b0 = db.stats().barriers
  let n = 0
  const end = performance.now() + secs * 1000
  const t0 = performance.now()
  await Promise.all(Array.from({ length: inflight }, async () => {
    while (performance.now() < end) {
      await vfs.getattr(f)
      n++
    }
  }))
  return { opsPerS: n / ((performance.now() - t0) / 1000), barriersPerOp: (db.stats().barriers - b0) / n }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      n: { type: 'string', default: '2000' },
      seconds: { type: 'string', default: '2' },
      inflight: { type: 'string', default: '32' },
      stale: { type: 'string', default: '200' },
      nfs: { type: 'boolean', default: false },
      files: { type: 'string', default: '1000' },
    },
  })
  const runs = Number(values.runs)
  const name = `tsnfs_barrier_${process.pid}`
  const admin = new pg.Client({ connectionString: ADMIN_URL })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const url = new URL(ADMIN_URL)
  url.pathname = `/${name}`
  const dbs: PgDb[] = []
  const vfss: ClusterVfs[] = []
  try {
    const open = async (wrap: (db: SqlDb) => SqlDb): Promise<{ vfs: ClusterVfs; db: PgDb }> => {
      const db = new PgDb({ url: url.toString() })
      dbs.push(db)
      const vfs = await openClusterVfs({ db: wrap(db), store: new PgStore(db), exportPath: '/shared', exportId: 1, heartbeatMs: 60_000 })
      vfss.push(vfs)
      return { vfs, db }
    }
    const first = new PgDb({ url: url.toString(), max: 2 })
    await initCluster(first, { data: 'postgres' })
    await new PgStore(first).init()
    await first.close()
    if (values.nfs) {
      await throughNfs(url.toString(), name, runs, Number(values.files), Number(values.inflight), open)
      return
    }
    const writer = await open((db) => db)
    const variants = [{ name: 'barrier', ...await open((db) => db) }, { name: 'no barrier', ...await open(withoutBarrier) }]
    const made = await writer.vfs.create(writer.vfs.root(), Buffer.from('f'), { how: 'guarded', attr: { mode: 0o644 } }, { uid: 0, gid: 0 })
    const f = made.ref
    const results = new Map<string, { p50: number[]; p99: number[]; opsPerS: number[]; barriersPerOp: number[]; stale: number[] }>()
    for (const v of variants) results.set(v.name, { p50: [], p99: [], opsPerS: [], barriersPerOp: [], stale: [] })
    for (let run = 0; run < runs; run++) {
      for (const v of variants) {
        const r = results.get(v.name)
        if (r === undefined) continue
        await v.vfs.getattr(f)
        const l = await latency(v.vfs, f, Number(values.n))
        const tp = await throughput(v.vfs, v.db, f, Number(values.inflight), Number(values.seconds))
        r.p50.push(l.p50)
        r.p99.push(l.p99)
        r.opsPerS.push(tp.opsPerS)
        r.barriersPerOp.push(tp.barriersPerOp)
      }
      // Stale answers: both servers asked at once after each change, so both see the same window.
      const stale = new Map(variants.map((v) => [v.name, 0]))
      for (let i = 0; i < Number(values.stale); i++) {
        const mode = 0o600 + (i % 64)
        await writer.vfs.setattr(f, { mode })
        const got = await Promise.all(variants.map((v) => v.vfs.getattr(f)))
        got.forEach((a, j) => { const n = variants[j]?.name ?? ''; if (a.mode !== mode) stale.set(n, (stale.get(n) ?? 0) + 1) })
      }
      for (const v of variants) results.get(v.name)?.stale.push(stale.get(v.name) ?? 0)
      process.stderr.write(`run ${run + 1}/${runs} done\n`)
    }
    const base = results.get('barrier')
    console.log(`| server | GETATTR p50 µs | p99 µs | ops/s (${values.inflight} in flight) | barriers/op | stale of ${values.stale} |`)
    console.log('|---|---|---|---|---|---|')
    for (const [n, r] of results) {
      console.log(`| ${n} | ${median(r.p50).toFixed(0)} | ${median(r.p99).toFixed(0)} | ${median(r.opsPerS).toFixed(0)} | ${median(r.barriersPerOp).toFixed(3)} | ${r.stale.join(', ')} |`)
    }
    const nb = results.get('no barrier')
    if (base !== undefined && nb !== undefined) {
      console.log(`barrier / no barrier: p50 ${(median(base.p50) / median(nb.p50)).toFixed(1)}x, ops/s ${(median(base.opsPerS) / median(nb.opsPerS)).toFixed(2)}x (medians of ${runs} runs)`)
    }
  } finally {
    for (const v of vfss) await v.close().catch(() => undefined)
    for (const db of dbs) await db.close().catch(() => undefined)
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
}

/** Two NFS servers, with and without the barrier, and `tsnfs bench meta --compare` against them. */
async function throughNfs(
  url: string, name: string, runs: number, files: number, inflight: number,
  open: (wrap: (db: SqlDb) => SqlDb) => Promise<{ vfs: ClusterVfs; db: PgDb }>,
): Promise<void> {
  const keyDb = new PgDb({ url, max: 1 })
  const key = await readHandleKey(keyDb)
  await keyDb.close()
  const servers: { close: () => Promise<void>; port: number }[] = []
  const states: string[] = []
  try {
    for (const wrap of [(db: SqlDb): SqlDb => db, withoutBarrier]) {
      const factories = new Map<string, BackendFactory>([['cluster', async (exp, ctx) => {
        const { vfs } = await open(wrap)
        ctx.clusterKeys?.set(exp.id, {}, key)
        return vfs
      }]])
      const state = mkdtempSync(join(tmpdir(), 'tsnfs-barrier-'))
      states.push(state)
      const text = `/shared *(rw,insecure,no_root_squash,async,backend=cluster,meta=postgres://postgres@127.0.0.1/${name},data=postgres)\n`
      servers.push(await createServer({ exports: parseExports(text, 'exports'), stateDir: state, port: 0, host: '127.0.0.1', locking: false, backends: factories }))
    }
    const [withB, without] = servers.map((s) => `nfs://127.0.0.1/shared?nfsport=${s.port}&mountport=${s.port}`)
    process.stderr.write(`A = barrier (${withB ?? ''}), B = no barrier (${without ?? ''})\n`)
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/main.ts'), 'bench', '--compare', withB ?? '', without ?? '', 'meta',
        '--runs', String(runs), '-N', String(files), '-K', String(inflight)], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] })
      child.on('error', reject)
      child.on('exit', (code) => { if (code === 0) resolve(); else reject(new Error(`tsnfs bench exited ${String(code)}`)) })
    })
  } finally {
    for (const s of servers) await s.close()
    for (const d of states) rmSync(d, { recursive: true, force: true })
  }
}

await main()
