/*
 * Crash safety by enumeration, the long command (issue 13 item 5; the short version is
 * test/vfs/engine/crash-enum.test.ts, the checker test/vfs/engine/crash-check.ts):
 *
 *   npm run crash -- [--states N] [--seed S] [--block-size 1024|4096] [--ops N] [--split N] [--split-name LEN]
 *                    [--subsets N] [--torn N] [--e2fsck-every N] [--no-e2fsck] [--replay INDEX]
 *                    [--deadline-s S]
 *
 * Runs seeded workloads (creates, renames across directories, hard links, truncates, appends,
 * overwrites, unlinks, unlink-while-open, and creates that split a directory into an htree with
 * leaf splits) on the engine over a
 * recording device, with 1 KiB and 4 KiB blocks in turn (or the one given), each with the next
 * seed, until N crash states (100,000 by default) have been checked. Each state is recovered by
 * our replay and must be clean for checkImage (every distinct image) and e2fsck -fn (every Nth
 * distinct image, --e2fsck-every, and every image failing another check), and hold the model's
 * tree after some operation between the last acknowledged and the last issued.
 * Prints the seed, then per workload: states, distinct images, e2fsck runs, failures with the
 * line that replays one. Exit status 1 on any failure.
 */
import { parseArgs } from 'node:util'
import { replayState, runCrashCheck } from '../test/vfs/engine/crash-check.ts'
import type { CrashOptions } from '../test/vfs/engine/crash-check.ts'

const { values } = parseArgs({
  options: {
    states: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    'block-size': { type: 'string' },
    ops: { type: 'string', default: '150' },
    split: { type: 'string' },
    'split-name': { type: 'string', default: '51' },
    subsets: { type: 'string', default: '8' },
    torn: { type: 'string', default: '4' },
    'e2fsck-every': { type: 'string', default: '25' },
    'no-e2fsck': { type: 'boolean', default: false },
    replay: { type: 'string' },
    'deadline-s': { type: 'string' },
  },
})

const seed0 = Number(values.seed ?? Math.floor(Math.random() * 2 ** 31))
const want = Number(values.states)
const sizeArg = values['block-size'] === undefined ? undefined : Number(values['block-size'])
if (sizeArg !== undefined && sizeArg !== 1024 && sizeArg !== 4096) throw new Error(`--block-size ${values['block-size']}: 1024 or 4096`)
const sizes: Array<1024 | 4096> = sizeArg === undefined ? [1024, 4096] : [sizeArg]

function options(seed: number, blockSize: 1024 | 4096): CrashOptions {
  return {
    seed,
    blockSize,
    ops: Number(values.ops),
    // Long-named creates in /big: a few hundred entries, indexed after its first block, then leaf splits.
    splitCreates: Number(values.split ?? (blockSize === 1024 ? 150 : 300)),
    splitNameLength: Number(values['split-name']),
    subsets: Number(values.subsets),
    torn: Number(values.torn),
    e2fsckEvery: values['no-e2fsck'] ? 0 : Number(values['e2fsck-every']),
  }
}

if (values.replay !== undefined) {
  const o = options(seed0, sizes[0]!)
  const { state, why } = await replayState(o, Number(values.replay))
  console.log(`seed ${seed0} block size ${o.blockSize} state #${values.replay} ${JSON.stringify(state)}: ${why === '' ? 'passes' : why}`)
  process.exit(why === '' ? 0 : 1)
}

const every = options(seed0, sizes[0]!).e2fsckEvery ?? 1
console.log(`crash enumeration: seed ${seed0}, at least ${want} states, block sizes ${sizes.join(', ')}`)
console.log(`judges: recover + checkImage + tree vs model on every distinct image; e2fsck -fn ${every === 0 ? 'never' : every === 1 ? 'on every distinct image' : `on every ${every}th distinct image and on every image failing another check`}`)
const started = Date.now()
const deadline = values['deadline-s'] === undefined ? undefined : started + Number(values['deadline-s']) * 1000
let states = 0
let distinct = 0
let e2fsckRuns = 0
let failed = 0
for (let round = 0; states < want && (deadline === undefined || Date.now() < deadline); round++) {
  const blockSize = sizes[round % sizes.length]!
  const o = { ...options(seed0 + round, blockSize), maxStates: want - states, ...(deadline === undefined ? {} : { deadline }) }
  const r = await runCrashCheck({
    ...o,
    onProgress: (p) => { console.log(`  … seed ${p.seed}: ${p.states} states, ${p.distinct} distinct, ${p.failed} failed, ${Math.round((Date.now() - started) / 1000)} s in all, ${((states + p.states) / ((Date.now() - started) / 1000)).toFixed(1)} states/s`) },
  })
  states += r.states
  distinct += r.distinct
  e2fsckRuns += r.e2fsckRuns
  failed += r.failed
  console.log(`seed ${r.seed} (${blockSize}-byte blocks, ${r.ops} ops, /big ${r.bigDirBytes} bytes, ${r.flushes} flushes, ${r.writes} writes): ${r.states} states, ${r.distinct} distinct images, ${r.e2fsckRuns} e2fsck runs, ${r.failed} failed`)
  console.log(`  ops: ${[...r.kinds].map(([k, n]) => `${k} ${n}`).join(', ')}; ${r.freedHeld} held files freed by their remove`)
  for (const f of r.failures.slice(0, 10)) {
    console.log(`  FAIL state #${f.index} ${JSON.stringify(f.state)}: ${f.why}`)
    console.log(`    replay: npm run crash -- --seed ${r.seed} --block-size ${blockSize} --ops ${o.ops} --split ${o.splitCreates} --split-name ${o.splitNameLength} --subsets ${o.subsets} --torn ${o.torn} --replay ${f.index}`)
  }
}
const secs = (Date.now() - started) / 1000
if (states < want) console.log(`stopped by --deadline-s ${values['deadline-s']} before ${want} states`)
console.log(`total: seed ${seed0}, ${states} states checked, ${distinct} distinct images, ${e2fsckRuns} e2fsck runs, ${failed} failures, ${secs.toFixed(0)} s, ${(states / secs).toFixed(1)} states/s`)
process.exit(failed === 0 ? 0 : 1)
