/*
 * The engine's crash checker on top of each volume layer, the long command (issue 14 item 5; the
 * short version is test/vfs/volume/crash-volume-*.test.ts, the checker
 * test/vfs/volume/crash-volume.ts):
 *
 *   npm run proof:crash-volume -- [--layers span,stripe,mirror,raid5,snapshot] [--states N] [--seed S]
 *                                 [--block-size 1024|4096] [--ops N] [--subsets N] [--random-points N]
 *                                 [--lose every|one] [--e2fsck-every N] [--deadline-s S] [--replay INDEX]
 *
 * Per layer: the seeded workload on the engine over the volume, every disk recorded on one clock;
 * the joint crash states (each flush boundary, seeded random ticks; none, all, random subsets and a
 * torn write of the pending writes) sampled down to --states per layer with the seed; each
 * assembled (resync), replayed and judged; mirror and RAID-5 states assembled again with each
 * member lost in turn (--lose every) and compared byte for byte. Exit status 1 on any failure.
 */
import { parseArgs } from 'node:util'
import { CRASH_LAYERS, runVolumeCrashCheck } from '../test/vfs/volume/crash-volume.ts'
import type { CrashLayer } from '../test/vfs/volume/crash-volume.ts'

const { values } = parseArgs({
  options: {
    layers: { type: 'string', default: CRASH_LAYERS.join(',') },
    states: { type: 'string', default: '400' },
    seed: { type: 'string' },
    'block-size': { type: 'string', default: '4096' },
    ops: { type: 'string', default: '40' },
    subsets: { type: 'string', default: '3' },
    'random-points': { type: 'string', default: '200' },
    lose: { type: 'string', default: 'every' },
    'e2fsck-every': { type: 'string', default: '10' },
    'deadline-s': { type: 'string' },
    replay: { type: 'string' },
  },
})

const layers = values.layers.split(',') as CrashLayer[]
for (const l of layers) if (!CRASH_LAYERS.includes(l)) throw new Error(`--layers: ${l} is not one of ${CRASH_LAYERS.join(', ')}`)
const blockSize = Number(values['block-size'])
if (blockSize !== 1024 && blockSize !== 4096) throw new Error(`--block-size ${values['block-size']}: 1024 or 4096`)
if (values.lose !== 'every' && values.lose !== 'one') throw new Error(`--lose ${values.lose}: every or one`)
const lose = values.lose
const seed = Number(values.seed ?? Math.floor(Math.random() * 2 ** 31))
const started = Date.now()
const deadline = values['deadline-s'] === undefined ? undefined : started + Number(values['deadline-s']) * 1000
console.log(`volume crash enumeration: seed ${seed}, layers ${layers.join(', ')}, up to ${values.states} states each, ${blockSize}-byte blocks, ${values.ops} ops`)
let failed = 0
let states = 0
for (const layer of layers) {
  const t0 = Date.now()
  const r = await runVolumeCrashCheck({
    layer,
    seed,
    blockSize,
    ops: Number(values.ops),
    splitCreates: 0,
    subsets: Number(values.subsets),
    randomPoints: Number(values['random-points']),
    maxStates: Number(values.states),
    lose,
    e2fsckEvery: Number(values['e2fsck-every']),
    ...(deadline === undefined ? {} : { deadline }),
    ...(values.replay === undefined ? {} : { only: Number(values.replay) }),
  })
  failed += r.failed
  states += r.states
  const extra = layer === 'snapshot' ? `, ${r.snapshotReads} snapshot reads` : layer === 'mirror' || layer === 'raid5' ? `, ${r.degraded} degraded reads` : ''
  console.log(`${layer} (${r.disks} disks): ${r.ops} ops, ${r.flushes} flushes, ${r.writes} writes; ${r.points} crash points, ${r.enumerated} joint states; ${r.states} checked, ${r.distinct} distinct images, ${r.e2fsckRuns} e2fsck runs${extra}; ${r.failed} failed; ${((Date.now() - t0) / 1000).toFixed(0)} s`)
  for (const f of r.failures.slice(0, 10)) console.log(`  FAIL state #${f.index}: ${f.why} (replay: npm run proof:crash-volume -- ${process.argv.slice(2).filter((a) => !a.startsWith('--layers=')).join(' ')} --layers ${layer} --seed ${seed} --replay ${f.index})`)
}
console.log(`total: seed ${seed}, ${states} states, ${failed} failures, ${((Date.now() - started) / 1000).toFixed(0)} s`)
process.exit(failed === 0 ? 0 : 1)
