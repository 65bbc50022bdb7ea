/*
 * The long DMA fuzz run: test/e2e/fuzz-dma.test.ts's properties over many more sessions (what a
 * session does and what is checked: test/e2e/dma-fuzzer.ts).
 *
 *   npx tsx bench/fuzz-dma.ts [--sessions N] [--seed S] [--record]
 *
 * Prints progress, then the tally (sessions, operations, server records seen and damaged,
 * outcomes by code, failures and the first one), the duration, the heap before and after (each
 * after a full GC), and the relayed connections and server sessions still open; --record writes
 * the summary to bench/fuzz-dma-results.md. Exit status 1 on any failure.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { DmaFuzzer, sessionArbitrary } from '../test/e2e/dma-fuzzer.ts'
import { fuzzRunArgs, heapAfterGc, mib, runSessions } from '../test/e2e/fuzz-run.ts'

const args = fuzzRunArgs('sessions', 2_000)
const { count: sessions, seed, record } = args

const f = await DmaFuzzer.create()
const heapBefore = heapAfterGc()
/** Sessions after which a relayed connection or a server session was still open. */
let leaked = 0
const { failed, seconds } = await runSessions(sessionArbitrary(), args, async (s) => {
  await f.run(s)
  if (f.openConnections > 0 || f.serverSessions > 0) leaked++
}, 250, (n) => `${String(n)} sessions, ${String(f.tally.failures)} failures`)
await f.settle()
const open = f.openConnections
const serverOpen = f.serverSessions
const heapAfter = heapAfterGc()
await f.close()

const t = f.tally
const summary = `# DMA fuzz: last run

\`npx tsx bench/fuzz-dma.ts --sessions ${String(sessions)} --seed ${String(seed)}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What a session does and what is checked: \`test/e2e/dma-fuzzer.ts\` (the quick sample is \`test/e2e/fuzz-dma.test.ts\`).

| figure | value |
|---|---|
| sessions | ${String(t.sessions)} |
| operations (the final CONNECT_CLOSE included) | ${String(t.ops)} |
| server records relayed (replies and posts) | ${String(t.records)} |
| records damaged | ${String(t.damaged)} |
| duration | ${seconds.toFixed(1)} s (${(t.sessions / seconds).toFixed(1)} sessions/s) |
| failures (late, not a client error, or failed undamaged) | ${String(t.failures)} |
| uncaught exceptions and unhandled rejections | ${String(f.escaped)} |
| sessions that left a connection open (after 5 s) | ${String(leaked)} |
| heap before (after GC) | ${mib(heapBefore)} |
| heap after (after GC) | ${mib(heapAfter)} |
| relayed connections / server sessions still open at the end | ${String(open)} / ${String(serverOpen)} |
${t.firstFailure === null ? '' : `\nFirst failure: ${t.firstFailure}\n`}
Operations by outcome (an NdmpClientError's or DmaError's code; Error: a job's own failure, such as "the mover halted: ..."):

| outcome | count |
|---|---|
${Object.entries(t.byOutcome).sort(([, a], [, b]) => b - a).map(([k, n]) => `| ${k} | ${String(n)} |`).join('\n')}
`
process.stdout.write(summary)
if (record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-dma-results.md'), summary)
process.exitCode = failed || t.failures > 0 || f.escaped > 0 || leaked > 0 || open > 0 || serverOpen > 0 ? 1 : 0
