/*
 * The engine's write paths over damaged images (issue 13 point 6: "bit flips in any metadata block
 * never crash or hang the server"): the reader fuzz's base images and mutations (fuzz-run.ts), but
 * each damaged image is opened read-write by the engine and changed — files created, written,
 * truncated, renamed, linked and removed in directories and files the damage may have hit — and
 * then closed. Three judgements per image:
 *   - every call answers or fails with a VfsError (an errno the NFS layer maps), never anything
 *     else, and none runs past the deadline;
 *   - once a call has failed EIO (damage found), the engine is read-only and every later change
 *     fails EROFS: nothing is built on damage (errors=remount-ro);
 *   - close() ends, with nothing thrown but coded errors.
 * Mode 'verify' leaves the checksums wrong (caught by them); 'resum' recomputes them, so only the
 * structural checks stand between the damage and the allocator.
 */
import { performance } from 'node:perf_hooks'
import { BlockDevError } from '../../../vfs/engine/blockdev/block-device.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import type { EngineVfs } from '../../../vfs/engine/fs/engine-vfs.ts'
import { FormatError } from '../../../vfs/engine/format/errors.ts'
import { Jbd2Error } from '../../../vfs/engine/jbd2/errors.ts'
import { TxnError } from '../../../vfs/engine/txn/txn.ts'
import { VfsError } from '../../../vfs/errors.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { rng } from './fuzz-mutate.ts'
import type { Mutation } from './fuzz-mutate.ts'
import { caseSeed, mutatedImage } from './fuzz-run.ts'
import type { LoadedBase } from './fuzz-run.ts'

export type WriteMode = 'verify' | 'resum'
export const WRITE_MODES: readonly WriteMode[] = ['verify', 'resum']

const owner = { uid: 0, gid: 0 }
const te = (s: string): Buffer => Buffer.from(s)

/** Existing paths of the base images (fuzz-base.ts fill): files to change and directories to change. */
const FILES = ['/small/file-2', '/small/file-5', '/fragmented', '/sparse', '/hardlink', '/level-0/level-1/level-2/note', '/big/entry-with-a-longish-name-01234']
const DIRS = ['/', '/small', '/big', '/level-0/level-1', '/level-0/level-1/level-2/level-3']

export interface WriteFailure {
  step: string
  code: string
  message: string
}

export interface WriteCase {
  base: string
  mode: WriteMode
  seed: number
  mutations: Mutation[]
  opened: boolean
  /** Calls made, and how each ended: 'ok' or the error's code. */
  outcomes: Record<string, number>
  failures: WriteFailure[]
  ms: number
}

class Deadline extends Error {
  readonly code = 'FUZZ_TIMEOUT'
}

/** The engine's own coded errors: what open and close may throw on a damaged image. */
function coded(err: unknown): err is VfsError | FormatError | TxnError | BlockDevError | Jbd2Error {
  return err instanceof VfsError || err instanceof FormatError || err instanceof TxnError || err instanceof BlockDevError || err instanceof Jbd2Error
}

function codeOf(err: unknown): string {
  if (coded(err)) return err.code
  if (err instanceof Deadline) return err.code
  return err instanceof Error ? err.name : typeof err
}

/** Make image (base, mode, seed), change it through the engine, close it; judge as the header says. */
export async function writeOne(base: LoadedBase, mode: WriteMode, seed: number, deadlineMs: number): Promise<WriteCase> {
  const r = rng(seed)
  const { dev, mutations } = await mutatedImage(base, r, mode === 'resum')
  const out: WriteCase = { base: base.name, mode, seed, mutations, opened: false, outcomes: {}, failures: [], ms: 0 }
  const start = performance.now()
  const deadline = start + deadlineMs
  let eio = false
  let e: EngineVfs | undefined

  /** One call: it must end by the deadline with a value or a VfsError; after an EIO a change must be EROFS. */
  const call = async <T>(step: string, change: boolean, fn: () => Promise<T>): Promise<T | undefined> => {
    const left = deadline - performance.now()
    let timer: NodeJS.Timeout | undefined
    try {
      const v = await Promise.race([fn(), new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Deadline('past the deadline'))
        }, Math.max(0, left))
      })])
      out.outcomes.ok = (out.outcomes.ok ?? 0) + 1
      if (change && eio) out.failures.push({ step, code: 'BUILT_ON_DAMAGE', message: 'a change succeeded after an EIO (the engine should be read-only)' })
      return v
    } catch (err) {
      const code = codeOf(err)
      out.outcomes[code] = (out.outcomes[code] ?? 0) + 1
      if (!(err instanceof VfsError)) out.failures.push({ step, code, message: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) })
      else if (change && eio && code !== 'EROFS' && code !== 'EIO') out.failures.push({ step, code, message: `a change after an EIO failed ${code}, not EROFS` })
      if (code === 'EIO') {
        eio = true
        if (e !== undefined && !e.readOnly) out.failures.push({ step, code: 'NOT_READ_ONLY', message: 'EIO answered, but the engine stayed read-write' })
      }
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }

  try {
    e = await openEngineOn(dev, { cacheBytes: 4 << 20 })
    out.opened = true
  } catch (err) {
    const code = codeOf(err)
    out.outcomes[`open:${code}`] = 1
    if (!coded(err)) {
      out.failures.push({ step: 'open', code, message: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) })
    }
    await dev.close()
    out.ms = performance.now() - start
    return out
  }
  const engine = e
  const resolve = async (p: string): Promise<FileRef | undefined> => {
    let ref = engine.root()
    for (const part of p.split('/').filter((x) => x !== '')) {
      const found = await call(`lookup ${p}`, false, () => engine.lookup(ref, te(part)))
      if (found === undefined) return undefined
      ref = found.ref
    }
    return ref
  }
  const data = Buffer.alloc(8192, seed & 0xff)
  for (const p of [r.pick(FILES), r.pick(FILES)]) {
    const f = await resolve(p)
    if (f === undefined) continue
    const a = await call(`getattr ${p}`, false, () => engine.getattr(f))
    await call(`write ${p}`, true, () => engine.write(f, BigInt(r.int(3) * 4096), data.subarray(0, 4096), 'unstable'))
    if (a !== undefined) await call(`truncate ${p}`, true, () => engine.setattr(f, { size: a.size / 2n }))
    // Not a change: it waits for what the file's earlier calls made durable (and fails if the journal was aborted).
    await call(`commit ${p}`, false, () => engine.commit(f))
  }
  for (const [i, p] of [r.pick(DIRS), r.pick(DIRS)].entries()) {
    const d = await resolve(p)
    if (d === undefined) continue
    await call(`readdir ${p}`, false, () => engine.readdir(d, 0n, 64))
    const made = await call(`create ${p}/fz-${i}`, true, () => engine.create(d, te(`fz-${i}`), { how: 'guarded', attr: {} }, owner))
    if (made !== undefined) {
      await call(`write ${p}/fz-${i}`, true, () => engine.write(made.ref, 0n, data, 'file_sync'))
      await call(`link ${p}/fz-${i}`, true, () => engine.link(made.ref, d, te(`fz-link-${i}`)))
      await call(`rename ${p}/fz-${i}`, true, () => engine.rename(d, te(`fz-${i}`), engine.root(), te(`fz-moved-${i}`)))
      await call(`remove ${p}/fz-link-${i}`, true, () => engine.remove(d, te(`fz-link-${i}`)))
    }
    const sub = await call(`mkdir ${p}/fz-dir-${i}`, true, () => engine.mkdir(d, te(`fz-dir-${i}`), {}, owner))
    if (sub !== undefined) await call(`symlink ${p}/fz-dir-${i}/l`, true, () => engine.symlink(sub.ref, te('l'), te('../x'), {}, owner))
  }
  const victim = r.pick(FILES)
  const slash = victim.lastIndexOf('/')
  const parent = await resolve(victim.slice(0, slash) || '/')
  if (parent !== undefined) await call(`remove ${victim}`, true, () => engine.remove(parent, te(victim.slice(slash + 1))))
  try {
    await engine.close()
  } catch (err) {
    const code = codeOf(err)
    out.outcomes[`close:${code}`] = 1
    if (!coded(err)) {
      out.failures.push({ step: 'close', code, message: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) })
    }
  }
  out.ms = performance.now() - start
  return out
}

export interface WriteTally {
  images: number
  opened: number
  /** Images where some call failed EIO, and so the engine went read-only. */
  readOnly: number
  outcomes: Record<string, number>
  slowestMs: number
  failures: Array<{ base: string; mode: WriteMode; seed: number; mutations: Mutation[]; failure: WriteFailure }>
}

export async function runWriteFuzz(opts: { bases: LoadedBase[]; images: number; seed: number; deadlineMs: number; onImage?: (i: number, tally: WriteTally) => void }): Promise<WriteTally> {
  const tally: WriteTally = { images: 0, opened: 0, readOnly: 0, outcomes: {}, slowestMs: 0, failures: [] }
  const nb = opts.bases.length
  for (let i = 0; i < opts.images; i++) {
    const base = opts.bases[i % nb]
    const mode = WRITE_MODES[Math.floor(i / nb) % WRITE_MODES.length]
    if (base === undefined || mode === undefined) throw new Error('no base images')
    const res = await writeOne(base, mode, caseSeed(opts.seed, i), opts.deadlineMs)
    tally.images++
    if (res.opened) tally.opened++
    if ((res.outcomes.EIO ?? 0) > 0) tally.readOnly++
    tally.slowestMs = Math.max(tally.slowestMs, res.ms)
    for (const [code, n] of Object.entries(res.outcomes)) tally.outcomes[code] = (tally.outcomes[code] ?? 0) + n
    for (const failure of res.failures) tally.failures.push({ base: res.base, mode, seed: res.seed, mutations: res.mutations, failure })
    opts.onImage?.(i, tally)
  }
  return tally
}

export function describeWriteFailure(f: WriteTally['failures'][number]): string {
  const muts = f.mutations.map((m) => `${m.kind} ${m.target}@${m.at}`).join(', ')
  return `base ${f.base} mode ${f.mode} seed ${f.seed} [${muts}]: ${f.failure.step}: ${f.failure.code}: ${f.failure.message.split('\n').slice(0, 4).join(' | ')}`
}
