/*
 * bench/volume.ts in its smallest form: every layout made, served and measured once, the RAID-5
 * rebuilt idle and under a client, and the report's shape. No timing is asserted (figures on a
 * shared machine mean nothing here); only that each phase ran and produced a positive rate.
 */
import t from 'tap'
import os from 'node:os'
import path from 'node:path'
import fs from 'node:fs'
import { report, volumeBench } from '../../bench/volume.ts'
import type { VolumeBenchOptions } from '../../bench/volume.ts'

t.setTimeout(120_000)

t.test('volume bench, tiny: seq on single, mirror and RAID-5, then the rebuild', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-bench-volume-test-'))
  t.teardown(() => {
    fs.rmSync(dir, { recursive: true, force: true })
  })
  const lines: string[] = []
  const o: VolumeBenchOptions = {
    dir: path.join(dir, 'work'),
    sizeMiB: 4,
    runs: 1,
    fsBytes: 64 * 2 ** 20,
    clientMiB: 2,
    keep: false,
    layouts: ['single', 'mirror', 'raid5'],
    rebuild: true,
    log: (line) => lines.push(line),
  }
  const r = await volumeBench(o)
  for (const phase of ['write', 'read'] as const) {
    for (const layout of o.layouts) t.ok((r.seq[phase][layout][0] ?? 0) > 0, `${layout} ${phase} measured`)
  }
  t.equal(r.rebuild?.memberBytes, 32 * 2 ** 20, 'a 3-member RAID-5 of a 64 MiB volume: 32 MiB members')
  t.ok((r.rebuild?.idleMBps ?? 0) > 0, 'idle rebuild measured')
  t.ok((r.rebuild?.clientWithout.write ?? 0) > 0, 'client rate without a rebuild measured')
  const text = report(r, o)
  t.match(text, /\| write \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/)
  t.match(text, /RAID-5 rebuild \(online replace\), member of 32 MiB: idle [\d.]+ MB\/s/)
  t.match(lines.join('\n'), /run 1 raid5: write/)
  t.notOk(fs.existsSync(o.dir), 'the images are removed')
})
