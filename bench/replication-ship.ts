/*
 * What shipping costs the primary per op (issue 15 item 8), in one process and without a
 * standby: the sender's side of an APPEND — the change log read, each WRITE's bytes found, the
 * call's arguments encoded into one buffer — for CREATE + 4 KiB UNSTABLE WRITE pairs made through
 * the replicating layer over a local-directory backend (openReplica). CPU time of the process
 * (process.cpuUsage: the main thread and the thread pool's reads), per op, this tree and `--tree`
 * alternating in one series, so a before/after comparison is not mixed with the machine's load
 * as bench/replication.ts's is.
 *
 *   npx tsx bench/replication-ship.ts [--ops N] [--rounds R] [--batch C] [--tree DIR]
 *
 * `--batch`: changes per APPEND (default 16: async mode gathers 5 ms of changes).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { ReadAhead as ReadAheadClass } from '../server/replication/batch.ts'
import type { openReplica as OpenReplica } from '../server/replication/primary.ts'
import type { LocalVfs as LocalVfsClass } from '../vfs/local/local-vfs.ts'
import type { Codec } from '../xdr/runtime/codec.ts'
import { XdrWriter } from '../xdr/runtime/writer.ts'

const { values } = parseArgs({ options: { ops: { type: 'string', default: '1000' }, rounds: { type: 'string', default: '8' }, batch: { type: 'string', default: '16' }, tree: { type: 'string' } } })
const ops = Number(values.ops)
const rounds = Number(values.rounds)
const batchChanges = Number(values.batch)
const here = resolve(join(dirname(fileURLToPath(import.meta.url)), '..'))

interface Tree {
  name: string
  openReplica: typeof OpenReplica
  LocalVfs: typeof LocalVfsClass
  ReadAhead: typeof ReadAheadClass
  /** The codec the tree's sender encodes an APPEND with. */
  append: Codec<unknown>
}

async function load(name: string, dir: string): Promise<Tree> {
  const imp = async <T>(p: string): Promise<T> => (await import(join(dir, p))) as T
  const { openReplica } = await imp<{ openReplica: typeof OpenReplica }>('server/replication/primary.ts')
  const { LocalVfs } = await imp<{ LocalVfs: typeof LocalVfsClass }>('vfs/local/local-vfs.ts')
  const { ReadAhead } = await imp<{ ReadAhead: typeof ReadAheadClass }>('server/replication/batch.ts')
  // Before append-wire.ts the sender encoded repl_change objects with the generated codec.
  let append: Codec<unknown>
  try {
    append = (await imp<{ wireAppendArgs: Codec<unknown> }>('server/replication/append-wire.ts')).wireAppendArgs
  } catch {
    append = (await imp<{ repl_append_args: Codec<unknown> }>('xdr/generated/replication.ts')).repl_append_args
  }
  return { name, openReplica, LocalVfs, ReadAhead, append }
}

/** CPU µs per op of shipping `ops` CREATE + WRITE pairs made through the tree's layer. */
async function series(t: Tree, work: string): Promise<number> {
  const base = mkdtempSync(join(work, `${t.name}-`))
  mkdirSync(join(base, 'data'))
  const backend = new t.LocalVfs({ root: join(base, 'data'), stateDir: join(base, 'local-state') })
  const { vfs, log } = await t.openReplica(join(base, 'state'), 1, backend, 1n)
  const data = Buffer.alloc(4096, 7)
  try {
    for (let i = 0; i < ops; i++) {
      const f = await vfs.create(vfs.root(), Buffer.from(`f${String(i)}`), { how: 'guarded', attr: { mode: 0o644 } }, { uid: 0, gid: 0 })
      await vfs.write(f.ref, 0n, data, 'unstable')
    }
    await log.durable(log.lastSeq())
    const ahead = new t.ReadAhead(log, vfs, { changes: batchChanges, bytes: 4 * 1024 * 1024 })
    const cpu0 = process.cpuUsage()
    let bytes = 0
    for (let next = 1n; next <= log.lastSeq();) {
      const batch = await ahead.take(next)
      const w = new XdrWriter(4096)
      t.append.encode(w, { epoch: 1n, export_id: 1, first: next, changes: batch.changes })
      bytes += Buffer.concat(w.finish()).length
      next += BigInt(batch.changes.length)
    }
    const cpu = process.cpuUsage(cpu0)
    if (bytes < ops * 4096) throw new Error(`${t.name}: only ${String(bytes)} bytes shipped`)
    return (cpu.user + cpu.system) / ops
  } finally {
    await vfs.close()
  }
}

const trees = [await load('this', here)]
if (values.tree !== undefined) trees.push(await load('before', resolve(values.tree)))
const work = mkdtempSync(join(tmpdir(), 'tsnfs-bench-repl-ship-'))
const got = new Map<string, number[]>(trees.map((t) => [t.name, []]))
try {
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 === 0 ? trees : [...trees].reverse()) {
      const us = await series(t, work)
      got.get(t.name)?.push(us)
      process.stderr.write(`round ${String(r + 1)} ${t.name}: ${us.toFixed(1)} µs CPU per op\n`)
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
const med = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)] ?? NaN
for (const [name, v] of got) process.stdout.write(`${name}: median ${med(v).toFixed(1)} µs CPU per op (CREATE + 4 KiB WRITE shipped), ${String(v.length)} rounds\n`)
