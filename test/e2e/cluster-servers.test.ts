/*
 * Issue 17 §3 and §5: three `tsnfs serve` processes export one cluster
 * (data=postgres: metadata and blocks in one fresh database), and clients
 * spread over them see one file system: the same handles on every server,
 * close-to-open across servers, a write verifier per server, and a seeded
 * mixed workload with renames racing across servers whose final tree equals
 * an oracle on all three.
 */
import t from 'tap'
import { FILE_SYNC, Nfs3, S, UNSTABLE } from '../helpers/local.ts'
import { prng } from '../helpers/prng.ts'
import { tsnfs } from '../cli/cli.ts'
import { clusterExports, dumpTree, freshCluster, readWhole, startServers } from './cluster-harness.ts'
import { SCHEMA_FORMAT } from '../../vfs/cluster/schema.ts'

const seed = Number(process.env['TSNFS_SEED'] ?? Date.now() % 1_000_000)
/** Close-to-open rounds (TSNFS_CLUSTER_ROUNDS for a longer run). */
const ROUNDS = Number(process.env['TSNFS_CLUSTER_ROUNDS'] ?? 100)
/** Operations per client in the mixed workload. */
const OPS = Number(process.env['TSNFS_CLUSTER_OPS'] ?? 40)

t.test('three servers on one cluster database', async (t) => {
  t.comment(`seed ${seed}`)
  const db = await freshCluster(t)
  const servers = await startServers(t, clusterExports(t, db), 3)
  const clients = await Promise.all(servers.map((s) => Nfs3.connect(t, s.port)))
  const roots = await Promise.all(clients.map((c) => c.mount('/shared')))
  const [a, b, c] = clients
  const [rootA, rootB, rootC] = roots
  if (a === undefined || b === undefined || c === undefined || rootA === undefined || rootB === undefined || rootC === undefined) throw new Error('three servers expected')

  t.test('a handle from one server works on the others: same bytes, same answers', async (t) => {
    t.ok(rootA.equals(rootB) && rootA.equals(rootC), 'MNT gives the same root handle on A, B and C')
    const made = await a.create(rootA, 'hello')
    t.equal(made.status, S.OK)
    const fh = made.fh ?? Buffer.alloc(0)
    const data = Buffer.from('written on A, read everywhere\n')
    t.equal((await a.write(fh, 0n, data, FILE_SYNC)).status, S.OK)
    for (const [name, nfs, root] of [['B', b, rootB], ['C', c, rootC]] as const) {
      const l = await nfs.lookup(root, 'hello')
      t.equal(l.status, S.OK, `LOOKUP on ${name}`)
      t.ok(l.fh?.equals(fh), `${name} names the file with A's handle bytes`)
      const g = await nfs.getattr(fh)
      t.strictSame([g.status, g.size, g.fileid], [S.OK, BigInt(data.length), l.fileid], `GETATTR of A's handle on ${name}`)
      t.strictSame(await readWhole(nfs, fh), data, `READ of A's handle on ${name}`)
    }
    const unknown = Buffer.from(fh)
    unknown[unknown.length - 1] = (unknown[unknown.length - 1] ?? 0) ^ 0xff
    t.equal((await b.getattr(unknown)).status, S.BADHANDLE, 'a forged handle is refused on B as on A')
  })

  t.test(`close-to-open across servers, ${ROUNDS} rounds: write + COMMIT on A, GETATTR + READ on B`, async (t) => {
    const made = await a.create(rootA, 'cto')
    const fh = made.fh ?? Buffer.alloc(0)
    // B caches the file first, so each round tests that A's change drops what B holds.
    t.equal((await b.getattr(fh)).status, S.OK)
    let failures = 0
    const lags: number[] = []
    const gaps: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      const data = Buffer.from(`round ${i} `.repeat(1 + (i % 7)))
      // Alternate growing and shrinking, so a stale size shows as well as stale bytes.
      const st = [await a.setattr(fh, { size: 0n }), (await a.write(fh, 0n, data, UNSTABLE)).status, (await a.commit(fh)).status]
      if (st.some((x) => x !== S.OK)) throw new Error(`round ${i}: SETATTR, WRITE, COMMIT on A: ${st.join(', ')}`)
      const committed = Date.now()
      const g = await b.getattr(fh)
      gaps.push(Date.now() - committed)
      const seen = g.status === S.OK && g.size === BigInt(data.length) ? await readWhole(b, fh) : null
      if (seen?.equals(data) === true) continue
      failures++
      // How long until B sees it: the invalidation's latency for this round.
      for (;;) {
        const g2 = await b.getattr(fh)
        if (g2.size === BigInt(data.length) && (await readWhole(b, fh)).equals(data)) break
        if (Date.now() - committed > 5000) throw new Error(`round ${i}: B never saw A's data`)
      }
      lags.push(Date.now() - committed)
    }
    gaps.sort((x, y) => x - y)
    const pct = (q: number): number => gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))] ?? 0
    t.comment(`close-to-open: ${failures} of ${ROUNDS} rounds saw stale data on B${lags.length > 0 ? ` (seen after ${lags.join(', ')} ms)` : ''}; ` +
      `B's GETATTR answered ${pct(0.5)} ms (p50) / ${pct(0.99)} ms (p99) after A's COMMIT reply`)
    t.equal(failures, 0, 'B always sees what A committed')
  })

  t.test('each server has its own write verifier', async (t) => {
    const verfs: string[] = []
    for (const [nfs, root, name] of [[a, rootA, 'va'], [b, rootB, 'vb'], [c, rootC, 'vc']] as const) {
      const made = await nfs.create(root, name)
      const w = await nfs.write(made.fh ?? Buffer.alloc(0), 0n, Buffer.from(name), UNSTABLE)
      const cm = await nfs.commit(made.fh ?? Buffer.alloc(0))
      t.ok(w.verf?.equals(cm.verf ?? Buffer.alloc(0)), 'WRITE and COMMIT on one server give one verifier')
      verfs.push(cm.verf?.toString('hex') ?? '')
    }
    t.equal(new Set(verfs).size, 3, `three servers, three verifiers: ${verfs.join(' ')}`)
  })

  t.test('mixed workload over the three servers with renames racing across them; the tree equals the oracle on all three', async (t) => {
    const oracle = new Map<string, string>()
    const top = await a.mkdir(rootA, 'mixed')
    t.equal(top.status, S.OK)
    oracle.set('/mixed', 'dir')
    const topFh = top.fh ?? Buffer.alloc(0)
    const common = await a.mkdir(topFh, 'common')
    oracle.set('/mixed/common', 'dir')
    const commonFh = common.fh ?? Buffer.alloc(0)
    const RACES = 8
    for (let j = 0; j < RACES; j++) {
      const r = await a.create(commonFh, `race-${j}`)
      t.equal((await a.write(r.fh ?? Buffer.alloc(0), 0n, Buffer.from(`race ${j}`), FILE_SYNC)).status, S.OK)
      oracle.set(`/mixed/common/race-${j}`, Buffer.from(`race ${j}`).toString('hex'))
    }
    // Each client works in its own directory (its results are its oracle), renames into the
    // shared one, and races the others for the race-N files.
    const wins = new Map<number, number[]>()
    // Each race starts when all three clients reached it (then their RENAMEs are in flight together).
    const arrived = new Map<number, { n: number; go: Promise<void>; open: () => void }>()
    const raceBarrier = (j: number): Promise<void> => {
      let b = arrived.get(j)
      if (b === undefined) {
        let open = (): void => undefined
        const go = new Promise<void>((resolve) => {
          open = resolve
        })
        b = { n: 0, go, open }
        arrived.set(j, b)
      }
      if (++b.n === 3) b.open()
      return b.go
    }
    const worker = async (i: number, nfs: Nfs3): Promise<void> => {
      const r = prng(seed + i + 1)
      const mine = `/mixed/d${i}`
      const top = await nfs.lookup(await nfs.mount('/shared'), 'mixed')
      const d = await nfs.mkdir(top.fh ?? Buffer.alloc(0), `d${i}`)
      if (d.status !== S.OK || d.fh === undefined) throw new Error(`client ${i}: MKDIR ${mine}: ${d.status}`)
      oracle.set(mine, 'dir')
      const dir = d.fh
      const com = await nfs.lookup(top.fh ?? Buffer.alloc(0), 'common')
      const comFh = com.fh ?? Buffer.alloc(0)
      const files = new Map<string, { fh: Buffer; data: Buffer }>()
      let k = 0
      const race = Array.from({ length: RACES }, (_, j) => j)
      for (let op = 0; op < OPS; op++) {
        const x = r()
        const names = [...files.keys()]
        const pick = names[Math.floor(r() * names.length)]
        if (x < 0.1 && race.length > 0) {
          // Every client renames race-j at once, each on its own server: one wins, the others get NOENT.
          const j = race.shift() ?? 0
          await raceBarrier(j)
          const st = await nfs.rename(comFh, `race-${j}`, comFh, `race-${j}.won-by-${i}`)
          if (st === S.OK) wins.set(j, [...(wins.get(j) ?? []), i])
          else if (st !== S.NOENT) throw new Error(`client ${i}: RENAME race-${j}: ${st}`)
        } else if (x < 0.4 || pick === undefined) {
          const name = `f${k++}`
          const c = await nfs.create(dir, name)
          if (c.status !== S.OK || c.fh === undefined) throw new Error(`client ${i}: CREATE ${name}: ${c.status}`)
          const data = Buffer.alloc(1 + Math.floor(r() * 20_000), (i * 31 + k) & 0xff)
          const how = r() < 0.5 ? FILE_SYNC : UNSTABLE
          const w = await nfs.write(c.fh, 0n, data, how)
          if (w.status !== S.OK) throw new Error(`client ${i}: WRITE ${name}: ${w.status}`)
          if (how === UNSTABLE && (await nfs.commit(c.fh)).status !== S.OK) throw new Error(`client ${i}: COMMIT ${name}`)
          files.set(name, { fh: c.fh, data })
        } else if (x < 0.6) {
          const f = files.get(pick) ?? { fh: Buffer.alloc(0), data: Buffer.alloc(0) }
          const at = Math.floor(r() * (f.data.length + 100))
          const patch = Buffer.alloc(1 + Math.floor(r() * 5000), 0x41 + (op % 26))
          const w = await nfs.write(f.fh, BigInt(at), patch, FILE_SYNC)
          if (w.status !== S.OK) throw new Error(`client ${i}: WRITE ${pick}: ${w.status}`)
          const next = Buffer.alloc(Math.max(f.data.length, at + patch.length))
          f.data.copy(next)
          patch.copy(next, at)
          f.data = next
        } else if (x < 0.7) {
          const st = await nfs.remove(dir, pick)
          if (st !== S.OK) throw new Error(`client ${i}: REMOVE ${pick}: ${st}`)
          files.delete(pick)
        } else if (x < 0.8) {
          const to = `r${k++}`
          const st = await nfs.rename(dir, pick, dir, to)
          if (st !== S.OK) throw new Error(`client ${i}: RENAME ${pick} ${to}: ${st}`)
          const f = files.get(pick)
          files.delete(pick)
          if (f !== undefined) files.set(to, f)
        } else if (x < 0.9) {
          // Across directories: into the shared one, under a name only this client uses.
          const to = `c${i}-${k++}`
          const st = await nfs.rename(dir, pick, comFh, to)
          if (st !== S.OK) throw new Error(`client ${i}: RENAME ${pick} to common/${to}: ${st}`)
          const f = files.get(pick)
          files.delete(pick)
          if (f !== undefined) oracle.set(`/mixed/common/${to}`, f.data.toString('hex'))
        } else {
          const f = files.get(pick) ?? { fh: Buffer.alloc(0), data: Buffer.alloc(0) }
          const size = Math.floor(r() * f.data.length)
          const st = await nfs.setattr(f.fh, { size: BigInt(size) })
          if (st !== S.OK) throw new Error(`client ${i}: SETATTR size ${pick}: ${st}`)
          f.data = f.data.subarray(0, size)
        }
      }
      // Races this client did not reach in its operations are run at the end, still all together.
      for (const j of race) {
        await raceBarrier(j)
        const st = await nfs.rename(comFh, `race-${j}`, comFh, `race-${j}.won-by-${i}`)
        if (st === S.OK) wins.set(j, [...(wins.get(j) ?? []), i])
        else if (st !== S.NOENT) throw new Error(`client ${i}: RENAME race-${j}: ${st}`)
      }
      for (const [name, f] of files) oracle.set(`${mine}/${name}`, f.data.toString('hex'))
    }
    await Promise.all([a, b, c].map((nfs, i) => worker(i, nfs)))
    for (let j = 0; j < RACES; j++) {
      const w = wins.get(j) ?? []
      t.equal(w.length, 1, `race-${j}: exactly one of the three servers' RENAMEs succeeded (client ${w.join(',')})`)
      const winner = w[0]
      if (winner === undefined) continue
      oracle.delete(`/mixed/common/race-${j}`)
      oracle.set(`/mixed/common/race-${j}.won-by-${winner}`, Buffer.from(`race ${j}`).toString('hex'))
    }
    const expected = [...oracle].sort(([x], [y]) => (x < y ? -1 : 1))
    for (const [name, nfs, root] of [['A', a, rootA], ['B', b, rootB], ['C', c, rootC]] as const) {
      const l = await nfs.lookup(root, 'mixed')
      const tree = await dumpTree(nfs, l.fh ?? Buffer.alloc(0), '/mixed')
      tree.set('/mixed', 'dir')
      const got = [...tree].sort(([x], [y]) => (x < y ? -1 : 1))
      t.equal(got.length, expected.length, `${name}: ${got.length} entries, the oracle ${expected.length}`)
      t.ok(JSON.stringify(got) === JSON.stringify(expected), `${name}: the tree equals the oracle`)
    }
  })

  t.test('tsnfs cluster status lists the three servers', async (t) => {
    const r = await tsnfs(['cluster', 'status', '--meta', db.meta, '--data', 'postgres', '--credentials', db.credentials])
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, new RegExp(`^format: ${SCHEMA_FORMAT}$`, 'm'))
    t.match(r.stdout, /^servers: 3$/m)
    for (const s of servers) t.match(r.stdout, new RegExp(`pid ${String(s.child.pid)}, up \\d+ s, heartbeat [\\d.]+ s ago`), `server pid ${String(s.child.pid)} listed`)
    t.match(r.stdout, /^inodes: \d+$/m)
  })
})
