/*
 * The long client fuzz run: test/e2e/fuzz-client.test.ts's properties over many more sessions
 * (what a session does and what is checked: test/e2e/client-fuzzer.ts).
 *
 *   npx tsx bench/fuzz-client.ts [--sessions N] [--seed S] [--record]
 *
 * Prints progress, then the tally (sessions, operations, replies seen and damaged, outcomes by
 * code, failures and the first one), the duration, the heap before and after (each after a full
 * GC), and the relayed connections still open; --record writes the summary to
 * bench/fuzz-client-results.md. Exit status 1 on any failure.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { ClientFuzzer, sessionArbitrary } from '../test/e2e/client-fuzzer.ts'
import { fuzzRunArgs, heapAfterGc, mib } from '../test/e2e/fuzz-run.ts'

const { count: sessions, seed, record } = fuzzRunArgs('sessions', 2_000)

const f = await ClientFuzzer.create()
const heapBefore = heapAfterGc()
const start = process.hrtime.bigint()
let notAlive = 0
const result = await fc.check(
  fc.asyncProperty(sessionArbitrary(), async (s) => {
    await f.run(s)
    if (!(await f.alive())) notAlive++
    if (f.tally.sessions % 250 === 0) process.stderr.write(`  ${String(f.tally.sessions)} sessions, ${String(f.tally.failures)} failures, heap ${mib(process.memoryUsage().heapUsed)}\n`)
    // Keep going after a failure: every session runs and counts (the tally keeps the first failure).
    return true
  }),
  { numRuns: sessions, seed },
)
const seconds = Number(process.hrtime.bigint() - start) / 1e9
for (let i = 0; i < 100 && f.openConnections > 0; i++) await new Promise((r) => setTimeout(r, 20))
const open = f.openConnections
const heapAfter = heapAfterGc()
await f.close()

const t = f.tally
const summary = `# Client fuzz: last run

\`npx tsx bench/fuzz-client.ts --sessions ${String(sessions)} --seed ${String(seed)}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What a session does and what is checked: \`test/e2e/client-fuzzer.ts\` (the quick sample is \`test/e2e/fuzz-client.test.ts\`).

| figure | value |
|---|---|
| sessions | ${String(t.sessions)} |
| operations (mount and unmount included) | ${String(t.ops)} |
| replies relayed | ${String(t.replies)} |
| replies damaged | ${String(t.damaged)} |
| duration | ${seconds.toFixed(1)} s (${String(Math.round(t.sessions / seconds))} sessions/s) |
| failures (late, not a client error, or failed undamaged) | ${String(t.failures)} |
| uncaught exceptions and unhandled rejections | ${String(f.escaped)} |
| sessions after which a fresh client could not write and read | ${String(notAlive)} |
| heap before (after GC) | ${mib(heapBefore)} |
| heap after (after GC) | ${mib(heapAfter)} |
| relayed connections still open at the end | ${String(open)} |
${t.firstFailure === null ? '' : `\nFirst failure: ${t.firstFailure}\n`}
Operations by outcome:

| outcome | count |
|---|---|
${Object.entries(t.byOutcome).sort(([, a], [, b]) => b - a).map(([k, n]) => `| ${k} | ${String(n)} |`).join('\n')}
`
process.stdout.write(summary)
if (record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-client-results.md'), summary)
process.exitCode = result.failed || t.failures > 0 || f.escaped > 0 || notAlive > 0 || open > 0 ? 1 : 0
