/*
 * Crash safety by enumeration, the short version (issue 13 item 5; the long one is
 * `npm run crash`): a seeded workload on the engine over a recording device, then every flush
 * boundary with all, none, each single, random subsets and torn pending writes; each state
 * recovered, checked by checkImage and e2fsck -fn, and its tree equal to the model after some
 * operation between the last acknowledged and the last issued. CRASH_SEED repeats a run.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { crashStates, runCrashCheck } from './crash-check.ts'

// The machine may be shared and slow: the states are few, but each is a recovery, two checks and a dump.
t.setTimeout(600_000)

const haveE2fsck = spawnSync('e2fsck', ['-V'], { encoding: 'utf8' }).status === 0

for (const [blockSize, ops, splitCreates] of [[1024, 8, 20], [4096, 14, 0]] as const) {
  t.test(`every crash state of a ${blockSize}-byte-block workload recovers clean to a model prefix`, async (t) => {
    const seed = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.comment(`seed ${seed}`)
    const r = await runCrashCheck({ seed, blockSize, ops, splitCreates, subsets: 1, torn: 2, e2fsck: haveE2fsck })
    t.comment(`${r.ops} ops, ${r.flushes} flushes, ${r.writes} writes: ${r.states} states, ${r.distinct} distinct images, ${r.e2fsckRuns} e2fsck runs, ${r.failed} failed`)
    if (!haveE2fsck) t.comment('e2fsck not installed: only checkImage judged the images')
    t.ok(r.states >= 100, `${r.states} states checked`)
    t.ok(r.distinct >= 20, `${r.distinct} distinct recovered images`)
    if (splitCreates > 0) t.ok(r.bigDirBytes > blockSize, `/big grew to ${r.bigDirBytes} bytes (split into an htree)`)
    for (const f of r.failures.slice(0, 5)) t.fail(`state #${f.index} ${JSON.stringify(f.state)}: ${f.why} (replay: npm run crash -- --seed ${seed} --block-size ${blockSize} --ops ${ops} --split ${splitCreates} --subsets 1 --torn 2 --replay ${f.index})`)
    t.equal(r.failed, 0, 'no state fails')
  })
}

t.test('the enumeration covers none, all, each single, subsets and torn writes at every boundary', async (t) => {
  const base = new MemoryDevice(16 * 2 ** 20)
  await makeFileSystem(base, { zeroed: true, blockSize: 4096 })
  const rec = new RecordingDevice(base.clone())
  await rec.write(8192, Buffer.alloc(4096, 1))
  await rec.write(12288, Buffer.alloc(4096, 2))
  await rec.write(16384, Buffer.alloc(4096, 3))
  await rec.flush()
  const states = [...crashStates(rec, 7, 2, 1)]
  t.strictSame(states.slice(0, 5).map((s) => [s.flushes, s.apply]), [[0, []], [0, [0, 1, 2]], [0, [0]], [0, [1]], [0, [2]]])
  t.equal(states.filter((s) => s.flushes === 0 && s.torn !== undefined).length, 1, 'one torn state at boundary 0')
  t.strictSame(states[states.length - 1], { flushes: 1, apply: [] }, 'after the last flush nothing is pending')
  const torn = states.find((s) => s.torn !== undefined)!
  t.notOk(torn.apply.includes(torn.torn!.write), 'the torn write is not also applied whole')
  // A state is a device recovery accepts (nothing journaled here: nothing to replay).
  const r = await recover(rec.crashState(base, torn))
  t.equal(r.transactions, 0)
})
