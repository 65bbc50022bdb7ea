/*
 * Issue 17 §5, the stores failing under running servers:
 * - the database is restarted (a private PostgreSQL in a temporary directory,
 *   crashed with pg_ctl stop -m immediate while requests are in flight):
 *   every reply is OK, NFS3ERR_JUKEBOX (the store is unreachable: retry
 *   later) or NFS3ERR_IO — never a hang or SERVERFAULT —, the servers
 *   reconnect by themselves, later requests succeed, and every write
 *   acknowledged FILE_SYNC is there afterwards;
 * - the object store is unreachable (s3 pointed at a closed port): metadata
 *   still works, stable writes and COMMIT fail within a bound instead of
 *   hanging, and nothing is acknowledged stable that is not.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { closedPort } from '../helpers/ports.ts'
import { testDatabase } from '../helpers/postgres.ts'
import { PgDb } from '../../vfs/cluster/clients/pg-db.ts'
import { initCluster } from '../../vfs/cluster/init.ts'
import { clusterDbAt, clusterExports, clusterInit, privatePostgres, readWhole, startServers } from './cluster-harness.ts'

const JUKEBOX = 10008
const CLEAN = new Set<number>([S.OK, S.IO, JUKEBOX])

/** `p`, or a rejection naming `what` after `ms`: a request that never answers is a failure of its own. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what}: no reply within ${String(ms)} ms`))
    }, ms)
  })
  try {
    return await Promise.race([p, limit])
  } finally {
    clearTimeout(timer)
  }
}

t.test('the database restarted under two servers: clean failures while it is down, recovery after', async (t) => {
  const pgp = await privatePostgres(t)
  const db = clusterDbAt(t, pgp.url)
  await clusterInit(t, db)
  const [a, b] = await startServers(t, clusterExports(t, db), 2)
  if (a === undefined || b === undefined) throw new Error('two servers expected')
  const clients = [await Nfs3.connect(t, a.port), await Nfs3.connect(t, b.port)]
  const root = await (clients[0] ?? (await Nfs3.connect(t, a.port))).mount('/shared')

  const acked = new Map<string, { fh: Buffer; data: Buffer }>()
  const statuses = new Map<number, number>()
  const phase = { down: false, restarted: 0, okAfter: [0, 0] }
  let stop = false
  const load = async (i: number, nfs: Nfs3): Promise<void> => {
    for (let n = 0; !stop; n++) {
      const name = `s${i}-${n}`
      const c = await bounded(nfs.create(root, name), 30_000, `CREATE ${name}`)
      statuses.set(c.status, (statuses.get(c.status) ?? 0) + 1)
      if (!CLEAN.has(c.status)) throw new Error(`CREATE ${name}: status ${c.status}`)
      if (c.status === S.OK && c.fh !== undefined) {
        const data = Buffer.alloc(100 + (n % 900), n & 0xff)
        const w = await bounded(nfs.write(c.fh, 0n, data, FILE_SYNC), 30_000, `WRITE ${name}`)
        statuses.set(w.status, (statuses.get(w.status) ?? 0) + 1)
        if (!CLEAN.has(w.status)) throw new Error(`WRITE ${name}: status ${w.status}`)
        if (w.status === S.OK) {
          acked.set(name, { fh: c.fh, data })
          if (phase.restarted > 0) phase.okAfter[i] = (phase.okAfter[i] ?? 0) + 1
        }
      }
      if (c.status !== S.OK) await new Promise((r) => setTimeout(r, 100))
    }
  }
  const running = clients.map((nfs, i) => load(i, nfs))
  await new Promise((r) => setTimeout(r, 500))
  const before = acked.size
  await pgp.stop('immediate')
  phase.down = true
  const downAt = Date.now()
  await new Promise((r) => setTimeout(r, 2000))
  await pgp.start()
  phase.restarted = Date.now()
  t.comment(`database down ${phase.restarted - downAt} ms`)
  // Both servers must serve again within a bound, by themselves.
  while ((phase.okAfter[0] ?? 0) < 3 || (phase.okAfter[1] ?? 0) < 3) {
    if (Date.now() - phase.restarted > 30_000) throw new Error(`servers did not recover within 30 s (successes after restart: ${phase.okAfter.join(', ')})`)
    await new Promise((r) => setTimeout(r, 100))
  }
  t.comment(`both servers served again ${Date.now() - phase.restarted} ms after the restart`)
  stop = true
  await Promise.all(running)
  const seen = [...statuses].map(([s, n]) => `${s === 0 ? 'OK' : s === S.IO ? 'IO' : s === JUKEBOX ? 'JUKEBOX' : String(s)} ${n}`).join(', ')
  t.comment(`replies: ${seen}`)
  t.ok(before > 0, `writes succeeded before the restart (${before})`)
  t.ok((statuses.get(JUKEBOX) ?? 0) + (statuses.get(S.IO) ?? 0) > 0, 'requests while the database was down failed cleanly')
  let lost = 0
  const reader = clients[1] ?? clients[0]
  for (const [, f] of acked) if (reader === undefined || !(await readWhole(reader, f.fh)).equals(f.data)) lost++
  t.equal(lost, 0, `every write acknowledged FILE_SYNC is there after the restart (${acked.size})`)
})

t.test('the object store unreachable: metadata works, stable writes fail within a bound, nothing unstable is called stable', async (t) => {
  const db = clusterDbAt(t, await testDatabase(t))
  const closed = await closedPort()
  const data = `s3://tsnfs-down?endpoint=http://127.0.0.1:${String(closed)}&region=default&path_style=1`
  writeFileSync(db.credentials, `meta_password=${new URL(db.adminUrl).password}\ns3_access_key=test\ns3_secret_key=test-secret\n`, { mode: 0o600 })
  // `tsnfs cluster init` would stop at creating the bucket: the database alone is initialized here.
  const pgdb = new PgDb({ url: db.adminUrl })
  await initCluster(pgdb, { data })
  await pgdb.close()
  const [a] = await startServers(t, clusterExports(t, db, data), 1)
  if (a === undefined) throw new Error('one server expected')
  const nfs = await Nfs3.connect(t, a.port)
  const root = await nfs.mount('/shared')
  t.equal((await nfs.mkdir(root, 'dir')).status, S.OK, 'MKDIR needs only the database')
  const c = await nfs.create(root, 'file')
  t.equal(c.status, S.OK, 'CREATE needs only the database')
  const fh = c.fh ?? Buffer.alloc(0)
  const t0 = Date.now()
  const w = await bounded(nfs.write(fh, 0n, Buffer.alloc(10_000, 1), FILE_SYNC), 60_000, 'WRITE FILE_SYNC')
  t.ok(w.status === JUKEBOX || w.status === S.IO, `WRITE FILE_SYNC: status ${w.status} after ${Date.now() - t0} ms`)
  const u = await nfs.write(fh, 0n, Buffer.alloc(10_000, 2), UNSTABLE)
  t.equal(u.status, S.OK, 'WRITE UNSTABLE is staged in the server')
  const t1 = Date.now()
  const cm = await bounded(nfs.commit(fh), 60_000, 'COMMIT')
  t.ok(cm.status === JUKEBOX || cm.status === S.IO, `COMMIT: status ${cm.status} after ${Date.now() - t1} ms (the data is not stable)`)
  const g = await nfs.getattr(fh)
  t.equal(g.status, S.OK, 'GETATTR still answers')
})
