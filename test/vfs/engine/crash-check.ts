/*
 * Crash safety by enumeration (issue 13 item 5), the library shared by the short test
 * (crash-enum.test.ts) and the long command (bench/crash-engine.ts).
 *
 * A seeded workload (crash-workload.ts) is recorded on the engine and on a model (crash-record.ts).
 * Crash states: every flush boundary k, and for the writes pending after it: all, none, each single
 * one, seeded random subsets and torn writes. Each state is laid on the durable image of its
 * boundary (one device advanced flush by flush, copy-on-write clones per state), recovered with our
 * `recover`, and judged once per distinct image (MemoryDevice.contentKey): checkImage clean,
 * s_last_orphan 0, the tree read through a read-only engine equal to the model after j operations
 * for some acked ≤ j ≤ issued (crash-compare.ts), and no inode freed by an acknowledged remove of
 * a held file still in use. e2fsck -fn, the independent judge, costs more than all of that
 * together (a process and a 16 MiB image file), so it runs on every Nth distinct image (option
 * e2fsckEvery) and on every image that fails any other check.
 *
 * Why those bounds: an operation whose reply resolved when ≤ k flushes had completed was made
 * durable by one of those flushes, so it must be there; one issued only after flush k + 1
 * completed cannot have reached any state of boundary k. Data writes are FILE_SYNC (durable
 * replies); an overwrite of allocated blocks is not atomic in ordered mode (ext4 writes the data
 * in place, before the transaction), so while one is in flight its file may hold, sector by
 * sector, the old or the new bytes: that and only that is accepted for it. Likewise a truncate
 * that shrinks zeroes the tail of the new last block in place before its transaction commits
 * (Linux: ext4_block_truncate_page, ordered data), so while it is in flight the file may keep its
 * old size with bytes [new size, end of that block) zero, sector by sector.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import type { CrashState } from '../../../vfs/engine/blockdev/recording-device.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { checkImage } from '../../../vfs/engine/fsck/check.ts'
import { dumpVfs } from './engine-helpers.ts'
import type { TreeDump } from './engine-helpers.ts'
import { compare } from './crash-compare.ts'
import { crashStates } from './crash-states.ts'
import { record } from './crash-record.ts'
import type { Recorded, RecordOptions, WorkloadLog } from './crash-record.ts'
import { readAll } from './crash-workload.ts'

/** s_last_orphan's offset in the superblock. */
const S_LAST_ORPHAN = 0xe8

export interface CrashOptions extends RecordOptions {
  /** Random subsets per flush boundary. */
  subsets: number
  /** Torn writes per flush boundary (a random pending write cut at a random sector). */
  torn: number
  /** Stop after this many states (the enumeration is in boundary order). */
  maxStates?: number
  /** Stop at this Date.now() (the report says how many states were checked). */
  deadline?: number
  /**
   * e2fsck -fn on every Nth distinct recovered image (1, the default: every one; 0: never), and
   * on every image that fails otherwise. checkImage judges every distinct image regardless.
   */
  e2fsckEvery?: number
  onProgress?: (r: CrashReport) => void
}

export interface CrashFailure {
  state: CrashState
  /** The state's position in the enumeration, for --replay. */
  index: number
  why: string
}

export interface CrashReport {
  seed: number
  blockSize: number
  ops: number
  bigDirBytes: number
  flushes: number
  writes: number
  /** Ops per kind (first word of their text) in the workload. */
  kinds: Map<string, number>
  /** Removes of a held file that freed its inode (checked gone in every later state). */
  freedHeld: number
  states: number
  distinct: number
  e2fsckRuns: number
  /** States that failed; the first 50 are kept in failures. */
  failed: number
  failures: CrashFailure[]
}

/** What one distinct recovered image showed; kept per content key. */
export interface Judged {
  problems: string
  dump: TreeDump | undefined
  files: Map<string, Buffer>
  /** Indices into Recorded.freed of the inodes still in use in this image. */
  alive: Set<number>
  e2fsckDone: boolean
}

/** What judging needs, kept across states (the volume checker, test/vfs/volume/crash-volume.ts, makes its own). */
export interface JudgeCtx {
  rc: WorkloadLog
  cache: Map<string, Judged>
  report: CrashReport
  tmp: string
  e2fsckEvery: number
}

function e2fsck(ctx: JudgeCtx, dev: MemoryDevice): string {
  ctx.report.e2fsckRuns++
  const file = path.join(ctx.tmp, 'state.img')
  fs.writeFileSync(file, dev.toBuffer())
  const r = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
  return r.status === 0 ? '' : `e2fsck -fn exit ${r.status}: ${`${r.stdout}${r.stderr}`.split('\n').filter((l) => l !== '').slice(0, 12).join(' | ')}`
}

/** Recover, check and dump one state; the judgement is kept per content key. */
async function judge(dev: MemoryDevice, ctx: JudgeCtx): Promise<Judged> {
  const { rc, report } = ctx
  try {
    await recover(dev)
  } catch (err) {
    return { problems: `recover threw ${(err as Error).message}`, dump: undefined, files: new Map(), alive: new Set(), e2fsckDone: true }
  }
  const key = dev.contentKey()
  const seen = ctx.cache.get(key)
  if (seen !== undefined) return seen
  report.distinct++
  const problems: string[] = []
  const fsck = await checkImage(dev)
  if (!fsck.clean) problems.push(`checkImage: ${fsck.problems.slice(0, 5).map((p) => `${p.code} ${p.message}`).join('; ')}`)
  // Nothing may be left on the orphan list once replayed: the engine frees a file in the
  // transaction that removes its last name, so replay alone finishes every unlink.
  const lastOrphan = (await dev.read(1024 + S_LAST_ORPHAN, 4)).readUInt32LE(0)
  if (lastOrphan !== 0) problems.push(`s_last_orphan ${lastOrphan} left after replay`)
  const e2fsckDone = ctx.e2fsckEvery > 0 && (report.distinct - 1) % ctx.e2fsckEvery === 0
  if (e2fsckDone) {
    const e = e2fsck(ctx, dev)
    if (e !== '') problems.push(e)
  }
  let dump: TreeDump | undefined
  const files = new Map<string, Buffer>()
  const alive = new Set<number>()
  try {
    const ro = await openEngineOn(dev.clone({ readOnly: true }), { readOnly: true })
    try {
      dump = await dumpVfs(ro)
      for (const p of new Set(rc.ops.map((o) => o.overwrite).filter((x): x is string => x !== undefined))) {
        const b = await readAll(ro, p)
        if (b !== undefined) files.set(p, b)
      }
      for (const [i, f] of rc.freed.entries()) {
        if (await ro.getattr(f.ref).then(() => true, () => false)) alive.add(i)
      }
    } finally {
      await ro.close()
    }
  } catch (err) {
    problems.push(`read-only open or dump threw ${(err as Error).message}`)
  }
  const j: Judged = { problems: problems.join('; '), dump, files, alive, e2fsckDone }
  ctx.cache.set(key, j)
  return j
}

/** A scratch directory for e2fsck's image file: in memory (/dev/shm) where there is one, 3× faster here. */
export function scratchDir(): string {
  const shm = '/dev/shm'
  let base = os.tmpdir()
  try {
    fs.accessSync(shm, fs.constants.W_OK)
    base = shm
  } catch {
    // No /dev/shm (not Linux): the ordinary temporary directory.
  }
  return fs.mkdtempSync(path.join(base, 'tsnfs-crash-'))
}

function newReport(o: CrashOptions, rc: Recorded | undefined): CrashReport {
  return { seed: o.seed, blockSize: o.blockSize, ops: rc?.ops.length ?? 0, bigDirBytes: rc?.bigDirBytes ?? 0, flushes: rc?.rec.flushes.length ?? 0, writes: rc?.rec.writes.length ?? 0, kinds: rc?.kinds ?? new Map(), freedHeld: rc?.freed.length ?? 0, states: 0, distinct: 0, e2fsckRuns: 0, failed: 0, failures: [] }
}

/** The whole check; failures are collected, never thrown. */
export async function runCrashCheck(o: CrashOptions): Promise<CrashReport> {
  const rc = await record(o)
  const ctx: JudgeCtx = { rc, cache: new Map(), report: newReport(o, rc), tmp: scratchDir(), e2fsckEvery: o.e2fsckEvery ?? 1 }
  const { report } = ctx
  // The durable image of the current boundary, advanced flush by flush (states come in boundary order).
  const durable = rc.base.clone()
  let durableAt = 0
  try {
    let index = 0
    for (const state of crashStates(rc.rec, o.seed, o.subsets, o.torn)) {
      if (o.maxStates !== undefined && index >= o.maxStates) break
      if (o.deadline !== undefined && Date.now() > o.deadline) break
      while (durableAt < state.flushes) rc.rec.advanceDurable(durable, ++durableAt)
      const why = await checkState(ctx, rc.rec.crashStateOn(durable, state), state)
      if (why !== '') {
        report.failed++
        if (report.failures.length < 50) report.failures.push({ state, index, why })
      }
      report.states = ++index
      if (index % 1000 === 0) o.onProgress?.(report)
    }
  } finally {
    fs.rmSync(ctx.tmp, { recursive: true, force: true })
  }
  return report
}

/** '' or why the state fails; e2fsck -fn judges every failing image too (if it has not yet). */
function checkState(ctx: JudgeCtx, dev: MemoryDevice, state: CrashState): Promise<string> {
  const acked = ctx.rc.ackedAt.filter((a) => a <= state.flushes).length
  const issued = ctx.rc.issuedAt.filter((a) => a <= state.flushes).length
  return judgeImage(ctx, dev, acked, issued)
}

/**
 * '' or why a crashed image fails: recovered (journal replay, if `dev` still needs it), checked,
 * and its tree equal to the model after some j ops, `acked` ≤ j ≤ `issued`.
 */
export async function judgeImage(ctx: JudgeCtx, dev: MemoryDevice, acked: number, issued: number): Promise<string> {
  const { rc } = ctx
  const j = await judge(dev, ctx)
  let why = j.problems !== '' ? j.problems : compare(rc, acked, issued, j)
  if (why === '') {
    const kept = rc.freed.filter((f, i) => f.op < acked && j.alive.has(i))
    if (kept.length > 0) why = `inode ${kept[0]!.ref.id} still in use after its last name went (${rc.ops[kept[0]!.op]!.text}, acknowledged)`
  }
  if (why !== '' && !j.e2fsckDone && ctx.e2fsckEvery > 0) {
    j.e2fsckDone = true
    const e = e2fsck(ctx, dev)
    j.problems = [j.problems, e].filter((x) => x !== '').join('; ')
    why = `${why}; ${e === '' ? 'e2fsck -fn clean' : e}`
  }
  return why
}

/** One state again, by its index in the enumeration of the same options (for a failure's replay line). */
export async function replayState(o: CrashOptions, index: number): Promise<{ state: CrashState; why: string }> {
  const rc = await record(o)
  let i = 0
  for (const state of crashStates(rc.rec, o.seed, o.subsets, o.torn)) {
    if (i++ !== index) continue
    const ctx: JudgeCtx = { rc, cache: new Map(), report: newReport(o, rc), tmp: scratchDir(), e2fsckEvery: o.e2fsckEvery === 0 ? 0 : 1 }
    try {
      return { state, why: await checkState(ctx, rc.rec.crashState(rc.base, state), state) }
    } finally {
      fs.rmSync(ctx.tmp, { recursive: true, force: true })
    }
  }
  throw new Error(`state ${index} is past the end of the enumeration (${i} states)`)
}
