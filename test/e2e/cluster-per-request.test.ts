/*
 * Issue 17 §3 without LISTEN/NOTIFY: two `tsnfs serve` processes on one
 * cluster database with TSNFS_CLUSTER_CACHE=per-request (the mode
 * CockroachDB gets; vfs/cluster/meta/cache-mode.ts). The test LISTENs on the
 * change channel itself and asserts nothing is ever sent there, that no
 * server connection LISTENs, and that close-to-open across the servers holds
 * in every round with no wait at all (latency 0 after the commit).
 */
import t from 'tap'
import pg from 'pg'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { clusterExports, freshCluster, readWhole, startServers } from './cluster-harness.ts'
import { CHANGE_CHANNEL } from '../../vfs/cluster/schema.ts'

/** Close-to-open rounds (TSNFS_CLUSTER_ROUNDS for a longer run). */
const ROUNDS = Number(process.env['TSNFS_CLUSTER_ROUNDS'] ?? 40)

t.test('two servers without notifications: close-to-open in every round, nothing notified', async (t) => {
  const db = await freshCluster(t)
  // The servers inherit this process's environment (test/cli/cli.ts serveProcess).
  process.env['TSNFS_CLUSTER_CACHE'] = 'per-request'
  const servers = await startServers(t, clusterExports(t, db), 2)
  delete process.env['TSNFS_CLUSTER_CACHE']
  const heard: string[] = []
  const listener = new pg.Client({ connectionString: db.adminUrl })
  await listener.connect()
  t.teardown(() => listener.end())
  listener.on('notification', (n) => { heard.push(n.payload ?? '') })
  await listener.query(`LISTEN ${CHANGE_CHANNEL}`)

  const [a, b] = await Promise.all(servers.map((s) => Nfs3.connect(t, s.port)))
  if (a === undefined || b === undefined) throw new Error('two servers expected')
  const rootA = await a.mount('/shared')
  const rootB = await b.mount('/shared')
  for (const s of servers) await s.waitForLog(/no change notifications; metadata is read per request/)

  const made = await a.create(rootA, 'cto')
  t.equal(made.status, S.OK)
  const fh = made.fh ?? Buffer.alloc(0)
  t.equal((await b.getattr(fh)).status, S.OK)
  let failures = 0
  for (let i = 0; i < ROUNDS; i++) {
    const data = Buffer.from(`round ${i} `.repeat(1 + (i % 7)))
    // Alternate growing and shrinking, so a stale size shows as well as stale bytes.
    const st = [await a.setattr(fh, { size: 0n }), (await a.write(fh, 0n, data, UNSTABLE)).status, (await a.commit(fh)).status]
    if (st.some((x) => x !== S.OK)) throw new Error(`round ${i}: SETATTR, WRITE, COMMIT on A: ${st.join(', ')}`)
    const g = await b.getattr(fh)
    const seen = g.status === S.OK && g.size === BigInt(data.length) ? await readWhole(b, fh) : null
    if (seen?.equals(data) !== true) {
      failures++
      t.fail(`round ${i}: B answered size ${String(g.size)} right after A's COMMIT reply`)
    }
  }
  t.equal(failures, 0, `B saw what A committed in all ${ROUNDS} rounds, with no wait`)

  // Names both ways: B makes, renames and removes; A sees each in its next request.
  const sub = await b.mkdir(rootB, 'sub')
  t.equal(sub.status, S.OK)
  t.equal((await a.lookup(rootA, 'sub')).status, S.OK, 'a directory made on B is found on A')
  t.equal(await b.rename(rootB, 'cto', rootB, 'cto2'), S.OK)
  t.equal((await a.lookup(rootA, 'cto')).status, S.NOENT, 'the old name is gone on A')
  t.equal((await a.lookup(rootA, 'cto2')).fh?.equals(fh), true, 'the new name is found on A')
  const w = await b.write(fh, 0n, Buffer.from('sync'), FILE_SYNC)
  t.equal(w.status, S.OK)
  t.equal((await readWhole(a, fh)).subarray(0, 4).toString(), 'sync', 'a FILE_SYNC write on B is read on A')
  t.equal(await b.remove(rootB, 'cto2'), S.OK)
  t.equal((await a.getattr(fh)).status, S.STALE, 'a file removed on B is stale on A')

  // pg_stat_activity shows a connection's last statement: a LISTENing one keeps its LISTEN there
  // until it waits for a barrier (SELECT 1); a server's feed connection is named tsnfs-listen.
  const listening = await listener.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND (query ILIKE 'LISTEN%' OR application_name = 'tsnfs-listen') AND pid <> pg_backend_pid()")
  t.equal(listening.rows[0]?.['n'], 0, 'no server connection LISTENs')
  await new Promise((r) => setTimeout(r, 200))
  t.strictSame(heard, [], `nothing was notified on ${CHANGE_CHANNEL}`)
})
