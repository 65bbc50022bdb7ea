/*
 * backend=engine on a volume (issue 14): `volume=NAME,disks=...` instead of `image=`. The disks
 * (paths, or globs of their last component) are expanded when the export opens, the volume is
 * assembled from their member superblocks, its state is logged, and the engine runs on the
 * volume's top layer; closing the engine closes the volume and its disks.
 */
import { readdir } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { PassThroughDevice } from '../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../vfs/engine/fs/assemble.ts'
import { growFileSystem } from '../vfs/engine/resize/grow-fs.ts'
import type { GrowResult } from '../vfs/engine/resize/grow-fs.ts'
import type { OpenEngineOptions } from '../vfs/engine/fs/assemble.ts'
import { redundantChildren } from '../vfs/volume/layer-walk.ts'
import { setMemberState } from '../vfs/volume/member-state.ts'
import type { OpenVolume, ResumedRebuild } from '../vfs/volume/open-volume.ts'
import type { RebuildOptions } from '../vfs/volume/layer.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { ServedVolume } from './volume-registry.ts'
import type { VolumeRegistry } from './volume-registry.ts'
import type { Vfs } from '../vfs/types.ts'
import { setVolumeSnapshots, volumeSnapshotsOf, wrapSnapshots } from './volume-snapshots.ts'
import type { VolumeSnapshots } from './volume-snapshots.ts'
import { VolumeError } from '../vfs/volume/layer.ts'
import { SwappableVfs } from './volume-swap.ts'

const GLOB = /[*?[]/

function globRegExp(pattern: string): RegExp {
  let re = ''
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] ?? ''
    if (ch === '*') re += '[^/]*'
    else if (ch === '?') re += '[^/]'
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 1)
      if (end < 0) throw new Error(`disks: unclosed [ in "${pattern}"`)
      const body = pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')
      re += `[${body}]`
      i = end
    } else re += ch.replace(/[.+^${}()|\\\]]/g, '\\$&')
  }
  return new RegExp(`^${re}$`)
}

/** The disks= list with each glob (in the last path component only) replaced by its matches, sorted. */
export async function expandDisks(patterns: readonly string[]): Promise<string[]> {
  const out: string[] = []
  for (const pattern of patterns) {
    if (!GLOB.test(pattern)) {
      out.push(pattern)
      continue
    }
    const dir = dirname(pattern)
    if (GLOB.test(dir)) throw new Error(`disks: "${pattern}": a glob only in the last path component`)
    const re = globRegExp(basename(pattern))
    const names = (await readdir(dir)).filter((n) => re.test(n)).sort()
    if (names.length === 0) throw new Error(`disks: "${pattern}" matches no file`)
    out.push(...names.map((n) => join(dir, n)))
  }
  return out
}

/** The volume's top layer, whose close closes the whole volume (the engine closes its device). */
class VolumeTop extends PassThroughDevice {
  readonly #v: OpenVolume
  readonly #onClose: () => void
  constructor(v: OpenVolume, onClose: () => void) {
    super(v.device)
    this.#v = v
    this.#onClose = onClose
  }
  override close(): Promise<void> {
    this.#onClose()
    return this.#v.close()
  }
}

export interface VolumeLog {
  info(msg: string): void
  warn(msg: string): void
}

/** Where a served volume is listed (the admin channel and the metrics find it there). */
export interface VolumeServing {
  readonly registry: VolumeRegistry
  readonly exportPath: string
}

/**
 * After a layer failed a member: each child a redundant layer has out of service is logged with
 * its place in the tree; one that is a single disk still recorded ok in the configuration is
 * recorded failed. (A failed child that is a whole subtree, as a stripe under a mirror, names no
 * one disk: it is logged, not recorded.)
 */
function recordFailures(v: OpenVolume, name: string, log: VolumeLog, recording: Set<string>): void {
  for (const child of redundantChildren(v.config.root, v.top)) {
    if (child.state !== 'failed') continue
    const m = v.config.members.find((r) => r.uuid === child.member)
    if (child.member === undefined) {
      log.warn(`volume ${name}: ${child.path} (members ${child.members.join(', ')}) failed: ${child.reason ?? 'unknown'}`)
      continue
    }
    if (m === undefined || m.state !== 'ok' || recording.has(m.uuid)) continue
    recording.add(m.uuid)
    log.warn(`volume ${name}: ${child.path} is member ${v.config.members.indexOf(m)} (${m.uuid}), failed: ${child.reason ?? 'unknown'}`)
    void setMemberState(v, m.uuid, 'failed', child.reason).then(
      (r) => { log.warn(`volume ${name}: member ${m.uuid} recorded failed, configuration seq ${r.config.seq}`) },
      (err: unknown) => { log.warn(`volume ${name}: recording member ${m.uuid} failed: ${err instanceof Error ? err.message : String(err)}`) },
    ).finally(() => recording.delete(m.uuid))
  }
}

/**
 * The rebuilds an open resumed, as the volume's long operation (a `replace`: status shows its
 * progress, the metrics its ratio, and a second replace or a scrub is refused until it ends).
 * Returns where the rebuild's progress goes.
 */
function followResumes(sv: ServedVolume, resuming: readonly ResumedRebuild[], log: VolumeLog): (done: number, total: number) => void {
  const first = resuming[0] as ResumedRebuild
  let report: (done: number, total: number) => void = () => undefined
  for (const r of resuming) log.warn(`volume ${sv.name}: member ${r.index} (${r.uuid}) was rebuilding; the rebuild resumes from ${r.from} bytes in the background`)
  sv.start('replace', { member: first.index, disk: first.path }, async (progress) => {
    report = progress
    try {
      await Promise.all(resuming.map((r) => r.done))
    } catch (err) {
      const closed = err instanceof Error && 'code' in err && err.code === 'BLOCKDEV_CLOSED'
      log.warn(`volume ${sv.name}: resumed rebuild ${closed ? 'stopped by the close (it continues at the next open)' : `failed: ${err instanceof Error ? err.message : String(err)}`}`)
      throw err
    }
    const line = resuming.map((r) => `member ${r.index} rebuilt onto ${r.path} (${r.uuid})`).join('; ')
    log.info(`volume ${sv.name}: ${line}, resumed at open`)
    return `${line}, resumed at open`
  })
  return (done, total) => { report(done, total) }
}

/**
 * Assembles volume `name` from `disks`, logs its state and members, and opens the engine on it.
 * A member absent at start is recorded failed before the engine writes anything, and so is one
 * a layer fails while serving: its disk, if it comes back, is then refused as stale instead of
 * rejoining with data that missed writes. With `serving`, the volume is listed in the registry
 * while it is open, and its events are counted there.
 */
export async function openEngineOnVolume(name: string, disks: readonly string[], opts: OpenEngineOptions & { snapdirVisible?: boolean; rebuild?: RebuildOptions }, log: VolumeLog, serving?: VolumeServing): Promise<Vfs> {
  const paths = await expandDisks(disks)
  // Events may come before openVolume returns (a resync at open); those are only logged and counted.
  const sv = new ServedVolume(name, serving?.exportPath ?? '')
  sv.rebuildRate = opts.rebuild?.rateBytesPerSec ?? 0
  const recording = new Set<string>()
  const { rebuild, ...engineOpts } = opts
  // A rebuild a stop cut short resumes in the background (the export serves at once, degraded);
  // its progress reaches the volume's operation once that is registered.
  let report: ((done: number, total: number) => void) | undefined
  /** Assembles the volume from `at`, logs its state, records members absent at start failed, follows a resumed rebuild. */
  const assemble = async (at: readonly string[]): Promise<OpenVolume> => {
    const v = await openVolume(at, {
      volume: name,
      background: true,
      rebuild: { ...rebuild, onProgress: (done, total) => { report?.(done, total) } },
      onEvent: (e) => {
        sv.count(e)
        const line = `volume ${name}: ${e.layer} ${e.kind}${e.member === undefined ? '' : ` member ${e.member}`}: ${e.message}`
        // A rebuild reports each step: information, not a warning.
        if (e.kind === 'rebuild-progress') log.info(line)
        else log.warn(line)
        if (sv.volume !== null && e.kind === 'member-failed') recordFailures(sv.volume, name, log, recording)
      },
    })
    sv.volume = v
    try {
      const c = v.config
      const state = v.missing.length > 0 ? 'degraded' : 'ok'
      log.info(`volume ${c.name} (id ${c.id}): ${c.root.kind} of ${c.members.length} members, ${v.device.size} bytes, seq ${c.seq}, ${state}`)
      for (const m of v.missing) log.warn(`volume ${c.name}: runs without ${m.reason}`)
      for (const r of v.repairs) log.warn(`volume ${c.name}: ${r.path}: ${r.problems.join('; ')}`)
      for (const m of v.missing) {
        if (c.members[m.index]?.state !== 'ok') continue
        const r = await setMemberState(v, m.uuid, 'failed', `absent at start: ${m.reason}`)
        log.warn(`volume ${c.name}: member ${m.index} (${m.uuid}) recorded failed, configuration seq ${r.config.seq}`)
      }
      if (v.resuming.length > 0) report = followResumes(sv, v.resuming, log)
      return v
    } catch (err) {
      await v.close()
      throw err
    }
  }
  // While the engine is swapped (a grow), its close closes the volume but leaves it listed.
  let swapping = false
  let listed = false
  /** The engine on `v` and the export's Vfs over it; on an error the volume is closed. */
  const serve = async (v: OpenVolume): Promise<Vfs> => {
    try {
      const engine = await openEngineOn(new VolumeTop(v, () => { if (listed && !swapping) serving?.registry.remove(sv) }), engineOpts)
      sv.engine = engine
      // A volume keeping snapshots shows them under .snapshot/ (server/volume-snapshots.ts).
      const served = wrapSnapshots(engine, v, engineOpts)
      sv.snapshots = volumeSnapshotsOf(served) ?? null
      return served
    } catch (err) {
      await v.close()
      throw err
    }
  }
  const v = await assemble(paths)
  listed = serving?.registry.add(sv) ?? false
  if (serving !== undefined && !listed) log.warn(`volume ${v.config.name}: another served volume has this name; the admin channel and the metrics show only the first`)
  let proxy: SwappableVfs
  try {
    proxy = new SwappableVfs(await serve(v))
  } catch (err) {
    if (listed) serving?.registry.remove(sv)
    throw err
  }
  // The snapshot operations of whichever engine serves now (a grow replaces it).
  const live = (): VolumeSnapshots => {
    if (sv.snapshots === null) throw new VolumeError('VOLUME_SNAPSHOT', `volume ${name} is not serving`)
    return sv.snapshots
  }
  setVolumeSnapshots(proxy, { create: (snap) => live().create(snap), list: () => live().list(), delete: (snap) => live().delete(snap) })
  sv.regrow = async (change) => {
    const old = sv.volume
    if (old === null) throw new Error(`volume ${name} is not open`)
    const current = old.config.members.flatMap((m) => old.disks.filter((d) => d.uuid === m.uuid).map((d) => d.path))
    const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)))
    await proxy.hold()
    swapping = true
    let swapped = false
    try {
      // Everything the engine answered is on the disks once it closes (its journal checkpointed: a clean file system).
      await proxy.current?.close()
      let next = current
      let failure: Error | undefined
      try {
        next = [...(await change(current))]
      } catch (err) {
        failure = asError(err)
      }
      let reopened: OpenVolume
      try {
        reopened = await assemble(next)
      } catch (err) {
        // The change may have left the volume as it was: serve that rather than nothing.
        if (next === current) throw err
        reopened = await assemble(current)
        failure ??= asError(err)
      }
      let fs: GrowResult | undefined
      if (failure === undefined) {
        try {
          fs = await growFileSystem(reopened.device)
        } catch (err) {
          failure = asError(err)
        }
      }
      proxy.swap(await serve(reopened))
      swapped = true
      if (failure !== undefined) throw failure
      return { volume: reopened, fs: fs as GrowResult }
    } catch (err) {
      if (!swapped) {
        // No engine to serve: the export's calls fail with EIO until the export is reloaded.
        proxy.swap(null)
        log.warn(`volume ${name}: could not be reopened after the grow, the export answers EIO: ${asError(err).message}`)
      }
      throw err
    } finally {
      swapping = false
      proxy.release()
    }
  }
  return proxy
}
