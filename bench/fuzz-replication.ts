/*
 * The long replication fuzz run: test/e2e/fuzz-replication.test.ts's
 * properties over many more sessions (what a session does:
 * test/e2e/repl-fuzzer.ts; a fresh standby node each).
 *
 *   npx tsx bench/fuzz-replication.ts [--sessions N] [--seed S] [--record]
 *
 * Prints progress, then the tally (calls, replies by kind and status,
 * changes applied, connections closed, failures, errors logged by message),
 * the duration and the heap before and after (each after a full GC);
 * --record writes the summary to bench/fuzz-replication-results.md. Exit
 * status 1 on any failure or an error other than a change that does not fit.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { fuzzRunArgs, heapAfterGc, mib } from '../test/e2e/fuzz-run.ts'
import { EXPECTED_ERRORS, ReplFuzzer, replSessionArbitrary } from '../test/e2e/repl-fuzzer.ts'

const { count: sessions, seed, record } = fuzzRunArgs('sessions', 5_000)
const heap = heapAfterGc

const f = new ReplFuzzer()
const heapBefore = heap()
const start = process.hrtime.bigint()
const result = await fc.check(
  fc.asyncProperty(replSessionArbitrary, async (s) => {
    await f.run(s)
    if (f.tally.sessions % 500 === 0) process.stderr.write(`  ${String(f.tally.sessions)} sessions, ${String(f.tally.failures)} failures, heap ${mib(process.memoryUsage().heapUsed)}\n`)
    // Keep going after a failure: every session runs and counts (the tally keeps the first failure).
    return true
  }),
  { numRuns: sessions, seed },
)
const seconds = Number(process.hrtime.bigint() - start) / 1e9
const heapAfter = heap()
await f.close()

const t = f.tally
const unexpected = Object.keys(t.errorMessages).filter((m) => !EXPECTED_ERRORS.has(m))
const summary = `# Replication fuzz: last run

\`npx tsx bench/fuzz-replication.ts --sessions ${String(sessions)} --seed ${String(seed)}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What a session does and what is checked: \`test/e2e/repl-fuzzer.ts\` (the quick sample is \`test/e2e/fuzz-replication.test.ts\`).

| figure | value |
|---|---|
| sessions (a fresh standby each) | ${String(t.sessions)} |
| calls | ${String(t.calls)} |
| changes applied and acknowledged durable | ${String(t.applied)} |
| connections the node closed | ${String(t.closed)} |
| duration | ${seconds.toFixed(1)} s (${String(Math.round(t.sessions / seconds))} sessions/s) |
| failures (no reply, a reply that does not decode, the node not answering after) | ${String(t.failures)} |
| errors logged | ${String(t.loggedErrors)}${unexpected.length === 0 ? ' (each a change that does not fit: the export then needs a resync)' : `, unexpected: ${unexpected.join('; ')}`} |
| heap before (after GC) | ${mib(heapBefore)} |
| heap after (after GC) | ${mib(heapAfter)} |
${t.firstFailure === null ? '' : `\nFirst failure: ${t.firstFailure}\n`}
Replies (RPC errors by kind; results as PROCEDURE:status, repl_stat numbers):

| reply | count |
|---|---|
${Object.entries(t.byKind).sort(([, a], [, b]) => b - a).map(([k, n]) => `| ${k} | ${String(n)} |`).join('\n')}
`
process.stdout.write(summary)
if (record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-replication-results.md'), summary)
process.exitCode = result.failed || t.failures > 0 || unexpected.length > 0 ? 1 : 0
