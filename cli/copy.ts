/*
 * Copy trees between two Sides (cp, and the shell's get/put). The source is
 * walked first into a list of steps, so the total byte count is known for the
 * progress bar; then the steps run in order: directories before their
 * contents, their final mode and times after them (a read-only directory can
 * still be filled; -p times are not disturbed by the creates inside).
 */
import { at, errnoOf, messageOf, PathError, umask } from './common.ts'
import { Progress } from './progress.ts'
import type { ProgressSink } from './progress.ts'
import type { Side, SideStat } from './sides.ts'
import { copyData } from './transfer.ts'

export interface Place {
  side: Side
  path: string
}

export interface CopyOptions {
  /** Copy directories and their contents; symlinks are copied as symlinks (else followed). */
  recursive: boolean
  /** Keep permission bits (incl. setuid/setgid/sticky), atime and mtime. */
  preserve: boolean
  /** Where the progress bar goes (drawn only if it is a TTY). */
  progress: ProgressSink | null
  /** The umask applied to modes when not preserving (default the process's). */
  umask?: number
}

type Step =
  | { kind: 'dir'; src: string; dst: string; st: SideStat }
  | { kind: 'dir-done'; dst: string; st: SideStat }
  | { kind: 'file'; src: string; dst: string; st: SideStat }
  | { kind: 'symlink'; dst: string; target: string }

interface Plan {
  from: Side
  to: Side
  steps: Step[]
  bytes: number
}

async function walkSource(from: Side, src: string, dst: string, opts: CopyOptions, out: Plan): Promise<void> {
  const st = await at(from.show(src), () => (opts.recursive ? from.lstat(src) : from.stat(src)))
  switch (st.type) {
    case 'directory': {
      if (!opts.recursive) throw new PathError(from.show(src), '-r not specified; omitting directory')
      out.steps.push({ kind: 'dir', src, dst, st })
      const names = (await at(from.show(src), () => from.readdir(src))).sort()
      // A name listed twice (a broken or hostile server) could be a symlink the first time and a
      // directory the second: the copy would then write through its own symlink, anywhere.
      for (let i = 1; i < names.length; i++) {
        if (names[i] === names[i - 1]) throw new PathError(from.show(src), `'${names[i] ?? ''}' is listed twice`)
      }
      for (const name of names) await walkSource(from, from.join(src, name), out.to.join(dst, name), opts, out)
      out.steps.push({ kind: 'dir-done', dst, st })
      return
    }
    case 'symlink':
      out.steps.push({ kind: 'symlink', dst, target: await at(from.show(src), () => from.readlink(src)) })
      return
    case 'file':
      out.steps.push({ kind: 'file', src, dst, st })
      out.bytes += st.size
      return
    default:
      throw new PathError(from.show(src), `cannot copy a ${st.type}`)
  }
}

async function isDirectory(p: Place): Promise<boolean> {
  try {
    return (await p.side.stat(p.path)).type === 'directory'
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false
    throw err
  }
}

async function makeDir(to: Side, path: string, mode: number): Promise<void> {
  try {
    await to.mkdir(path, mode)
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST' || (await to.stat(path)).type !== 'directory') throw err
  }
}

async function makeSymlink(to: Side, target: string, path: string): Promise<void> {
  try {
    await to.symlink(target, path)
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST' || (await to.lstat(path)).type === 'directory') throw err
    await to.unlink(path)
    await to.symlink(target, path)
  }
}

async function runStep(plan: Plan, step: Step, opts: CopyOptions, progress: Progress): Promise<void> {
  const { from, to } = plan
  const mask = ~(opts.umask ?? umask()) & 0o777
  try {
    switch (step.kind) {
      case 'dir':
        // Owner rwx while filling it; the real mode is set at dir-done.
        await makeDir(to, step.dst, (step.st.mode & mask) | 0o700)
        return
      case 'dir-done':
        await to.chmod(step.dst, opts.preserve ? step.st.mode : step.st.mode & mask)
        if (opts.preserve) await to.utimes(step.dst, step.st.atime, step.st.mtime)
        return
      case 'symlink':
        await makeSymlink(to, step.target, step.dst)
        return
      case 'file':
        await copyData(from, step.src, to, step.dst, step.st.mode & mask, progress)
        if (opts.preserve) {
          await to.chmod(step.dst, step.st.mode)
          await to.utimes(step.dst, step.st.atime, step.st.mtime)
        }
        return
    }
  } catch (err) {
    throw err instanceof PathError ? err : new PathError(to.show(step.dst), messageOf(err))
  }
}

/**
 * cp semantics: into DST/basename(SRC) when DST is an existing directory,
 * else to DST itself (several sources need a directory).
 */
export async function copy(sources: readonly Place[], dst: Place, opts: CopyOptions): Promise<number> {
  const dstDir = await at(dst.side.show(dst.path), () => isDirectory(dst))
  if (sources.length > 1 && !dstDir) throw new PathError(dst.side.show(dst.path), 'target is not a directory')
  const plans: Plan[] = []
  for (const src of sources) {
    const name = src.side.basename(src.path)
    const target = dstDir && name !== '' ? dst.side.join(dst.path, name) : dst.path
    if (src.side === dst.side && target === src.path) throw new PathError(src.side.show(src.path), 'source and destination are the same file')
    const plan: Plan = { from: src.side, to: dst.side, steps: [], bytes: 0 }
    await walkSource(src.side, src.path, target, opts, plan)
    plans.push(plan)
  }
  const progress = new Progress(
    plans.reduce((n, p) => n + p.bytes, 0),
    opts.progress,
  )
  try {
    for (const plan of plans) for (const step of plan.steps) await runStep(plan, step, opts, progress)
  } finally {
    progress.finish()
  }
  return progress.bytes
}
