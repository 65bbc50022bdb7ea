/*
 * The long fuzz of the ext4 reader (issue 13 point 6): randomly corrupted
 * images (10,000 by default) opened and walked without a crash. The images
 * are made as in test/vfs/engine/fuzz-reader.test.ts (its short version):
 * mkfs.ext4 with 4 KiB and 1 KiB blocks, filled by the kernel through a loop
 * mount (so this needs root), then mutated in memory.
 *
 *   npm run fuzz:engine -- [--images N] [--seed S] [--deadline-ms MS] [--replay BASE:MODE:SEED] [--record]
 *   npm run fuzz:engine -- --write [--images N] [--seed S] [--deadline-ms MS]
 *
 * --write runs the write-path fuzz instead (test/vfs/engine/fuzz-write.ts): each damaged image is
 * opened read-write and changed; only VfsErrors may come back, none past the deadline, and after
 * an EIO every change must be refused (EROFS) and the running transaction never committed.
 *
 * Prints the seed, progress, then the count of images per first error code
 * (per mode) and of every error thrown per code (--record also writes that
 * to bench/fuzz-engine-results.md), and each failure with the seed that
 * makes its image again from the same base images (the bases are rebuilt each
 * run, so a failure is replayed within the run: --replay reruns one case on
 * fresh bases, which reproduces it when the damage does not depend on where
 * the kernel put things). Exit status 1 on any failure.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { loadBase, makeBaseBytes, whyNoBase } from '../test/vfs/engine/fuzz-base.ts'
import type { BaseName } from '../test/vfs/engine/fuzz-base.ts'
import { describeFailure, fuzzOne, MODES, prepare, runFuzz } from '../test/vfs/engine/fuzz-run.ts'
import type { Mode } from '../test/vfs/engine/fuzz-run.ts'
import { describeWriteFailure, runWriteFuzz } from '../test/vfs/engine/fuzz-write.ts'

const { values } = parseArgs({
  options: {
    images: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    'deadline-ms': { type: 'string', default: '5000' },
    replay: { type: 'string' },
    record: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
  },
})
const images = Number(values.images)
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(values.seed)
const deadlineMs = Number(values['deadline-ms'])
if (!Number.isInteger(images) || images < 1) throw new Error(`--images: not a count: ${values.images}`)
if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed: not a seed: ${values.seed ?? ''}`)
const why = whyNoBase()
if (why !== undefined) {
  console.error(`fuzz:engine: cannot build the base images: ${why}`)
  process.exit(2)
}

const names: BaseName[] = ['4k', '1k']
const t0 = performance.now()
const bases = await Promise.all(names.map(async (n) => prepare(await loadBase(n, makeBaseBytes(n)))))
console.log(`base images: ${bases.map((b) => `${b.name} (${b.targets.length} metadata structures, ${b.inodesWalked} inodes)`).join(', ')} in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

/** A line every 1,000 images, for either fuzz, timed from `start`. */
function progress(start: number): (i: number, t: { failures: readonly unknown[] }) => void {
  return (i, t) => {
    if ((i + 1) % 1000 === 0) console.log(`  ${i + 1} images, ${t.failures.length} failures, ${((performance.now() - start) / 1000).toFixed(1)} s`)
  }
}

if (values.write) {
  console.log(`write fuzz: seed ${seed} (--write --seed ${seed} to repeat), ${images} images, deadline ${deadlineMs} ms per image`)
  const start = performance.now()
  const tally = await runWriteFuzz({
    bases,
    images,
    seed,
    deadlineMs,
    onImage: progress(start),
  })
  console.log(`${tally.images} images in ${((performance.now() - start) / 1000).toFixed(1)} s: ${tally.opened} opened, ${tally.readOnly} went read-only, slowest ${tally.slowestMs.toFixed(0)} ms`)
  console.log(`outcomes: ${JSON.stringify(tally.outcomes)}`)
  console.log(`failures: ${tally.failures.length}`)
  for (const f of tally.failures.slice(0, 20)) console.log(describeWriteFailure(f))
  process.exit(tally.failures.length > 0 ? 1 : 0)
}

if (values.replay !== undefined) {
  const [b, m, s] = values.replay.split(':')
  const base = bases.find((x) => x.name === b)
  if (base === undefined || !MODES.includes(m as Mode)) throw new Error(`--replay BASE:MODE:SEED, BASE one of ${names.join(' ')}, MODE one of ${MODES.join(' ')}`)
  const res = await fuzzOne(base, m as Mode, Number(s), deadlineMs)
  console.log(JSON.stringify({ ...res, mutations: res.mutations.map((x) => ({ ...x, bytes: x.bytes.toString('hex') })) }, null, 2))
  process.exit(res.walk.failures.length > 0 ? 1 : 0)
}

console.log(`seed ${seed} (--seed ${seed} to repeat), ${images} images, deadline ${deadlineMs} ms per image`)
const start = performance.now()
const tally = await runFuzz({
  bases,
  images,
  seed,
  deadlineMs,
  onImage: progress(start),
})
const seconds = (performance.now() - start) / 1000
const table = (r: Record<string, number>): string =>
  Object.entries(r)
    .sort(([, a], [, b]) => b - a)
    .map(([k, n]) => `| ${k} | ${n} |`)
    .join('\n')
const summary = `# Reader fuzz: last run

\`npm run fuzz:engine -- --images ${images} --seed ${seed}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What is fuzzed and checked: test/vfs/engine/fuzz-*.ts (the quick sample is test/vfs/engine/fuzz-reader.test.ts).
Bases: ${bases.map((b) => `${b.name} (${b.targets.length} metadata structures walked, ${b.inodesWalked} inodes)`).join(', ')}.

| figure | value |
|---|---|
| images | ${tally.images} |
| duration | ${seconds.toFixed(1)} s (${(tally.images / seconds).toFixed(1)} images/s) |
| opened | ${tally.opened} |
| walked without an error | ${tally.clean} |
| reader calls | ${tally.calls} |
| slowest image | ${tally.slowestMs.toFixed(0)} ms |
| failures (uncoded throw, loop, over-read) | ${tally.failures.length} |

Images by the first error they gave:

| first error | all modes | ${MODES.join(' | ')} |
|---|---|${MODES.map(() => '---|').join('')}
${Object.entries(tally.firstCode)
  .sort(([, a], [, b]) => b - a)
  .map(([k, n]) => `| ${k} | ${n} | ${MODES.map((m) => String(tally.byMode[m][k] ?? 0)).join(' | ')} |`)
  .join('\n')}

Every error thrown, by code:

| code | count |
|---|---|
${table(tally.allCodes)}
`
console.log(`\n${summary}`)
console.log(`failures: ${tally.failures.length}`)
for (const f of tally.failures.slice(0, 20)) console.log(describeFailure(f))
if (values.record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-engine-results.md'), summary)
process.exit(tally.failures.length > 0 ? 1 : 0)
