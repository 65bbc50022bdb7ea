/*
 * What the primary's replicating layer costs by itself (issue 15 item 8), in
 * one process and without a standby: CREATE + 4 KiB UNSTABLE WRITE + COMMIT
 * one at a time, on a local-directory backend alone ("plain") and through
 * the layer with its change log and id map (openReplica: what async mode's
 * reply waits for, the standby's round trip left out), alternating in one
 * series. No RPC and no other process: the fdatasyncs and the layer's own
 * work, with less of the scheduling noise bench/replication.ts suffers from.
 *
 *   npx tsx bench/replication-layer.ts [--ops N] [--rounds R] [--tree DIR]
 *
 * `--tree` runs another checkout's code (e.g. a worktree of an older commit)
 * with this script, for a before/after comparison in one series.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { openReplica as OpenReplica } from '../server/replication/primary.ts'
import type { LocalVfs as LocalVfsClass } from '../vfs/local/local-vfs.ts'
import type { Vfs } from '../vfs/types.ts'

const { values } = parseArgs({ options: { ops: { type: 'string', default: '200' }, rounds: { type: 'string', default: '6' }, tree: { type: 'string' } } })
const ops = Number(values.ops)
const rounds = Number(values.rounds)
const tree = resolve(values.tree ?? join(dirname(fileURLToPath(import.meta.url)), '..'))
const { openReplica } = (await import(join(tree, 'server/replication/primary.ts'))) as { openReplica: typeof OpenReplica }
const { LocalVfs } = (await import(join(tree, 'vfs/local/local-vfs.ts'))) as { LocalVfs: typeof LocalVfsClass }

type Mode = 'plain' | 'layer'

async function series(mode: Mode, work: string): Promise<number> {
  const base = mkdtempSync(join(work, `${mode}-`))
  mkdirSync(join(base, 'data'))
  const backend = new LocalVfs({ root: join(base, 'data'), stateDir: join(base, 'local-state') })
  let vfs: Vfs = backend
  if (mode === 'layer') vfs = (await openReplica(join(base, 'state'), 1, backend, 1n)).vfs
  const data = Buffer.alloc(4096, 7)
  const lat: number[] = []
  try {
    for (let i = 0; i < ops; i++) {
      const t0 = performance.now()
      const f = await vfs.create(vfs.root(), Buffer.from(`f${String(i)}`), { how: 'guarded', attr: { mode: 0o644 } }, { uid: 0, gid: 0 })
      await vfs.write(f.ref, 0n, data, 'unstable')
      await vfs.commit(f.ref, 0n, 0)
      lat.push(performance.now() - t0)
    }
  } finally {
    await vfs.close()
  }
  lat.sort((x, y) => x - y)
  return lat[Math.floor(lat.length / 2)] ?? NaN
}

const work = mkdtempSync(join(tmpdir(), 'tsnfs-bench-repl-layer-'))
const got: Record<Mode, number[]> = { plain: [], layer: [] }
try {
  for (let r = 0; r < rounds; r++) {
    const order: Mode[] = r % 2 === 0 ? ['plain', 'layer'] : ['layer', 'plain']
    for (const mode of order) {
      const ms = await series(mode, work)
      got[mode].push(ms)
      process.stderr.write(`round ${String(r + 1)} ${mode}: median ${ms.toFixed(3)} ms\n`)
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
const med = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)] ?? NaN
const ratios = got.layer.map((l, i) => l / (got.plain[i] ?? NaN))
process.stdout.write(`tree ${tree}\n| mode | latency ms (median of ${String(rounds)} medians) | ÷ plain (median of per-round ratios) |\n|---|---|---|\n`)
process.stdout.write(`| plain | ${med(got.plain).toFixed(3)} | 1.00 |\n| layer | ${med(got.layer).toFixed(3)} | ${med(ratios).toFixed(2)} |\n`)
