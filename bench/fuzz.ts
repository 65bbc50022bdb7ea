/*
 * The long dispatcher fuzz run (issue 7 point 1; NLM and NSM since session
 * 43): the properties of test/e2e/fuzz-dispatch.test.ts over many more
 * cases (100,000 by default).
 *
 *   npx tsx bench/fuzz.ts [--cases N] [--seed S] [--record]
 *
 * Prints progress, then the outcome counts, failures, duration and the heap
 * before and after (each after a full GC); --record writes that summary to
 * bench/fuzz-results.md. Exit status 1 on any failure or handler fault.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { fuzzRunArgs, heapAfterGc, mib } from '../test/e2e/fuzz-run.ts'
import { DispatchFuzzer, caseArbitrary } from '../test/e2e/dispatch-fuzzer.ts'

const { count: cases, seed, record } = fuzzRunArgs('cases', 100_000)
const heap = heapAfterGc

const f = await DispatchFuzzer.create()
const heapBefore = heap()
const start = process.hrtime.bigint()
let peakHeap = heapBefore
const result = await fc.check(
  fc.asyncProperty(caseArbitrary(f), async (c) => {
    await f.run(c.rec, c.transport)
    if (f.tally.cases % 10_000 === 0) {
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)
      process.stderr.write(`  ${String(f.tally.cases)} cases, ${String(f.tally.failures)} failures, heap ${mib(process.memoryUsage().heapUsed)}\n`)
    }
    // Keep going after a failure: every case runs and counts (the tally keeps the first failing record).
    return true
  }),
  { numRuns: cases, seed },
)
const seconds = Number(process.hrtime.bigint() - start) / 1e9
const heapAfter = heap()
const drc = f.drcSize
const locks = f.lockTableSize()
// Name lookups still in libuv's thread pool (the status monitor's notifications resolve SM_MON names): at most
// MAX_LOOKUPS (server/callback/resolve.ts); before that bound, a million cases left ~2,000 running.
const lookups = process.getActiveResourcesInfo().filter((r) => r === 'GetAddrInfoReqWrap').length
await f.close()

const kinds = Object.entries(f.tally.byKind)
  .sort(([, a], [, b]) => b - a)
  .map(([k, n]) => `| ${k} | ${String(n)} |`)
const summary = `# Dispatcher fuzz: last run

\`npx tsx bench/fuzz.ts --cases ${String(cases)} --seed ${String(seed)}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What is fuzzed and checked: \`test/e2e/dispatch-fuzzer.ts\` (the quick sample is \`test/e2e/fuzz-dispatch.test.ts\`).

| figure | value |
|---|---|
| cases dispatched | ${String(f.tally.cases)} |
| duration | ${seconds.toFixed(1)} s (${String(Math.round(f.tally.cases / seconds))} cases/s) |
| failures (throw, hang, malformed reply) | ${String(f.tally.failures)} |
| handler faults (logged errors) | ${String(f.tally.internalErrors)} |
| heap before (after GC) | ${mib(heapBefore)} |
| heap after (after GC) | ${mib(heapAfter)} |
| peak heap seen | ${mib(peakHeap)} |
| DRC entries at the end | ${String(drc)} |
| name lookups in flight at the end | ${String(lookups)} |
| lock table at the end | ${String(locks.held)} ranges held, ${String(locks.waiting)} waiting, ${String(locks.shares)} shares, ${String(locks.files)} files |
${f.tally.firstFailure === null ? '' : `\nFirst failure: ${f.tally.firstFailure}\n`}
Replies by kind:

| reply | count |
|---|---|
${kinds.join('\n')}

What the lock manager answered (NLM and NLM4 calls that reached it; version 4's names):

| status | count |
|---|---|
${Object.entries(f.tally.lockStats).sort(([, a], [, b]) => b - a).map(([k, n]) => `| ${k} | ${String(n)} |`).join('\n')}
`
process.stdout.write(summary)
if (record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-results.md'), summary)
process.exitCode = result.failed || f.tally.failures > 0 || f.tally.internalErrors > 0 ? 1 : 0
