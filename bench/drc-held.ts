/*
 * The standby's part of a sync reply (issue 15 §8; server/replication/drc-held.ts):
 * what a sync primary waits for on each non-idempotent call is both the
 * APPEND of its change (the standby applies it and flushes) and the
 * REPL_DRC_HELD of its cached reply (the standby writes it to replies.drc,
 * O_DSYNC). This sends the two at once, over two connections as the primary
 * does, to a standby service in this process whose target's flush is a real
 * fdatasync of a file (beside replies.drc, same disk), one op at a time, and
 * reports the median time until both are answered, and each alone.
 *
 *   npx tsx bench/drc-held.ts [--ops N] [--runs R] [--tree DIR] [--dir DIR]
 *
 * `--tree DIR` runs another checkout's standby code (before/after in the same
 * minutes); `--dir` puts the files there (default: a temporary directory).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')

const { values } = parseArgs({
  options: {
    ops: { type: 'string', default: '300' },
    runs: { type: 'string', default: '1' },
    tree: { type: 'string' },
    dir: { type: 'string' },
  },
})
const tree = values.tree === undefined ? ROOT : resolve(values.tree)
const ops = Number(values.ops)

// The tree's own modules (its standby code is what is measured).
const load = (p: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(tree, p)).href) as Promise<Record<string, unknown>>
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call */
const { StandbyService }: any = await load('server/replication/standby-service.ts')
const { NodeState }: any = await load('server/replication/node-state.ts')
const { createReplicationProgram, STANDBY_RPC_LIMITS }: any = await load('server/replication/standby-program.ts')
const { RpcServer }: any = await load('server/rpc/server.ts')
const { StreamCaller }: any = await load('server/callback/stream.ts')
const { changeToRepl }: any = await load('server/replication/change-codec.ts')
const { silentLogger }: any = await load('server/logger.ts')
const R: any = await load('xdr/generated/replication.ts')

/** A target whose flush costs what a backend's does at least: an fdatasync of what apply wrote. */
class DiskTarget {
  private pos = 0n
  private last = 0n
  private at = 0
  private readonly fd: FileHandle
  constructor(fd: FileHandle) {
    this.fd = fd
  }
  async apply(seq: bigint): Promise<void> {
    const b = Buffer.alloc(512, Number(seq & 0xffn))
    await this.fd.write(b, 0, b.length, this.at)
    this.at += b.length
    this.last = seq
  }
  async flush(): Promise<bigint> {
    await this.fd.datasync()
    this.pos = this.last
    return this.pos
  }
  position(): bigint {
    return this.pos
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? NaN
}

async function runOnce(): Promise<{ both: number; append: number; held: number }> {
  const dir = mkdtempSync(join(values.dir ?? tmpdir(), 'tsnfs-drc-held-'))
  const fd = await open(join(dir, 'target.data'), 'w+')
  const state = await NodeState.open(join(dir, 'state'), { cluster: 'c1', node: 'standby-1', role: 'standby', epoch: 1n })
  const service = await StandbyService.open({ state, exports: [{ id: 1, path: '/a', target: new DiskTarget(fd) }], log: silentLogger, attachTimeoutMs: 5000 })
  const server = new RpcServer({ programs: [createReplicationProgram(service)], logger: silentLogger, limits: STANDBY_RPC_LIMITS })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  const V1 = R.TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs as Record<'REPL_HELLO' | 'REPL_APPEND' | 'REPL_DRC_HELD', { proc: number }>
  const at = (proc: number): object => ({ prog: R.TSNFS_REPL_PROG.prog, vers: 1, proc })
  const c = await StreamCaller.open({ host: '127.0.0.1', port }, { timeoutMs: 10_000 })
  const c2 = await StreamCaller.open({ host: '127.0.0.1', port }, { timeoutMs: 10_000 })
  const hello = await c.call(at(V1.REPL_HELLO.proc), R.repl_hello_args, {
    version: 1, cluster: Buffer.from('c1'), node: Buffer.from('primary-1'), epoch: 1n, handle_key: Buffer.alloc(32, 9),
    exports: [{ export_id: 1, path: Buffer.from('/a'), sync: true }], export_list: Buffer.alloc(0), mount_list: Buffer.alloc(0),
  }, R.repl_hello_res)
  if (hello.status !== 0) throw new Error(`HELLO: ${String(hello.status)}`)
  const both: number[] = []
  const append: number[] = []
  const held: number[] = []
  const reply = Buffer.alloc(200, 7)
  for (let i = 1; i <= ops; i++) {
    const seq = BigInt(i)
    // A CREATE: the change and its cached reply.
    const change = changeToRepl({ op: 'create', obj: { dir: { id: 1n, gen: 1 }, name: Buffer.from(`f${String(i)}`), ref: { id: BigInt(1000 + i), gen: 1 }, mode: 0o644, uid: 0, gid: 0 }, exclusive: null, times: [] })
    const t0 = performance.now()
    let tA = 0
    let tH = 0
    const a = c.call(at(V1.REPL_APPEND.proc), R.repl_append_args, { epoch: 1n, export_id: 1, first: seq, changes: [change] }, R.repl_append_res).then((r: { status: number }) => {
      tA = performance.now()
      if (r.status !== 0) throw new Error(`APPEND ${String(i)}: ${String(r.status)}`)
    })
    const h = c2.call(at(V1.REPL_DRC_HELD.proc), R.repl_drc_held_args, { epoch: 1n, entries: [{ export_id: 1, seq, key: Buffer.from(`10.0.0.1|${String(i)}|100003|3|8`), reply }] }, R.repl_rs_res).then((r: { status: number }) => {
      tH = performance.now()
      if (r.status !== 0) throw new Error(`REPL_DRC_HELD ${String(i)}: ${String(r.status)}`)
    })
    await Promise.all([a, h])
    both.push(Math.max(tA, tH) - t0)
    append.push(tA - t0)
    held.push(tH - t0)
  }
  c.close()
  c2.close()
  await server.close()
  await service.idle()
  await service.close()
  await fd.close()
  rmSync(dir, { recursive: true, force: true })
  return { both: median(both), append: median(append), held: median(held) }
}

for (let r = 1; r <= Number(values.runs); r++) {
  const m = await runOnce()
  console.log(`run ${String(r)} (${tree === ROOT ? 'this tree' : tree}): ${String(ops)} ops, median ms: both answered ${m.both.toFixed(3)}, APPEND ${m.append.toFixed(3)}, REPL_DRC_HELD ${m.held.toFixed(3)}`)
}
