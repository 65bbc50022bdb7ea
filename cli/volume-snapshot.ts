/*
 * tsnfs volume snapshot create|list|delete DISK... [--name SNAP] [--json]: a volume's snapshots,
 * offline (no server has the disks open). Create opens the engine on the volume when it holds a
 * file system, so the snapshot is taken frozen (journal committed, checkpointed, needs_recovery
 * clear): a clean file system, as a served volume's snapshot is.
 */
import { parseArgs } from 'node:util'
import { openEngineOn } from '../vfs/engine/fs/assemble.ts'
import { probeFileSystem } from '../vfs/engine/mkfs/probe.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import type { OpenVolume } from '../vfs/volume/open-volume.ts'
import { createVolumeSnapshot, deleteVolumeSnapshot, listVolumeSnapshots } from '../server/volume-snapshots.ts'
import { VolumeUsageError } from './volume-args.ts'

export const SNAPSHOT_USAGE = `  snapshot create DISK... --name SNAP | snapshot list [--json] DISK... | snapshot delete DISK... --name SNAP
        snapshots of a volume made with --snapshot-store (read-only under .snapshot/SNAP/ of its export)`

const OPTIONS = { name: { type: 'string' }, json: { type: 'boolean' } } as const

function nameOf(v: string | undefined, sub: string): string {
  if (v === undefined) throw new VolumeUsageError(`volume snapshot ${sub} needs --name SNAP`)
  return v
}

async function create(v: OpenVolume, name: string): Promise<void> {
  // An engine open replays a journal left by a crash and frees orphans; then the freeze makes the snapshot clean.
  const engine = (await probeFileSystem(v.device)) === undefined ? undefined : await openEngineOn(v.device)
  try {
    const s = await createVolumeSnapshot(v, name, engine)
    process.stdout.write(`volume ${v.config.name}: snapshot ${s.name} (id ${s.id}) created\n`)
  } finally {
    await engine?.close()
  }
}

export async function volumeSnapshot(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    throw new VolumeUsageError(err instanceof Error ? err.message : String(err))
  }
  const { values, positionals } = parsed
  if (sub !== 'create' && sub !== 'list' && sub !== 'delete') throw new VolumeUsageError(`volume snapshot: create, list or delete, got ${sub ?? 'nothing'}`)
  if (positionals.length === 0) throw new VolumeUsageError('no DISK given')
  if (sub !== 'list' && values.json !== undefined) throw new VolumeUsageError(`volume snapshot ${sub} does not take --json`)
  if (sub === 'list' && values.name !== undefined) throw new VolumeUsageError('volume snapshot list does not take --name')
  const name = sub === 'list' ? '' : nameOf(values.name, sub)
  const v = await openVolume(positionals, { readOnly: sub === 'list' })
  try {
    if (sub === 'create') await create(v, name)
    else if (sub === 'delete') {
      await deleteVolumeSnapshot(v, name)
      // Offline, the copies are freed before the disks close (the origin's close waits for it).
      process.stdout.write(`volume ${v.config.name}: snapshot ${name} deleted\n`)
    } else {
      const list = listVolumeSnapshots(v)
      if (values.json === true) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`)
      else for (const s of list) process.stdout.write(`${s.name}\t${s.state}\t${new Date(s.created).toISOString()}\tid ${s.id}\n`)
    }
    return 0
  } finally {
    await v.close()
  }
}
