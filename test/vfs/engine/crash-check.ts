/*
 * Crash safety by enumeration (issue 13 item 5), the library shared by the short test
 * (crash-enum.test.ts) and the long command (bench/crash-engine.ts).
 *
 * A seeded sequential workload runs on the engine over a RecordingDevice wrapping a MemoryDevice
 * freshly made by our mkfs (commit timer off, so the log depends on the seed alone), and on a
 * MemoryVfs as the model. For each operation we note how many flushes had completed when it was
 * issued and when its reply resolved. Crash states: every flush boundary k, and for the writes
 * pending after it: all, none, each single one, seeded random subsets and torn writes. Each state
 * is cloned, recovered with our `recover`, and judged: our checkImage clean, e2fsck -fn clean (once
 * per distinct image), and the tree read through a read-only engine equal to the model after j
 * operations for some acked ≤ j ≤ issued.
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
import { createHash } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { RecordingDevice, sectorsTouched } from '../../../vfs/engine/blockdev/recording-device.ts'
import type { CrashState, RecordedWrite } from '../../../vfs/engine/blockdev/recording-device.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { checkImage } from '../../../vfs/engine/fsck/check.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import type { FileRef, Vfs } from '../../../vfs/types.ts'
import { dumpVfs, rng } from './engine-helpers.ts'
import type { TreeDump } from './engine-helpers.ts'

export interface CrashOptions {
  seed: number
  blockSize: 1024 | 4096
  /** Operations after the setup (mkdirs); the htree split adds its creates to these. */
  ops: number
  /** Creates into one directory, enough to split it into an htree (0: none). */
  splitCreates: number
  /** Random subsets per flush boundary. */
  subsets: number
  /** Torn writes per flush boundary (a random pending write cut at a random sector). */
  torn: number
  /** Stop after this many states (the enumeration is in boundary order). */
  maxStates?: number
  /** Stop at this Date.now() (the report says how many states were checked). */
  deadline?: number
  imageBytes?: number
  /** Run e2fsck -fn on every distinct recovered image (default true). */
  e2fsck?: boolean
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
  states: number
  distinct: number
  e2fsckRuns: number
  /** States that failed; the first 50 are kept in failures. */
  failed: number
  failures: CrashFailure[]
}

/**
 * `overwrite`: the file whose data this op changes in place (an overwrite, or a truncate that
 * shrinks and zeroes the tail of the new last block); `truncateTo` for a truncate.
 */
type Op = { text: string; run: (vfs: Vfs) => Promise<void>; overwrite?: string; truncateTo?: number }

const OWNER = { uid: 1000, gid: 1000 }

function bytes(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n + 3)
  let s = seed >>> 0
  for (let i = 0; i < n; i += 4) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    b.writeUInt32LE(s, i)
  }
  return b.subarray(0, n)
}

/** A dump as text with its paths sorted (readdir order differs between backends). */
function canon(d: TreeDump | undefined): string {
  if (d === undefined) return 'undefined'
  return JSON.stringify(Object.keys(d).sort().map((k) => [k, d[k]]))
}

async function resolve(vfs: Vfs, p: string): Promise<FileRef> {
  let ref = vfs.root()
  for (const part of p.split('/').filter((x) => x !== '')) ref = (await vfs.lookup(ref, Buffer.from(part))).ref
  return ref
}

function split(p: string): [string, Buffer] {
  const i = p.lastIndexOf('/')
  return [p.slice(0, i), Buffer.from(p.slice(i + 1))]
}

/** Errors a path-based op may meet because an earlier op moved things (same on model and engine). */
async function tolerant(f: () => Promise<unknown>): Promise<void> {
  try {
    await f()
  } catch (err) {
    const code = (err as { code?: string }).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return
    throw err
  }
}

/**
 * The seeded workload: creates, renames across directories, hard links, truncates, appends,
 * overwrites, unlinks, and `splitCreates` creates with long names in /big (an htree split).
 * Ops resolve paths when they run, so one that lost its file fails the same way on both sides.
 */
export function makeWorkload(seed: number, ops: number, splitCreates: number): Op[] {
  const r = rng(seed)
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T
  const dirs = ['/a', '/b', '/c', '/a/d']
  const out: Op[] = []
  for (const d of [...dirs, '/big']) {
    out.push({ text: `mkdir ${d}`, run: async (v) => { const [p, n] = split(d); await tolerant(async () => v.mkdir(await resolve(v, p), n, { mode: 0o755 }, OWNER)) } })
  }
  const files: string[] = []
  const fileName = (): string => `${pick(dirs)}/f${Math.floor(r() * 12)}`
  let splitLeft = splitCreates
  for (let i = 0; i < ops; i++) {
    if (splitLeft > 0 && r() < splitCreates / (splitCreates + ops - i)) {
      const n = splitCreates - splitLeft--
      const name = `entry-${String(n).padStart(4, '0')}-${'y'.repeat(40)}`
      out.push({ text: `create /big/${name}`, run: async (v) => tolerant(async () => v.create(await resolve(v, '/big'), Buffer.from(name), { how: 'guarded', attr: { mode: 0o644 } }, OWNER)) })
      i--
      continue
    }
    const kind = files.length === 0 ? 'create' : pick(['create', 'create', 'append', 'append', 'overwrite', 'truncate', 'rename', 'link', 'remove'])
    const f = kind === 'create' ? fileName() : pick(files)
    const dataSeed = Math.floor(r() * 2 ** 31)
    switch (kind) {
      case 'create': {
        files.push(f)
        out.push({ text: `create ${f}`, run: async (v) => { const [p, n] = split(f); await tolerant(async () => v.create(await resolve(v, p), n, { how: 'unchecked', attr: { mode: 0o640 } }, OWNER)) } })
        break
      }
      case 'append': {
        const len = 1 + Math.floor(r() * (r() < 0.3 ? 40_000 : 3_000))
        out.push({ text: `append ${f} ${len}`, run: async (v) => tolerant(async () => {
          const ref = await resolve(v, f)
          const size = (await v.getattr(ref)).size
          await v.write(ref, size, bytes(dataSeed, len), 'file_sync')
        }) })
        break
      }
      case 'overwrite': {
        const off = Math.floor(r() * 8_000)
        const len = 1 + Math.floor(r() * 6_000)
        out.push({ text: `overwrite ${f} ${off}+${len}`, overwrite: f, run: async (v) => tolerant(async () => v.write(await resolve(v, f), BigInt(off), bytes(dataSeed, len), 'file_sync')) })
        break
      }
      case 'truncate': {
        const size = Math.floor(r() * 20_000)
        out.push({ text: `truncate ${f} ${size}`, overwrite: f, truncateTo: size, run: async (v) => tolerant(async () => v.setattr(await resolve(v, f), { size: BigInt(size) })) })
        break
      }
      case 'rename': {
        const to = fileName()
        files.push(to)
        out.push({ text: `rename ${f} ${to}`, run: async (v) => { const [p, n] = split(f); const [p2, n2] = split(to); await tolerant(async () => v.rename(await resolve(v, p), n, await resolve(v, p2), n2)) } })
        break
      }
      case 'link': {
        const to = fileName()
        files.push(to)
        out.push({ text: `link ${f} ${to}`, run: async (v) => { const [p2, n2] = split(to); await tolerant(async () => v.link(await resolve(v, f), await resolve(v, p2), n2)) } })
        break
      }
      case 'remove': {
        out.push({ text: `remove ${f}`, run: async (v) => { const [p, n] = split(f); await tolerant(async () => v.remove(await resolve(v, p), n)) } })
        break
      }
    }
  }
  return out
}

async function readAll(vfs: Vfs, p: string): Promise<Buffer | undefined> {
  let ref: FileRef
  try {
    ref = await resolve(vfs, p)
  } catch {
    return undefined
  }
  const parts: Buffer[] = []
  for (let off = 0n; ;) {
    const r = await vfs.read(ref, off, 1 << 20)
    if (r.data.length === 0) break
    parts.push(r.data)
    off += BigInt(r.data.length)
    if (r.eof) break
  }
  return Buffer.concat(parts)
}

export interface Recorded {
  rec: RecordingDevice
  base: MemoryDevice
  ops: Op[]
  /** Completed flushes when op i was issued / when its reply resolved. */
  issuedAt: number[]
  ackedAt: number[]
  /** Model dump after j ops (j = 0 … ops.length). */
  models: TreeDump[]
  /** For an overwrite op j: the file's bytes before and after it, by path (every hard link). */
  overwrites: Map<number, { before: Buffer; after: Buffer }>
  /** Size of /big at the end: more than one block means it was split (indexed). */
  bigDirBytes: number
}

/** mkfs, then the workload on the engine (over a recorder) and on the model. */
export async function record(o: CrashOptions): Promise<Recorded> {
  const size = o.imageBytes ?? 16 * 2 ** 20
  const base = new MemoryDevice(size)
  await makeFileSystem(base, { zeroed: true, blockSize: o.blockSize })
  const rec = new RecordingDevice(base.clone())
  const engine = await openEngineOn(rec, { commitIntervalMs: 0 })
  const model = new MemoryVfs()
  const ops = makeWorkload(o.seed, o.ops, o.splitCreates)
  const issuedAt: number[] = []
  const ackedAt: number[] = []
  const models: TreeDump[] = [await dumpVfs(model)]
  const overwrites = new Map<number, { before: Buffer; after: Buffer }>()
  let bigDirBytes: number
  try {
    for (const [j, op] of ops.entries()) {
      const before = op.overwrite === undefined ? undefined : await readAll(model, op.overwrite)
      await op.run(model)
      if (op.overwrite !== undefined && before !== undefined) {
        if (op.truncateTo === undefined) overwrites.set(j, { before, after: (await readAll(model, op.overwrite)) ?? Buffer.alloc(0) })
        else if (op.truncateTo < before.length) {
          // Shrinking: the tail of the new last block is zeroed in place before the size commits (ext4 too).
          const end = Math.min(before.length, Math.ceil(op.truncateTo / o.blockSize) * o.blockSize)
          overwrites.set(j, { before, after: Buffer.from(before).fill(0, op.truncateTo, end) })
        }
      }
      models.push(await dumpVfs(model))
      issuedAt.push(rec.flushes.length)
      await op.run(engine)
      ackedAt.push(rec.flushes.length)
    }
    const got = await dumpVfs(engine)
    const want = models[models.length - 1]
    if (canon(got) !== canon(want)) throw new Error('the engine and the model differ at the end of the workload (run engine-model.test.ts)')
    bigDirBytes = Number((await engine.getattr(await resolve(engine, '/big'))).size)
  } finally {
    await engine.close()
  }
  return { rec, base, ops, issuedAt, ackedAt, models, overwrites, bigDirBytes }
}

/**
 * The primary superblock (1024 bytes at 1024) is two 512-byte sectors, and ext4 writes it in place
 * (needs_recovery at mount, cleared at unmount): a torn one fails its checksum and neither we nor
 * the kernel mount it (e2fsck falls back to the backup in group 1). That is ext4's format, not
 * something the engine can change, so the checker does not tear it; every other write it does.
 */
function isPrimarySuperblock(w: RecordedWrite): boolean {
  return w.offset <= 1024 && w.offset + w.data.length >= 2048 && w.data.length <= 4096
}

/** Every crash state, in order: per boundary all, none, each single, random subsets, torn. */
export function* crashStates(rec: RecordingDevice, seed: number, subsets: number, torn: number): Generator<CrashState> {
  const r = rng(seed ^ 0x5eed)
  for (let k = 0; k <= rec.flushes.length; k++) {
    const pending = rec.pending(k)
    const n = pending.length
    const all = Array.from({ length: n }, (_, i) => i)
    yield { flushes: k, apply: [] }
    if (n === 0) continue
    yield { flushes: k, apply: all }
    if (n > 1) for (let i = 0; i < n; i++) yield { flushes: k, apply: [i] }
    for (let s = 0; s < subsets && n > 2; s++) yield { flushes: k, apply: all.filter(() => r() < 0.5) }
    for (let s = 0; s < torn; s++) {
      const candidates = all.filter((i) => sectorsTouched(pending[i]!, rec.sectorSize) > 1 && !isPrimarySuperblock(pending[i]!))
      if (candidates.length === 0) break
      const w = candidates[Math.floor(r() * candidates.length)]!
      const sectors = 1 + Math.floor(r() * (sectorsTouched(pending[w]!, rec.sectorSize) - 1))
      // Everything before the torn write in completion order is there; everything after may or may not be.
      yield { flushes: k, apply: all.filter((i) => i < w || (i > w && r() < 0.5)), torn: { write: w, sectors } }
    }
  }
}

interface Judged {
  problems: string
  dump: TreeDump | undefined
  files: Map<string, Buffer>
}

function e2fsck(image: Buffer, dir: string): string {
  const file = path.join(dir, 'state.img')
  fs.writeFileSync(file, image)
  const r = spawnSync('e2fsck', ['-fn', file], { encoding: 'utf8' })
  return r.status === 0 ? '' : `e2fsck -fn exit ${r.status}: ${`${r.stdout}${r.stderr}`.split('\n').filter((l) => l !== '').slice(0, 12).join(' | ')}`
}

/** Why the dump of a state matches no model between acked and issued ('' when it matches one). */
function compare(rc: Recorded, j0: number, j1: number, got: Judged): string {
  const gotText = canon(got.dump)
  for (let j = j0; j <= j1; j++) {
    if (canon(rc.models[j]) === gotText) return ''
    // An overwrite in flight (op j): its file may hold old or new bytes, sector by sector.
    const ow = rc.overwrites.get(j)
    const op = rc.ops[j]
    if (ow === undefined || op?.overwrite === undefined || got.dump === undefined) continue
    const want = rc.models[j]!
    const file = op.overwrite
    const mine = got.files.get(file)
    if (mine === undefined || mine.length !== ow.before.length) continue
    // The file and its hard links (same content in the model) compare without content.
    const links = new Set(Object.keys(want).filter((k) => want[k]?.content === want[file]?.content))
    const strip = (d: TreeDump): string => canon(Object.fromEntries(Object.entries(d).map(([k, e]) => [k, links.has(k) ? { ...e, content: '' } : e])))
    if (strip(got.dump) !== strip(want)) continue
    let mixed = true
    for (let s = 0; s < mine.length && mixed; s += 512) {
      // Up to the old size only: an overwrite that extends the file has more bytes after it.
      const end = Math.min(s + 512, mine.length)
      const a = mine.subarray(s, end)
      mixed = a.equals(ow.before.subarray(s, end)) || a.equals(ow.after.subarray(s, end))
    }
    if (mixed) return ''
  }
  const first = rc.models[j0]!
  const diff = Object.keys({ ...first, ...got.dump }).filter((k) => JSON.stringify(first[k]) !== JSON.stringify(got.dump?.[k])).slice(0, 6)
  return `tree matches no model after ${j0}…${j1} ops (differs from ${j0} at ${diff.join(' ')})`
}

/** Recover, check and dump one state; the judgement is kept per image hash. */
async function judge(dev: MemoryDevice, rc: Recorded, cache: Map<string, Judged>, report: CrashReport, tmp: string, runE2fsck: boolean): Promise<Judged> {
  try {
    await recover(dev)
  } catch (err) {
    return { problems: `recover threw ${(err as Error).message}`, dump: undefined, files: new Map() }
  }
  const image = dev.toBuffer()
  const key = createHash('sha1').update(image).digest('hex')
  const seen = cache.get(key)
  if (seen !== undefined) return seen
  report.distinct++
  const problems: string[] = []
  const fsck = await checkImage(dev)
  if (!fsck.clean) problems.push(`checkImage: ${fsck.problems.slice(0, 5).map((p) => `${p.code} ${p.message}`).join('; ')}`)
  if (runE2fsck) {
    report.e2fsckRuns++
    const e = e2fsck(image, tmp)
    if (e !== '') problems.push(e)
  }
  let dump: TreeDump | undefined
  const files = new Map<string, Buffer>()
  try {
    const ro = await openEngineOn(MemoryDevice.fromBuffer(image, { readOnly: true }), { readOnly: true })
    try {
      dump = await dumpVfs(ro)
      for (const p of new Set(rc.ops.map((o) => o.overwrite).filter((x): x is string => x !== undefined))) {
        const b = await readAll(ro, p)
        if (b !== undefined) files.set(p, b)
      }
    } finally {
      await ro.close()
    }
  } catch (err) {
    problems.push(`read-only open or dump threw ${(err as Error).message}`)
  }
  const j: Judged = { problems: problems.join('; '), dump, files }
  cache.set(key, j)
  return j
}

/** The whole check; failures are collected, never thrown. */
export async function runCrashCheck(o: CrashOptions): Promise<CrashReport> {
  const rc = await record(o)
  const report: CrashReport = { seed: o.seed, blockSize: o.blockSize, ops: rc.ops.length, bigDirBytes: rc.bigDirBytes, flushes: rc.rec.flushes.length, writes: rc.rec.writes.length, states: 0, distinct: 0, e2fsckRuns: 0, failed: 0, failures: [] }
  const cache = new Map<string, Judged>()
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-crash-'))
  try {
    let index = 0
    for (const state of crashStates(rc.rec, o.seed, o.subsets, o.torn)) {
      if (o.maxStates !== undefined && index >= o.maxStates) break
      if (o.deadline !== undefined && Date.now() > o.deadline) break
      const why = await checkState(rc, state, cache, report, tmp, o.e2fsck ?? true)
      if (why !== '') {
        report.failed++
        if (report.failures.length < 50) report.failures.push({ state, index, why })
      }
      report.states = ++index
      if (index % 1000 === 0) o.onProgress?.(report)
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  return report
}

async function checkState(rc: Recorded, state: CrashState, cache: Map<string, Judged>, report: CrashReport, tmp: string, runE2fsck: boolean): Promise<string> {
  const dev = rc.rec.crashState(rc.base, state)
  const j = await judge(dev, rc, cache, report, tmp, runE2fsck)
  if (j.problems !== '') return j.problems
  const acked = rc.ackedAt.filter((a) => a <= state.flushes).length
  const issued = rc.issuedAt.filter((a) => a <= state.flushes).length
  return compare(rc, acked, issued, j)
}

/** One state again, by its index in the enumeration of the same options (for a failure's replay line). */
export async function replayState(o: CrashOptions, index: number): Promise<{ state: CrashState; why: string }> {
  const rc = await record(o)
  let i = 0
  for (const state of crashStates(rc.rec, o.seed, o.subsets, o.torn)) {
    if (i++ !== index) continue
    const report: CrashReport = { seed: o.seed, blockSize: o.blockSize, ops: 0, bigDirBytes: 0, flushes: 0, writes: 0, states: 0, distinct: 0, e2fsckRuns: 0, failed: 0, failures: [] }
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-crash-'))
    try {
      return { state, why: await checkState(rc, state, new Map(), report, tmp, o.e2fsck ?? true) }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  }
  throw new Error(`state ${index} is past the end of the enumeration (${i} states)`)
}
