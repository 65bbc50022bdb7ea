/*
 * Crash safety by enumeration, the long command (issue 13 item 5; the short version is
 * test/vfs/engine/crash-enum.test.ts, the checker test/vfs/engine/crash-check.ts):
 *
 *   npm run crash -- [--states N] [--seed S] [--block-size 1024|4096] [--ops N] [--split N]
 *                    [--subsets N] [--torn N] [--no-e2fsck] [--replay INDEX] [--deadline-s S]
 *
 * Runs seeded workloads (creates, renames across directories, hard links, truncates, appends,
 * overwrites, unlinks, and creates that split a directory into an htree) on the engine over a
 * recording device, with 1 KiB and 4 KiB blocks in turn (or the one given), each with the next
 * seed, until N crash states (100,000 by default) have been checked. Each state is recovered by
 * our replay and must be clean for checkImage and e2fsck -fn (once per distinct image) and hold
 * the model's tree after some operation between the last acknowledged and the last issued.
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
    subsets: { type: 'string', default: '8' },
    torn: { type: 'string', default: '4' },
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
    // Enough long-named creates in /big to outgrow one directory block several times over.
    splitCreates: Number(values.split ?? (blockSize === 1024 ? 40 : 130)),
    subsets: Number(values.subsets),
    torn: Number(values.torn),
    e2fsck: !values['no-e2fsck'],
  }
}

if (values.replay !== undefined) {
  const o = options(seed0, sizes[0]!)
  const { state, why } = await replayState(o, Number(values.replay))
  console.log(`seed ${seed0} block size ${o.blockSize} state #${values.replay} ${JSON.stringify(state)}: ${why === '' ? 'passes' : why}`)
  process.exit(why === '' ? 0 : 1)
}

console.log(`crash enumeration: seed ${seed0}, at least ${want} states, block sizes ${sizes.join(', ')}`)
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
    onProgress: (p) => { console.log(`  … seed ${p.seed}: ${p.states} states, ${p.distinct} distinct, ${p.failed} failed, ${Math.round((Date.now() - started) / 1000)} s in all`) },
  })
  states += r.states
  distinct += r.distinct
  e2fsckRuns += r.e2fsckRuns
  failed += r.failed
  console.log(`seed ${r.seed} (${blockSize}-byte blocks, ${r.ops} ops, /big ${r.bigDirBytes} bytes, ${r.flushes} flushes, ${r.writes} writes): ${r.states} states, ${r.distinct} distinct images, ${r.e2fsckRuns} e2fsck runs, ${r.failed} failed`)
  for (const f of r.failures.slice(0, 10)) {
    console.log(`  FAIL state #${f.index} ${JSON.stringify(f.state)}: ${f.why}`)
    console.log(`    replay: npm run crash -- --seed ${r.seed} --block-size ${blockSize} --ops ${o.ops} --split ${o.splitCreates} --subsets ${o.subsets} --torn ${o.torn} --replay ${f.index}`)
  }
}
const secs = (Date.now() - started) / 1000
if (states < want) console.log(`stopped by --deadline-s ${values['deadline-s']} before ${want} states`)
console.log(`total: seed ${seed0}, ${states} states checked, ${distinct} distinct images, ${e2fsckRuns} e2fsck runs, ${failed} failures, ${secs.toFixed(0)} s`)
process.exit(failed === 0 ? 0 : 1)
