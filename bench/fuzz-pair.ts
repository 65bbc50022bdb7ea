/*
 * The long pair fuzz run: test/e2e/fuzz-pair.test.ts's properties over many more sessions (what a
 * session does and what is checked: test/e2e/pair-fuzzer.ts).
 *
 *   npx tsx bench/fuzz-pair.ts [--sessions N] [--seed S] [--record]
 *
 * Prints progress, then the tally (sessions, NFS calls by outcome, replies seen and damaged,
 * sessions fenced and compared, failures and the first one), the duration, the heap before and
 * after (each after a full GC), and the relayed connections still open; --record writes the
 * summary to bench/fuzz-pair-results.md. Exit status 1 on any failure.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PairFuzzer, pairSessionArbitrary } from '../test/e2e/pair-fuzzer.ts'
import { fuzzRunArgs, heapAfterGc, mib, runSessions } from '../test/e2e/fuzz-run.ts'

const args = fuzzRunArgs('sessions', 500)
const { count: sessions, seed, record } = args

const f = new PairFuzzer()
const heapBefore = heapAfterGc()
const { failed, seconds } = await runSessions(pairSessionArbitrary(), args, (s) => f.run(s), 50, (n) => `${String(n)} sessions, ${String(f.tally.failures)} failures`)
const heapAfter = heapAfterGc()
f.close()

const t = f.tally
const summary = `# Replicating pair fuzz: last run

\`npx tsx bench/fuzz-pair.ts --sessions ${String(sessions)} --seed ${String(seed)}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What a session does and what is checked: \`test/e2e/pair-fuzzer.ts\` (the quick sample is \`test/e2e/fuzz-pair.test.ts\`).

| figure | value |
|---|---|
| sessions | ${String(t.sessions)} |
| NFS calls on the primary | ${String(t.ops)} |
| standby replies relayed | ${String(f.replies)} |
| replies damaged | ${String(f.damaged)} |
| duration | ${seconds.toFixed(1)} s (${(t.sessions / seconds).toFixed(1)} sessions/s) |
| failures (late, failed for no reason of its list, a standby not caught up, trees that differ) | ${String(t.failures)} |
| uncaught exceptions and unhandled rejections | ${String(f.escaped)} |
| sessions whose primary a damaged reply fenced (not compared) | ${String(t.fenced)} |
| sessions whose trees were compared | ${String(t.compared)} |
| full resyncs run (each session's first, and those the damage made needed) | ${String(t.resyncs)} |
| heap before (after GC) | ${mib(heapBefore)} |
| heap after (after GC) | ${mib(heapAfter)} |
| relayed connections still open at the end | ${String(f.openConnections)} |
${t.firstFailure === null ? '' : `\nFirst failure: ${t.firstFailure.slice(0, 4000)}\n`}
NFS calls by outcome:

| outcome | count |
|---|---|
${Object.entries(t.byOutcome).sort(([, a], [, b]) => b - a).map(([k, n]) => `| ${k} | ${String(n)} |`).join('\n')}
`
process.stdout.write(summary)
if (record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-pair-results.md'), summary)
process.exitCode = failed || t.failures > 0 || f.escaped > 0 || f.openConnections > 0 ? 1 : 0
