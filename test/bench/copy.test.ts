import t from 'tap'
import { join } from 'node:path'
import { childCpu, copyBench, copyTable, findNfsCp } from '../../bench/copy.ts'

// Shapes only (no timing is looked at): one short run, no FUSE mount. tsnfs cp runs from dist/.
t.test('bench copy: every phase measured, checked byte-exact, reported with its ratio', async t => {
  const nfsCp = findNfsCp()
  if (nfsCp === null) throw new Error('nfs-cp not found: install libnfs-utils (Debian)')
  const lines: string[] = []
  const rows = await copyBench({ target: 'tsnfs-memory', sizeMiB: 3, runs: 2, mount: false, process: true, nfsCp, log: l => lines.push(l) })
  t.strictSame(rows.map(r => `${r.phase}:${r.reference}:${r.tool}`), ['up:nfs-cp:tsnfs cp', 'up:nfs-cp:library', 'down:nfs-cp:tsnfs cp', 'down:nfs-cp:library'])
  for (const r of rows) {
    t.equal(r.tool_s.length, 2, `${r.phase} ${r.tool}: one time per run`)
    t.ok(r.tool_s.every(s => s > 0) && r.reference_s.every(s => s > 0), 'positive times')
    t.equal(r.speed_ratio, r.reference_median_s / r.tool_median_s)
    // A Node process (tsnfs cp) or the library's copy always takes some CPU; nfs-cp of 3 MiB may round to 0 ms.
    t.ok(r.tool_cpu_s.length === 2 && r.tool_cpu_s.every(c => c > 0), `${r.phase} ${r.tool}: CPU seconds per run`)
    t.ok(r.reference_cpu_s.length === 2 && r.reference_cpu_s.every(c => c >= 0), `${r.phase} ${r.reference}: CPU seconds per run`)
  }
  t.equal(lines.length, 2, 'a line per run')
  t.match(lines[0], /^run 1: up nfs-cp [\d.]+ s, up tsnfs cp [\d.]+ s, up library [\d.]+ s, down nfs-cp /)
  t.match(lines[1], /^run 2: up tsnfs cp [\d.]+ s, up library [\d.]+ s, up nfs-cp /, 'the next run starts with the next tool')
  const table = copyTable(rows, 3).split('\n')
  t.equal(table[0], '3 MiB, medians of 2 alternating runs')
  t.match(table[5], /^\| up \| nfs-cp \| [\d.]+ \| \d+ \| [\d.]+ \| library \| [\d.]+ \| \d+ \| [\d.]+ \| [\d.]+ \|$/)
})

t.test('bench copy --before: another build\'s tsnfs cp timed in the same rotation, both ways', async t => {
  const nfsCp = findNfsCp()
  if (nfsCp === null) throw new Error('nfs-cp not found: install libnfs-utils (Debian)')
  // This build stands in for the other one: only the shape of the rows is checked.
  const before = join(import.meta.dirname, '../../dist/cli/main.js')
  const lines: string[] = []
  const rows = await copyBench({ target: 'tsnfs-memory', sizeMiB: 1, runs: 1, mount: false, process: true, nfsCp, before, log: l => lines.push(l) })
  t.strictSame(rows.slice(4).map(r => `${r.phase}:${r.reference}:${r.tool}`), ['up:nfs-cp:tsnfs cp (before)', 'down:nfs-cp:tsnfs cp (before)'])
  for (const r of rows) t.equal(r.tool_s.length, 1, `${r.phase} ${r.tool}: one time`)
  t.match(lines[0], /up tsnfs cp \(before\) [\d.]+ s, .*down tsnfs cp \(before\) [\d.]+ s/)
})

t.test('CPU seconds from bash times: the last line (the children), minutes counted; no times is an error', t => {
  t.equal(childCpu('0m0.010s 0m0.000s\n0m0.120s 0m0.050s\n'), 0.17)
  t.equal(childCpu('0m0.000s 0m0.000s\n1m2.500s 0m0.250s\n'), 62.75)
  t.throws(() => childCpu('copied 3 bytes\n'), { message: 'no CPU times in "copied 3 bytes\\n"' })
  t.end()
})
