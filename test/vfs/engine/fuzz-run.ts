/*
 * The reader fuzz loop: image i is base i % bases, mode by i / bases (three
 * modes: the default checksum verifier, NO_VERIFY, and checksums recomputed
 * after the damage then verified), and a seed of its own derived from the run
 * seed, so any image can be made again alone (fuzzOne with the same base
 * bytes). Each image gets 1 to 3 mutations of metadata picked by kind first
 * (so the one superblock is hit as often as the thousands of inodes).
 */
import { performance } from 'node:perf_hooks'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { decodeSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE } from '../../../vfs/engine/format/superblock.ts'
import { hasMetadataCsum } from '../../../vfs/engine/reader/csum-verifier.ts'
import { NO_VERIFY } from '../../../vfs/engine/reader/verify.ts'
import type { MetadataKind } from '../../../vfs/engine/reader/verify.ts'
import type { BaseImage, Target } from './fuzz-base.ts'
import { mutation, rng } from './fuzz-mutate.ts'
import type { Mutation } from './fuzz-mutate.ts'
import { resum } from './fuzz-resum.ts'
import { walkImage } from './fuzz-walk.ts'
import type { WalkFailure, WalkResult } from './fuzz-walk.ts'

export type Mode = 'verify' | 'noverify' | 'resum'
export const MODES: readonly Mode[] = ['verify', 'noverify', 'resum']

export interface LoadedBase extends BaseImage {
  dev: MemoryDevice
  byKind: Map<MetadataKind, Target[]>
}

export function prepare(base: BaseImage): LoadedBase {
  const byKind = new Map<MetadataKind, Target[]>()
  for (const t of base.targets) byKind.set(t.kind, [...(byKind.get(t.kind) ?? []), t])
  return { ...base, dev: MemoryDevice.fromBuffer(base.bytes), byKind }
}

export interface CaseResult {
  base: string
  mode: Mode
  seed: number
  mutations: Mutation[]
  walk: WalkResult
  ms: number
}

/** The seed of image i of a run (a fixed mix, so it can be printed and replayed). */
export function caseSeed(runSeed: number, i: number): number {
  return rng((runSeed ^ Math.imul(i + 1, 0x9e3779b9)) >>> 0).u32()
}

/**
 * A copy of `base` with 1 to 3 mutations drawn from `r`, their checksums made right again when
 * `resum` (so the damage reaches the checks behind them): how every reader and writer fuzz case
 * starts. `r` is left where the mutations stopped, for a case that goes on drawing from it.
 */
export async function mutatedImage(base: LoadedBase, r: ReturnType<typeof rng>, resumSums: boolean): Promise<{ dev: MemoryDevice; mutations: Mutation[] }> {
  const dev = base.dev.clone({ readOnly: false })
  const kinds = [...base.byKind.keys()]
  const touched: Target[] = []
  const mutations: Mutation[] = []
  for (let n = 1 + r.int(3); n > 0; n--) {
    const t = r.pick(base.byKind.get(r.pick(kinds)) ?? [])
    const m = mutation(r, t, base.bytes, base.blockSize)
    dev.writeSync(m.at, m.bytes)
    touched.push(t)
    mutations.push(m)
  }
  if (resumSums) for (const t of touched) await resum(dev, t)
  return { dev, mutations }
}

/** Make image (base, mode, seed) and walk it. */
export async function fuzzOne(base: LoadedBase, mode: Mode, seed: number, deadlineMs: number): Promise<CaseResult> {
  const { dev, mutations } = await mutatedImage(base, rng(seed), mode === 'resum')
  const start = performance.now()
  const walk = await walkImage(dev, { verifier: mode === 'noverify' ? NO_VERIFY : undefined, deadlineMs })
  const ms = performance.now() - start
  if (mode === 'verify' && hasMetadataCsum(decodeSuperblock(await dev.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)))) judgeUndetected(base, walk)
  await dev.close()
  return { base: base.name, mode, seed, mutations, walk, ms }
}

/**
 * With checksums verified, damage must be caught or make no difference: a
 * call that answers, but otherwise than on the undamaged image, read damage
 * as truth. (Not judged when the damage cleared metadata_csum itself: then
 * nothing is verified, by the kernel either.)
 */
export function judgeUndetected(base: LoadedBase, walk: WalkResult): void {
  for (const [step, d] of walk.digests) {
    const was = base.digests.get(step)
    if (was === undefined || was === d || d === 'zero-inode') continue
    walk.codes.UNDETECTED = (walk.codes.UNDETECTED ?? 0) + 1
    walk.failures.push({ step, code: 'UNDETECTED', message: 'answered differently from the undamaged image, with every checksum verified', stack: '' })
  }
}

export interface Tally {
  images: number
  opened: number
  /** Images walked without any error. */
  clean: number
  /** Per image, the code of the first error it gave (or "clean"). */
  firstCode: Record<string, number>
  /** Every error thrown, by code. */
  allCodes: Record<string, number>
  /** firstCode, per mode. */
  byMode: Record<Mode, Record<string, number>>
  calls: number
  slowestMs: number
  failures: Array<{ base: string; mode: Mode; seed: number; mutations: Mutation[]; failure: WalkFailure }>
}

export interface RunOptions {
  bases: LoadedBase[]
  images: number
  seed: number
  deadlineMs: number
  /** Called after each image (progress). */
  onImage?: (i: number, tally: Tally) => void
}

export async function runFuzz(opts: RunOptions): Promise<Tally> {
  const tally: Tally = { images: 0, opened: 0, clean: 0, firstCode: {}, allCodes: {}, byMode: { verify: {}, noverify: {}, resum: {} }, calls: 0, slowestMs: 0, failures: [] }
  const nb = opts.bases.length
  for (let i = 0; i < opts.images; i++) {
    const base = opts.bases[i % nb]
    const mode = MODES[Math.floor(i / nb) % MODES.length]
    if (base === undefined || mode === undefined) throw new Error('no base images')
    const res = await fuzzOne(base, mode, caseSeed(opts.seed, i), opts.deadlineMs)
    tally.images++
    if (res.walk.opened) tally.opened++
    tally.calls += res.walk.calls
    tally.slowestMs = Math.max(tally.slowestMs, res.ms)
    const codes = Object.entries(res.walk.codes)
    if (codes.length === 0) tally.clean++
    const first = codes[0]?.[0] ?? 'clean'
    tally.firstCode[first] = (tally.firstCode[first] ?? 0) + 1
    tally.byMode[mode][first] = (tally.byMode[mode][first] ?? 0) + 1
    for (const [code, n] of codes) tally.allCodes[code] = (tally.allCodes[code] ?? 0) + n
    for (const failure of res.walk.failures) tally.failures.push({ base: res.base, mode, seed: res.seed, mutations: res.mutations, failure })
    opts.onImage?.(i, tally)
  }
  return tally
}

/** One failure as text: how to make the image again, what was written, what was thrown where. */
export function describeFailure(f: Tally['failures'][number]): string {
  const muts = f.mutations.map((m) => `${m.kind} ${m.target} @${m.at}=${m.bytes.length > 8 ? `${m.bytes.length}B` : m.bytes.toString('hex')}`).join(', ')
  return `base ${f.base} mode ${f.mode} seed ${f.seed} [${muts}]: ${f.failure.step}: ${f.failure.code}: ${f.failure.message}\n${f.failure.stack.split('\n').slice(1, 4).join('\n')}`
}
