/*
 * The long NDMP fuzz run: test/e2e/fuzz-ndmp.test.ts's properties over many
 * more sessions (what a session does: test/e2e/ndmp-fuzzer.ts).
 *
 *   npx tsx bench/fuzz-ndmp.ts [--sessions N] [--seed S] [--record]
 *
 * Prints progress, then the tally (sessions, messages, replies by error,
 * connections the server closed, failures, handler faults), the duration and
 * the heap before and after (each after a full GC), and the server's open
 * connections and this process's open handles at the end; --record writes
 * the summary to bench/fuzz-ndmp-results.md. Exit status 1 on any failure or fault.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { fuzzRunArgs, heapAfterGc, mib } from '../test/e2e/fuzz-run.ts'
import { NdmpFuzzer, sessionArbitrary } from '../test/e2e/ndmp-fuzzer.ts'

const { count: sessions, seed, record } = fuzzRunArgs('sessions', 10_000)
const heap = heapAfterGc

const f = await NdmpFuzzer.create()
const heapBefore = heap()
const start = process.hrtime.bigint()
let notAlive = 0
const result = await fc.check(
  fc.asyncProperty(sessionArbitrary(f), async (s) => {
    await f.run(s)
    if (!(await f.alive())) notAlive++
    if (f.tally.sessions % 1000 === 0) process.stderr.write(`  ${String(f.tally.sessions)} sessions, ${String(f.tally.failures)} failures, heap ${mib(process.memoryUsage().heapUsed)}\n`)
    // Keep going after a failure: every session runs and counts (the tally keeps the first failure).
    return true
  }),
  { numRuns: sessions, seed },
)
const seconds = Number(process.hrtime.bigint() - start) / 1e9
for (let i = 0; i < 100 && f.openSessions > 0; i++) await new Promise((r) => setTimeout(r, 20))
const open = f.openSessions
// Besides stdio and the server's own listening socket: a mover's or data connection's listener or socket left behind.
const handles = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout' && r !== 'TTYWrap' && r !== 'PipeWrap')
handles.splice(handles.indexOf('TCPServerWrap'), 1)
const heapAfter = heap()
await f.close()

const t = f.tally
const summary = `# NDMP fuzz: last run

\`npx tsx bench/fuzz-ndmp.ts --sessions ${String(sessions)} --seed ${String(seed)}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What a session does and what is checked: \`test/e2e/ndmp-fuzzer.ts\` (the quick sample is \`test/e2e/fuzz-ndmp.test.ts\`).

| figure | value |
|---|---|
| sessions | ${String(t.sessions)} |
| messages sent | ${String(t.messages)} |
| replies | ${String(t.replies)} |
| sessions the server closed | ${String(t.closed)} |
| duration | ${seconds.toFixed(1)} s (${String(Math.round(t.sessions / seconds))} sessions/s) |
| failures (no reply, a reply that is not one, a failed setup) | ${String(t.failures)} |
| new connections not greeted and opened after a session | ${String(notAlive)} |
| handler faults (logged errors) | ${String(t.handlerFaults)} |
| heap before (after GC) | ${mib(heapBefore)} |
| heap after (after GC) | ${mib(heapAfter)} |
| connections still open at the end | ${String(open)} |
| handles open at the end besides stdio and the server's listener | ${handles.length === 0 ? 'none' : handles.join(', ')} |
${t.firstFailure === null ? '' : `\nFirst failure: ${t.firstFailure}\n`}
Replies by the header's error:

| error | count |
|---|---|
${Object.entries(t.byError).sort(([, a], [, b]) => b - a).map(([k, n]) => `| ${k} | ${String(n)} |`).join('\n')}
`
process.stdout.write(summary)
if (record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-ndmp-results.md'), summary)
process.exitCode = result.failed || t.failures > 0 || t.handlerFaults > 0 || notAlive > 0 || open > 0 ? 1 : 0
