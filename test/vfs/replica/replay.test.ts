/*
 * A standby that crashes after a flush: its backend holds changes past the map's durable
 * position. Reopened from disk, the map is at that position; applying the changes after it again
 * (and, harder, every change from the first) converges to the primary's view. Seed: TSNFS_SEED.
 */
import t from 'tap'
import { cpSync } from 'node:fs'
import { join } from 'node:path'
import { Applier } from '../../../vfs/replica/applier.ts'
import { IdMap } from '../../../vfs/replica/id-map.ts'
import { ReplicatingVfs } from '../../../vfs/replica/replicating-vfs.ts'
import { prng } from '../../helpers/prng.ts'
import type { Kind } from './replica-helpers.ts'
import { ArraySink, backendOf, compareViews, node, ship } from './replica-helpers.ts'
import { Workload } from './workload.ts'

const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 2 ** 31)
t.comment(`seed ${seed} (TSNFS_SEED=${seed} to reproduce)`)

const CALLS: Record<Kind, number> = { memory: 500, local: 200 }

for (const kind of ['memory', 'local'] as const) {
  for (const from of ['position', 'start'] as const) {
    t.test(`${kind}: crash after a flush, replay from the ${from}, converge`, async (t) => {
      const rnd = prng(seed)
      const base = t.testdir()
      const p = await node(t, kind, join(base, 'primary'))
      const work = new Workload(p.layer, p.sink, rnd)
      await work.run(CALLS[kind])
      const changes = await ship(p.layer, p.sink.changes)
      const n = changes.length
      t.ok(n > 20, `${n} changes`)

      const backend = backendOf(t, kind, join(base, 'standby'))
      const mapDir = join(base, 'standby', 'map')
      const map = await IdMap.open({ dir: mapDir, root: backend.root() })
      t.teardown(() => map.close())
      const k = 1 + Math.floor(rnd() * (n / 2))
      const m = k + 1 + Math.floor(rnd() * (n - k - 1))
      t.comment(`flushed at ${k}, applied to ${m} of ${n}`)
      const first = new Applier({ backend, map })
      for (const { seq, change } of changes.slice(0, k)) await first.apply(seq, change)
      t.equal(await first.flush(), BigInt(k))
      for (const { seq, change } of changes.slice(k, m)) await first.apply(seq, change)
      // The crash: only what flush() made durable is on disk (the map's pending records are not).
      const crashed = join(base, 'crashed-map')
      cpSync(mapDir, crashed, { recursive: true })

      const reopened = await IdMap.open({ dir: crashed, root: backend.root() })
      t.teardown(() => reopened.close())
      t.equal(reopened.position(), BigInt(k), 'the durable position')
      const second = new Applier({ backend, map: reopened })
      t.equal(second.position(), BigInt(k))
      await t.rejects(second.apply(BigInt(k + 2), changes[k + 1]!.change), { code: 'EINVAL', message: /does not follow/ }, 'a gap is refused')
      const replay = from === 'start' ? changes : changes.slice(k)
      for (const { seq, change } of replay) await second.apply(seq, change)
      t.equal(await second.flush(), BigInt(n))
      const view = new ReplicatingVfs({ backend, map: reopened, sink: new ArraySink() })
      const objects = await compareViews(t, p.layer, view, { sameKind: true, pageSizes: [1, 3] })
      t.ok(objects > 0, `${objects} objects compared`)
    })
  }
}
