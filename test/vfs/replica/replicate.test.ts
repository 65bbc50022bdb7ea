/*
 * The replicating layer and the applier end to end (server/replication/README.md): a seeded
 * random sequence of calls through a ReplicatingVfs, the changes shipped as the sender does (WRITE
 * data read from the primary at ship time) and applied by an Applier to a second backend; both
 * layers must then show the same tree: names, fileids, cookies (every page size), attributes,
 * bytes and symlink targets. Seed: TSNFS_SEED.
 */
import t from 'tap'
import type { Test } from 'tap'
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

const CALLS: Record<Kind, number> = { memory: 700, local: 250 }

async function standby(t: Test, kind: Kind, base: string): Promise<{ backend: ReturnType<typeof backendOf>; map: IdMap; mapDir: string }> {
  const backend = backendOf(t, kind, base)
  const mapDir = join(base, 'map')
  const map = await IdMap.open({ dir: mapDir, root: backend.root() })
  t.teardown(() => map.close())
  return { backend, map, mapDir }
}

const pairs: [Kind, Kind][] = [['memory', 'memory'], ['local', 'local'], ['memory', 'local']]

for (const [pk, sk] of pairs) {
  t.test(`${pk} primary, ${sk} standby: random calls shipped in rounds converge`, async (t) => {
    const rnd = prng(seed)
    const base = t.testdir()
    const p = await node(t, pk, join(base, 'primary'))
    const s = await standby(t, sk, join(base, 'standby'))
    const applier = new Applier({ backend: s.backend, map: s.map })
    const work = new Workload(p.layer, p.sink, rnd)
    let shipped = 0
    const calls = Math.min(CALLS[pk], CALLS[sk])
    for (let round = 0; round < 6; round++) {
      if (round < 5) await work.run(calls / 5)
      else {
        // The tree is never empty at the end: a name outside the workload's.
        const end = await p.layer.create(p.layer.root(), Buffer.from('end'), { how: 'guarded', attr: {} }, { uid: 0, gid: 0 })
        await p.layer.write(end.ref, 0n, Buffer.from('the end'), 'file_sync')
      }
      // Ship what is new, in batches of random size, each made durable by flush().
      const batch = await ship(p.layer, p.sink.changes.slice(shipped))
      for (const [i, { seq, change }] of batch.entries()) {
        await applier.apply(seq, change)
        if (rnd() < 0.1 || i === batch.length - 1) t.equal(await applier.flush(), seq)
      }
      shipped = p.sink.changes.length
    }
    t.equal(work.stats.failedAppended, 0, 'failed calls appended nothing')
    t.strictSame(work.stats.strange, [], 'every failure is a VfsError')
    t.ok(work.stats.failed > 10, `${work.stats.failed} calls failed`)
    t.ok(p.sink.changes.length > 2, `${p.sink.changes.length} changes`)
    t.comment(JSON.stringify(work.stats.ok), JSON.stringify(work.stats.errors))
    t.equal(applier.position(), p.sink.last)
    const view = new ReplicatingVfs({ backend: s.backend, map: s.map, sink: new ArraySink() })
    const n = await compareViews(t, p.layer, view, { sameKind: pk === sk, pageSizes: Array.from({ length: 12 }, (_, i) => i + 1) })
    t.ok(n > 0, `${n} objects compared`)
  })
}
