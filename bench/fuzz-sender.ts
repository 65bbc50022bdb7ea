/*
 * The long sender fuzz run: test/e2e/fuzz-sender.test.ts's properties over many more sessions
 * (what a session does and what is checked: test/e2e/sender-fuzzer.ts).
 *
 *   npx tsx bench/fuzz-sender.ts [--sessions N] [--seed S] [--record]
 *
 * Prints progress, then the tally (sessions, changes, replies seen and damaged, what the senders
 * counted, failures and the first one), the duration, the heap before and after (each after a
 * full GC), and the relayed connections still open; --record writes the summary to
 * bench/fuzz-sender-results.md. Exit status 1 on any failure.
 */
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SenderFuzzer, senderSessionArbitrary } from '../test/e2e/sender-fuzzer.ts'
import { fuzzRunArgs, heapAfterGc, mib, runSessions } from '../test/e2e/fuzz-run.ts'

const args = fuzzRunArgs('sessions', 1_000)
const { count: sessions, seed, record } = args

const f = new SenderFuzzer()
const heapBefore = heapAfterGc()
const { failed, seconds } = await runSessions(senderSessionArbitrary(), args, (s) => f.run(s), 250, (n) => `${String(n)} sessions, ${String(f.tally.failures)} failures`)
const heapAfter = heapAfterGc()
f.close()

const t = f.tally
const summary = `# Sender fuzz: last run

\`npx tsx bench/fuzz-sender.ts --sessions ${String(sessions)} --seed ${String(seed)}\` on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.
What a session does and what is checked: \`test/e2e/sender-fuzzer.ts\` (the quick sample is \`test/e2e/fuzz-sender.test.ts\`).

| figure | value |
|---|---|
| sessions | ${String(t.sessions)} |
| changes appended | ${String(t.changes)} |
| standby replies relayed | ${String(f.replies)} |
| replies damaged | ${String(f.damaged)} |
| duration | ${seconds.toFixed(1)} s (${String(Math.round(t.sessions / seconds))} sessions/s) |
| failures (a wait not ended in time, acknowledged past the log, a standby not caught up once and in order, a sync wait ended early) | ${String(t.failures)} |
| uncaught exceptions and unhandled rejections | ${String(f.escaped)} |
| connections the senders opened | ${String(t.connects)} |
| gaps resent from | ${String(t.gaps)} |
| replies that claimed changes never sent (session ended) | ${String(t.violations)} |
| standbys declared dead | ${String(t.deaths)} |
| sync sessions whose standby was in the sync set after the damage | ${String(t.syncMember)} |
| heap before (after GC) | ${mib(heapBefore)} |
| heap after (after GC) | ${mib(heapAfter)} |
| relayed connections still open at the end | ${String(f.openConnections)} |
${t.firstFailure === null ? '' : `\nFirst failure: ${t.firstFailure}\n`}`
process.stdout.write(summary)
if (record) writeFileSync(join(dirname(fileURLToPath(import.meta.url)), 'fuzz-sender-results.md'), summary)
process.exitCode = failed || t.failures > 0 || f.escaped > 0 || f.openConnections > 0 ? 1 : 0
