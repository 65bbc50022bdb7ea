/*
 * Issue 17 §5: a server of the cluster is SIGKILLed mid-workload. Its client
 * moves to another server with the handles it holds: 0 ESTALE, and every
 * byte a reply promised stable (FILE_SYNC, or UNSTABLE then COMMIT) is
 * there. The dead server's session is removed by the survivors once its
 * heartbeat is stale (tsnfs cluster status no longer lists it).
 */
import t from 'tap'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { prng } from '../helpers/prng.ts'
import { tsnfs } from '../cli/cli.ts'
import { clusterExports, freshCluster, readWhole, sql, startServers } from './cluster-harness.ts'

interface Stable {
  fh: Buffer
  data: Buffer
}

t.test('a server SIGKILLed mid-workload: its client moves on, nothing stable is lost, its session is cleaned up', async (t) => {
  const seed = Number(process.env['TSNFS_SEED'] ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  const rnd = prng(seed)
  const db = await freshCluster(t)
  // Servers heartbeat every 500 ms and count a session silent for 3 s as dead (defaults: 5 s and 30 s).
  process.env['TSNFS_CLUSTER_HEARTBEAT_MS'] = '500'
  process.env['TSNFS_CLUSTER_STALE_MS'] = '3000'
  const [victim, survivor, third] = await startServers(t, clusterExports(t, db), 3)
  if (victim === undefined || survivor === undefined || third === undefined) throw new Error('three servers expected')
  const onVictim = await Nfs3.connect(t, victim.port)
  const onSurvivor = await Nfs3.connect(t, survivor.port)
  const root = await onVictim.mount('/shared')
  t.ok(root.equals(await onSurvivor.mount('/shared')), 'one root handle')

  const stable = new Map<string, Stable>()
  const killAfterMs = 500 + Math.floor(rnd() * 1500)
  t.comment(`SIGKILL after ${killAfterMs} ms`)
  const state = { killed: false }
  setTimeout(() => {
    victim.child.kill('SIGKILL')
    state.killed = true
  }, killAfterMs)

  let done = false
  // Two writers: one on the victim (it moves to the survivor when its server dies), one on the survivor.
  const writer = async (first: Nfs3, prefix: string): Promise<{ moved: boolean; stale: number }> => {
    let nfs = first
    let moved = false
    let stale = 0
    let movedAt = 0
    for (let n = 0; n < 1000 && !done; n++) {
      // 20 files after the move, then both writers stop.
      if (moved && n >= movedAt + 20) done = true
      const name = `${prefix}-${n}`
      let fh: Buffer | undefined
      let data = Buffer.alloc(0)
      const pieces = 1 + Math.floor(rnd() * 3)
      try {
        const c = await nfs.create(root, name)
        if (c.status === S.STALE) stale++
        if (c.status !== S.OK || c.fh === undefined) throw new Error(`CREATE ${name}: ${c.status}`)
        fh = c.fh
        for (let p = 0; p < pieces; p++) {
          const piece = Buffer.alloc(1 + Math.floor(rnd() * 30_000), (n * 7 + p) & 0xff)
          const how = rnd() < 0.5 ? FILE_SYNC : UNSTABLE
          const w = await nfs.write(fh, BigInt(data.length), piece, how)
          if (w.status === S.STALE) stale++
          if (w.status !== S.OK) throw new Error(`WRITE ${name}: ${w.status}`)
          data = Buffer.concat([data, piece])
          if (how === UNSTABLE) {
            const cm = await nfs.commit(fh)
            if (cm.status !== S.OK) throw new Error(`COMMIT ${name}: ${cm.status}`)
          }
          stable.set(name, { fh, data })
        }
      } catch (err) {
        if (!state.killed || nfs !== onVictim) throw err
        // The server died under this client: it goes on at the survivor, same handles.
        nfs = onSurvivor
        moved = true
        movedAt = n
      }
    }
    return { moved, stale }
  }
  const [v, s] = await Promise.all([writer(onVictim, 'v'), writer(onSurvivor, 's')])
  t.ok(state.killed && v.moved, "the victim's client moved to the survivor")
  t.equal(v.stale + s.stale, 0, '0 ESTALE')
  await victim.exit

  // Every stable byte, read on the two other servers through the handles the writers held.
  const onThird = await Nfs3.connect(t, third.port)
  let lost = 0
  let stale = 0
  for (const want of stable.values()) {
    for (const nfs of [onSurvivor, onThird]) {
      const g = await nfs.getattr(want.fh)
      if (g.status === S.STALE) stale++
      const got = g.status === S.OK ? await readWhole(nfs, want.fh) : Buffer.alloc(0)
      if (!got.subarray(0, want.data.length).equals(want.data)) lost++
    }
  }
  t.comment(`${stable.size} files made stable`)
  t.equal(stale, 0, 'no handle is stale after the kill')
  t.equal(lost, 0, 'every stable byte is there, on both survivors')

  // The survivors find the dead session stale and remove it.
  const deadPid = victim.child.pid
  const started = Date.now()
  for (;;) {
    const rows = await sql(db, 'SELECT pid FROM tsnfs_session')
    if (!rows.some((r) => Number(r['pid']) === deadPid)) break
    if (Date.now() - started > 40_000) throw new Error(`session of pid ${String(deadPid)} still listed after 40 s`)
    await new Promise((r) => setTimeout(r, 500))
  }
  t.comment(`dead session removed ${Date.now() - started} ms after the kill was noticed`)
  const st = await tsnfs(['cluster', 'status', '--meta', db.meta, '--data', 'postgres', '--credentials', db.credentials])
  t.equal(st.code, 0, st.stderr)
  t.match(st.stdout, /^servers: 2$/m, 'status lists the two live servers')
  t.notMatch(st.stdout, new RegExp(`pid ${String(deadPid)},`), 'and not the dead one')
})
