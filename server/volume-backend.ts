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
import type { OpenEngineOptions } from '../vfs/engine/fs/assemble.ts'
import { setMemberState } from '../vfs/volume/member-state.ts'
import type { OpenVolume } from '../vfs/volume/open-volume.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import type { Vfs } from '../vfs/types.ts'
import { wrapSnapshots } from './volume-snapshots.ts'

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
  constructor(v: OpenVolume) {
    super(v.device)
    this.#v = v
  }
  override close(): Promise<void> {
    return this.#v.close()
  }
}

export interface VolumeLog {
  info(msg: string): void
  warn(msg: string): void
}

/**
 * The configuration member behind member `index` of the top layer, when the top layer is a
 * mirror or RAID-5 straight over disks (every layout `tsnfs volume create` makes): only then does
 * a layer's member index name one disk. Nested layouts' events are logged, not recorded.
 */
function topMemberUuid(v: OpenVolume, layer: string, index: number | undefined): string | undefined {
  const root = v.config.root
  if (index === undefined || (root.kind !== 'mirror' && root.kind !== 'raid5') || layer !== root.kind) return undefined
  if (!root.children.every((c) => c.kind === 'disk')) return undefined
  const child = root.children[index]
  return child?.kind === 'disk' ? child.member : undefined
}

/**
 * Assembles volume `name` from `disks`, logs its state and members, and opens the engine on it.
 * A member absent at start is recorded failed before the engine writes anything, and so is one
 * a layer fails while serving: its disk, if it comes back, is then refused as stale instead of
 * rejoining with data that missed writes.
 */
export async function openEngineOnVolume(name: string, disks: readonly string[], opts: OpenEngineOptions & { snapdirVisible?: boolean }, log: VolumeLog): Promise<Vfs> {
  const paths = await expandDisks(disks)
  // Events may come before openVolume returns (a resync at open); those are only logged.
  const held: { v?: OpenVolume } = {}
  const v = await openVolume(paths, {
    volume: name,
    onEvent: (e) => {
      log.warn(`volume ${name}: ${e.layer} ${e.kind}${e.member === undefined ? '' : ` member ${e.member}`}: ${e.message}`)
      const opened = held.v
      if (opened === undefined || e.kind !== 'member-failed') return
      const uuid = topMemberUuid(opened, e.layer, e.member)
      const m = opened.config.members.find((r) => r.uuid === uuid)
      if (m === undefined || m.state !== 'ok') return
      setMemberState(opened, m.uuid, 'failed', e.message).then(
        (r) => { log.warn(`volume ${name}: member ${m.uuid} recorded failed, configuration seq ${r.config.seq}`) },
        (err: unknown) => { log.warn(`volume ${name}: recording member ${m.uuid} failed: ${err instanceof Error ? err.message : String(err)}`) },
      )
    },
  })
  held.v = v
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
    // A volume keeping snapshots shows them under .snapshot/ (server/volume-snapshots.ts).
    return wrapSnapshots(await openEngineOn(new VolumeTop(v), opts), v, opts)
  } catch (err) {
    await v.close()
    throw err
  }
}
