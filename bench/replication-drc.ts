/*
 * What holding a non-idempotent reply for its cached copy on the sync
 * standby costs (server/replication/drc-ship.ts): a primary (local-directory
 * export) and a `tsnfs standby` node (memory export) in this process, N
 * CREATEs one at a time, with the reply held until the standby has its
 * cache entry on disk ("held", the sync-mode behaviour) and shipped after it
 * ("after", the async behaviour), alternating in one series. Reports the
 * median latency and the CPU time per CREATE (both nodes: one process).
 * Then `--clients` connections create at once for `--seconds` (sync mode),
 * and it says how many of the replies rode in their change's APPEND
 * (REPL_APPEND_DRC) and how many went beside it (REPL_DRC_HELD).
 *
 *   npx tsx bench/replication-drc.ts [--ops N] [--rounds R] [--clients C] [--seconds S]
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseExports } from '../server/exports/parse.ts'
import { createServer } from '../server/index.ts'
import { silentLogger } from '../server/logger.ts'
import { PrimaryReplication } from '../server/replication/primary.ts'
import { StandbyNode } from '../server/replication/standby-node.ts'
import { NfsDriver } from './nfs-driver.ts'

const { values } = parseArgs({ options: { ops: { type: 'string', default: '300' }, rounds: { type: 'string', default: '5' }, clients: { type: 'string', default: '32' }, seconds: { type: 'string', default: '2' } } })
const ops = Number(values.ops)
const rounds = Number(values.rounds)
const work = mkdtempSync(join(tmpdir(), 'tsnfs-bench-drc-'))
const exportPath = join(work, 'export')
mkdirSync(exportPath)
const b = await StandbyNode.open({
  stateDir: join(work, 'b'),
  node: 'b',
  listen: { host: '127.0.0.1', port: 0 },
  exports: parseExports(`${exportPath} *(rw,insecure,no_root_squash,backend=memory)\n`, 'exports'),
  serve: { port: 0, host: '127.0.0.1', locking: false },
  log: silentLogger,
})
const repl = await PrimaryReplication.open({ stateDir: join(work, 'a'), cluster: 'tsnfs', node: 'a', standbys: [{ host: '127.0.0.1', port: b.port }], mode: 'sync', log: silentLogger })
const a = await createServer({ exports: parseExports(`${exportPath} *(rw,insecure,no_root_squash)\n`, 'exports'), stateDir: join(work, 'a'), port: 0, host: '127.0.0.1', locking: false, replication: repl })
for (let i = 0; i < 2000 && repl.view().peers[0]?.state !== 'streaming'; i++) await new Promise((r) => setTimeout(r, 10))
const nfs = await NfsDriver.connect({ host: '127.0.0.1', exportPath, nfsport: a.port, mountport: a.port, uid: 0, gid: 0 })
const waitsFor = repl.gate.waitsFor.bind(repl.gate)
const results: Record<'held' | 'after', { ms: number[]; cpuUs: number[] }> = { held: { ms: [], cpuUs: [] }, after: { ms: [], cpuUs: [] } }
let n = 0
for (let r = 0; r < rounds; r++) {
  for (const how of r % 2 === 0 ? (['held', 'after'] as const) : (['after', 'held'] as const)) {
    // "after": the reply no longer waits for any standby's copy (what async mode does).
    repl.gate.waitsFor = how === 'held' ? waitsFor : () => false
    const lat: number[] = []
    const cpu0 = process.cpuUsage()
    for (let i = 0; i < ops; i++) {
      const t0 = performance.now()
      await nfs.create(nfs.root, `f${String(n++)}`)
      lat.push(performance.now() - t0)
    }
    const cpu = process.cpuUsage(cpu0)
    lat.sort((x, y) => x - y)
    results[how].ms.push(lat[Math.floor(lat.length / 2)] ?? NaN)
    results[how].cpuUs.push((cpu.user + cpu.system) / ops)
    process.stderr.write(`round ${String(r + 1)} ${how}: median ${(lat[Math.floor(lat.length / 2)] ?? NaN).toFixed(2)} ms, ${((cpu.user + cpu.system) / ops).toFixed(0)} µs CPU per CREATE\n`)
  }
}
const med = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)] ?? NaN
process.stdout.write(`| reply | CREATE latency ms (median of ${String(rounds)} medians) | CPU µs per CREATE (both nodes) |\n|---|---|---|\n`)
for (const how of ['held', 'after'] as const) process.stdout.write(`| ${how} | ${med(results[how].ms).toFixed(2)} | ${med(results[how].cpuUs).toFixed(0)} |\n`)
process.stdout.write(`DRC entries shipped ${String(repl.replyCounts().shipped)}, dropped ${String(repl.replyCounts().dropped)}\n`)
repl.gate.waitsFor = waitsFor
const clients = await Promise.all(Array.from({ length: Number(values.clients) }, () => NfsDriver.connect({ host: '127.0.0.1', exportPath, nfsport: a.port, mountport: a.port, uid: 0, gid: 0 })))
const before = repl.replyCounts()
const until = performance.now() + Number(values.seconds) * 1000
let made = 0
await Promise.all(clients.map(async (c) => {
  while (performance.now() < until) {
    await c.create(c.root, `c${String(n++)}`)
    made++
  }
}))
const after = repl.replyCounts()
process.stdout.write(`${String(clients.length)} clients for ${values.seconds} s: ${String(made)} CREATEs, ${String(after.shipped - before.shipped)} entries shipped, ${String(after.inAppends - before.inAppends)} of them inside their change's APPEND, ${String(after.dropped - before.dropped)} dropped\n`)
await Promise.all(clients.map((c) => c.close()))
await nfs.close()
await a.close()
await b.close()
rmSync(work, { recursive: true, force: true })
