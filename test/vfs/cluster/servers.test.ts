/*
 * Two servers (ClusterVfs instances with their own pools, sessions and
 * change feeds) on one database: what one commits, the other sees once the
 * notification arrives, and its cached attributes are dropped then.
 */
import t from 'tap'
import { b, mkfile, OWNER, readAll, rejectsCode } from '../conformance-helpers.ts'
import type { FileRef, Vfs } from '../../../vfs/types.ts'
import { newCluster, dropTemplate } from './meta-helpers.ts'

t.teardown(dropTemplate)

/** Resolves when `pred` holds for a notification delivered to a server, or fails after `ms`. */
function waiter(): { notify: (inodes: bigint[] | 'all') => void; next: (inode: bigint, ms?: number) => Promise<number> } {
  const waiting: { inode: bigint; resolve: (at: number) => void }[] = []
  return {
    notify(inodes) {
      const at = performance.now()
      for (let i = waiting.length - 1; i >= 0; i--) {
        const w = waiting[i]
        if (w !== undefined && (inodes === 'all' || inodes.includes(w.inode))) {
          waiting.splice(i, 1)
          w.resolve(at)
        }
      }
    },
    next(inode, ms = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { reject(new Error(`no notification for inode ${inode} within ${ms} ms`)) }, ms)
        waiting.push({ inode, resolve: (at) => { clearTimeout(timer); resolve(at) } })
      })
    },
  }
}

t.test('a create on A is visible on B once the notification arrives', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const w = waiter()
  const a = (await c.server()).vfs
  const bs = await c.server({ onRemoteChange: w.notify })
  const bv = bs.vfs
  const root = a.root()
  await rejectsCode(t, bv.lookup(root, b('x')), 'ENOENT', 'B: no x yet')
  const before = await bv.getattr(root)
  const arrived = w.next(root.id)
  const made = await a.create(root, b('x'), { how: 'guarded', attr: { mode: 0o600 } }, OWNER)
  await arrived
  const seen = await bv.lookup(root, b('x'))
  t.same(seen.ref, made.ref, 'B finds the file A made')
  t.equal(seen.attr.mode, 0o600)
  const after = await bv.getattr(root)
  t.ok(after.mtime.sec > before.mtime.sec || after.mtime.nsec > before.mtime.nsec, "B's cached root attributes were dropped")
  const names = (await bv.readdir(root, 0n, 100)).entries.map(e => e.name.toString())
  t.same(names, ['.', '..', 'x'])
  // And the other way round, with a directory and a removal.
  const wa = waiter()
  const a2 = (await c.server({ onRemoteChange: wa.notify })).vfs
  await a2.getattr(made.ref)
  const gone = wa.next(made.ref.id)
  await bv.remove(root, b('x'))
  await gone
  await rejectsCode(t, a2.getattr(made.ref), 'ESTALE', 'a file removed on B is stale on another server')
})

t.test("B's cached attributes are dropped after A's write and commit", async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const w = waiter()
  const a = (await c.server()).vfs
  const bs = await c.server({ onRemoteChange: w.notify })
  const bv = bs.vfs
  // B caches f only after the notification of its creation has come (else that drops it).
  const created = w.next(a.root().id)
  const f = await mkfile(a, a.root(), 'f')
  await created
  t.equal((await bv.getattr(f)).size, 0n)
  const rt = bs.db.stats().roundTrips
  t.equal((await bv.getattr(f)).size, 0n)
  t.equal(bs.db.stats().roundTrips - rt, 0, 'B answers GETATTR from its cache')
  const arrived = w.next(f.id)
  await a.write(f, 0n, b('hello'), 'unstable')
  await a.commit(f, 0n, 0)
  await arrived
  t.equal((await bv.getattr(f)).size, 5n, 'B sees the size A committed')
  t.equal(await readAll(bv, f), 'hello', 'and the data (close-to-open across servers)')
  const again = w.next(f.id)
  await a.write(f, 5n, b(' world'), 'file_sync')
  await again
  t.equal(await readAll(bv, f), 'hello world', 'a FILE_SYNC write is visible at once after the notification')
})

t.test('notification latency between two servers (1000 changes)', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const w = waiter()
  const a = (await c.server()).vfs
  const bv = (await c.server({ onRemoteChange: w.notify })).vfs
  const f = await mkfile(a, a.root(), 'f')
  const afterReply: number[] = []
  const fromStart: number[] = []
  const N = Number(process.env['TSNFS_NOTIFY_N'] ?? 1000)
  await bv.getattr(f)
  for (let i = 0; i < N; i++) {
    const arrived = w.next(f.id)
    const start = performance.now()
    await a.setattr(f, { mode: 0o600 + (i % 64) })
    const replied = performance.now()
    const at = await arrived
    afterReply.push(Math.max(0, at - replied))
    fromStart.push(at - start)
  }
  const pct = (xs: number[], p: number): number => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? NaN
  const fmt = (x: number): string => x.toFixed(2)
  t.comment(`notify delivery after the writer's reply: p50 ${fmt(pct(afterReply, 0.5))} ms, p99 ${fmt(pct(afterReply, 0.99))} ms, max ${fmt(pct(afterReply, 1))} ms`)
  t.comment(`from the start of the SETATTR to delivery: p50 ${fmt(pct(fromStart, 0.5))} ms, p99 ${fmt(pct(fromStart, 0.99))} ms`)
  t.ok(pct(afterReply, 0.99) < 100, 'p99 under 100 ms on one machine')
  t.equal((await bv.getattr(f)).mode, 0o600 + ((N - 1) % 64), 'B ends with the last mode')
})

t.test('a server whose change feed drops forgets everything it cached', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const w = waiter()
  const a = (await c.server()).vfs
  const bs = await c.server({ onRemoteChange: w.notify })
  const created = w.next(a.root().id)
  const f = await mkfile(a, a.root(), 'f')
  await created
  t.equal((await bs.vfs.getattr(f)).mode, 0o644)
  const cached = bs.vfs.cacheStats().nodes
  t.ok(cached > 0, 'B has cached nodes')
  // Cut every LISTEN connection (by name: their last statement may be a barrier's SELECT 1, not
  // the LISTEN): B's feed is gone until its adapter reconnects.
  const admin = (await c.server()).db
  const r = await admin.query("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tsnfs-listen'")
  t.ok(r.rows.length >= 1, `terminated ${r.rows.length} listening connections`)
  for (let i = 0; i < 200 && bs.vfs.cacheStats().nodes > 0; i++) await new Promise(res => setTimeout(res, 10))
  t.equal(bs.vfs.cacheStats().nodes, 0, 'B dropped every cached node when its feed broke')
  // A change made while B's feed may be down is still seen: B has nothing cached to answer from.
  await a.setattr(f, { mode: 0o600 })
  t.equal((await bs.vfs.getattr(f)).mode, 0o600)
})

t.test('A and B create one name at once: one wins, the other is EEXIST; EXCLUSIVE retransmitted to B', async t => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const a = (await c.server()).vfs
  const bv = (await c.server()).vfs
  const root = a.root()
  for (let i = 0; i < 20; i++) {
    const name = b(`n${i}`)
    const results = await Promise.allSettled([
      a.create(root, name, { how: 'guarded', attr: {} }, OWNER),
      bv.create(root, name, { how: 'guarded', attr: {} }, OWNER),
    ])
    const won = results.filter(r => r.status === 'fulfilled')
    const lost = results.filter(r => r.status === 'rejected')
    t.equal(won.length, 1, `n${i}: one create succeeded`)
    t.match(lost[0]?.reason, { code: 'EEXIST' }, `n${i}: the other is EEXIST`)
  }
  t.equal((await listAllNames(bv, root)).length, 20 + 2, 'twenty entries (and . ..)')
  const verf = b('verifier')
  const first = await a.create(root, b('ex'), { how: 'exclusive', verifier: verf }, OWNER)
  const again = await bv.create(root, b('ex'), { how: 'exclusive', verifier: b('verifier') }, OWNER)
  t.same(again.ref, first.ref, 'a retransmitted EXCLUSIVE create answered by another server returns the same file')
  await rejectsCode(t, bv.create(root, b('ex'), { how: 'exclusive', verifier: b('other!!!') }, OWNER), 'EEXIST')
})

async function listAllNames(vfs: Vfs, dir: FileRef): Promise<string[]> {
  const page = await vfs.readdir(dir, 0n, 1000)
  return page.entries.map(e => e.name.toString())
}
