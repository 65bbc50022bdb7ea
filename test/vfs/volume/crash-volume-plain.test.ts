/*
 * The engine's crash checker on a span, a stripe and a snapshot origin (issue 14 item 5), the short
 * version (the long one: `npm run proof:crash-volume`): every disk of the volume recorded on one
 * clock, a seeded sample of the joint crash states, each assembled (resync of the dirty regions),
 * replayed and judged like an engine crash state; the snapshot origin's disks are the origin and
 * its exception store, and a snapshot taken before the workload must read exact in every state. TSNFS_VOLUME_SEED repeats a run.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { runVolumeCrashCheck } from './crash-volume.ts'
import type { CrashLayer } from './crash-volume.ts'
import { seedOf } from './volume-helpers.ts'

t.setTimeout(300_000)
const haveE2fsck = spawnSync('e2fsck', ['-V'], { encoding: 'utf8' }).status === 0

for (const layer of ['span', 'stripe', 'snapshot'] as CrashLayer[]) {
  t.test(`${layer}: sampled joint crash states recover clean to a model prefix`, async (t) => {
    const seed = seedOf()
    t.comment(`seed ${seed}`)
    const r = await runVolumeCrashCheck({ layer, seed, blockSize: 4096, ops: 13, splitCreates: 0, subsets: 1, randomPoints: 20, maxStates: 16, lose: 'one', e2fsckEvery: haveE2fsck ? 6 : 0 })
    t.comment(`${r.disks} disks, ${r.ops} ops, ${r.flushes} flushes, ${r.writes} writes: ${r.points} crash points, ${r.enumerated} joint states, ${r.states} checked (${r.distinct} distinct images, ${r.e2fsckRuns} e2fsck runs, ${r.degraded} degraded reads), ${r.failed} failed`)
    t.ok(r.flushes > r.ops, `${r.flushes} flushes over the disks`)
    t.ok(r.enumerated > r.states, `${r.enumerated} joint states enumerated, a sample of ${r.states} checked`)
    t.equal(r.states, 16, '16 states checked')
    if (layer === 'snapshot') t.equal(r.snapshotReads, r.states, 'the snapshot taken before the workload read back exact in every state')
    for (const f of r.failures.slice(0, 5)) t.fail(`state #${f.index}: ${f.why} (replay: TSNFS_VOLUME_SEED=${seed})`)
    t.equal(r.failed, 0, 'no state fails')
  })
}
