/*
 * Issue 15 §7, seen from the standby: its export fills up (a real ENOSPC:
 * the standby's copy is a 1 MiB tmpfs, mounted by the test), the primary
 * drops it, and the standby's OWN status says so too: `tsnfs replication
 * status` against the standby (text and JSON) and its metrics endpoint name
 * the export, NOSPC, the backend's error, the export's path and since when.
 * A memory primary and a local standby on the same path (the export id is
 * the path's), both in this process over real sockets.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { parseExports } from '../../server/exports/parse.ts'
import { silentLogger } from '../../server/logger.ts'
import { PrimaryReplication } from '../../server/replication/primary.ts'
import { StandbyNode } from '../../server/replication/standby-node.ts'
import { createServer } from '../../server/index.ts'
import { repl_stat } from '../../xdr/generated/replication.ts'
import { FILE_SYNC, Nfs3, S } from '../helpers/local.ts'
import { tsnfs } from '../cli/cli.ts'
import { tempDir } from '../helpers/tsnfs-process.ts'

t.setTimeout(180_000)

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const EXPORTS = (path: string, backend: 'memory' | 'local'): string => `${path} *(rw,insecure,no_root_squash${backend === 'memory' ? ',backend=memory' : ''})\n`

const notRoot = process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false

t.test("a standby's own status and metrics show its NOSPC failure: the export, the error, the path, since when", { skip: notRoot }, async (t) => {
  const primaryState = tempDir(t, 'tsnfs-primary-')
  const standbyState = tempDir(t, 'tsnfs-standby-')
  const exportPath = tempDir(t, 'tsnfs-full-')
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tsnfs-standby-full', exportPath])
  // Registered after tempDir's removal, so it runs before it (tap: last registered first), after
  // the servers' teardowns below have closed the standby's files.
  t.teardown(() => {
    execFileSync('umount', ['-l', exportPath])
  })

  const standby = await StandbyNode.open({
    stateDir: standbyState,
    node: 'standby-b',
    listen: { host: '127.0.0.1', port: 0 },
    exports: parseExports(EXPORTS(exportPath, 'local'), 'exports'),
    serve: { port: 0, host: '127.0.0.1', locking: false },
    log: silentLogger,
    metrics: { host: '127.0.0.1', port: 0 },
  })
  t.teardown(() => standby.close())
  const repl = await PrimaryReplication.open({
    stateDir: primaryState,
    cluster: 'tsnfs',
    node: 'primary-a',
    standbys: [{ host: '127.0.0.1', port: standby.port }],
    mode: 'sync',
    heartbeatMs: 100,
    timeoutMs: 5000,
    log: silentLogger,
  })
  const primary = await createServer({ exports: parseExports(EXPORTS(exportPath, 'memory'), 'exports'), stateDir: primaryState, port: 0, host: '127.0.0.1', locking: false, replication: repl })
  t.teardown(() => primary.close())
  const exportId = standby.service.view().positions[0]?.exportId ?? -1
  // A new standby gets a full resync first (its export is marked REPL_NEED_RESYNC meanwhile): wait for its end.
  await until('the standby to stream after its first resync', () => {
    const rs = standby.service.resyncProgress(exportId)
    return rs !== null && !rs.running && standby.service.exportFailure(exportId) === null && repl.view().peers[0]?.state === 'streaming'
  })

  // Healthy: no failure anywhere in the standby's own status.
  t.equal(standby.service.view().failures, undefined, 'no failures before the disk is full')

  const nfs = await Nfs3.connect(t, primary.port)
  const root = await nfs.mount(exportPath)
  const before = Date.now()
  // 64 KiB a file, FILE_SYNC: the standby's 1 MiB holds at most 16; the primary (memory) goes on.
  let n = 0
  while (standby.service.exportFailure(exportId) !== repl_stat.REPL_NOSPC && n < 100) {
    const c = await nfs.create(root, `f-${String(n++).padStart(3, '0')}`)
    t.equal(c.status, S.OK, 'CREATE through the primary')
    const w = await nfs.write(c.fh ?? Buffer.alloc(0), 0n, Buffer.alloc(65_536, n), FILE_SYNC)
    t.equal(w.status, S.OK, 'WRITE through the primary')
  }
  t.equal(standby.service.exportFailure(exportId), repl_stat.REPL_NOSPC, `the standby failed the export after ${String(n)} files`)
  await until('the primary to drop the standby', () => repl.view().peers[0]?.state === 'failed: NOSPC')
  const after = Date.now()

  const failure = standby.service.view().failures?.[0]
  t.ok(failure !== undefined && failure.sinceMs >= before && failure.sinceMs <= after, 'since: when the writes filled it')
  const since = new Date(failure?.sinceMs ?? 0).toISOString()
  const at = `127.0.0.1:${String(standby.port)}`
  const [plain, json] = await Promise.all([tsnfs(['replication', 'status', at]), tsnfs(['replication', 'status', '--json', at])])
  t.equal(plain.code, 0, plain.stderr)
  const position = standby.service.view().positions[0]?.applied.toString() ?? '?'
  t.equal(plain.stdout.split('\n').slice(0, 5).join('\n'), `node    standby-b\nrole    standby\nepoch   1\nexports ${String(exportId)}: at ${position}, failed: NOSPC (ENOSPC at ${exportPath}) since ${since}\npeers:`, 'the text names the failure')
  t.equal(json.code, 0, json.stderr)
  const j = JSON.parse(json.stdout) as { positions: unknown; failures: unknown }
  t.strictSame(j.positions, [{ exportId, applied: position, needResync: false }])
  t.strictSame(j.failures, [{ exportId, state: 'failed: NOSPC', code: 'ENOSPC', path: exportPath, since }], 'the JSON names the failure')

  const res = await fetch(`http://127.0.0.1:${String(standby.metricsPort)}/metrics`)
  t.equal(res.status, 200)
  const samples = (await res.text()).split('\n').filter((l) => l.startsWith('tsnfs_replication_export_failed'))
  t.strictSame(samples, [
    `tsnfs_replication_export_failed{export="${String(exportId)}",reason="NOSPC",code="ENOSPC",path="${exportPath}"} 1`,
    `tsnfs_replication_export_failed_since_seconds{export="${String(exportId)}"} ${String((failure?.sinceMs ?? 0) / 1000)}`,
  ], 'the metrics name the failure')
})
