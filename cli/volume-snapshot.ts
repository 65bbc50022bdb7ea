/*
 * tsnfs volume snapshot create|list|delete: a volume's snapshots. Offline (DISK... --name SNAP, no
 * server has the disks open), create opens the engine on the volume when it holds a file system,
 * so the snapshot is taken frozen (journal committed, checkpointed, needs_recovery clear): a clean
 * file system, as a served volume's snapshot is. Online (NAME SNAP, through a running server's
 * admin socket, as the other online subcommands: --admin SOCK, or NAME not a file), the server
 * freezes the engine it serves the volume with, and the export's .snapshot/ follows at once.
 */
import { parseArgs } from 'node:util'
import { openEngineOn } from '../vfs/engine/fs/assemble.ts'
import { probeFileSystem } from '../vfs/engine/mkfs/probe.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import type { OpenVolume } from '../vfs/volume/open-volume.ts'
import { createVolumeSnapshot, deleteVolumeSnapshot, listVolumeSnapshots } from '../server/volume-snapshots.ts'
import { AdminUnreachable, adminRequest, defaultAdminPath } from '../server/admin/client.ts'
import type { AdminRequest } from '../server/admin/protocol.ts'
import type { SnapshotInfo } from '../vfs/volume/snapshot.ts'
import { VolumeUsageError } from './volume-args.ts'
import { goesOnline } from './volume-online.ts'

export const SNAPSHOT_USAGE = `  snapshot create DISK... --name SNAP | snapshot list [--json] DISK... | snapshot delete DISK... --name SNAP
        snapshots of a volume made with --snapshot-store (read-only under .snapshot/SNAP/ of its export)
  snapshot create NAME SNAP | snapshot list NAME [--json] | snapshot delete NAME SNAP [--admin SOCK]
        the same online, on a served volume (the server freezes its file system for the snapshot)`

const OPTIONS = { name: { type: 'string' }, json: { type: 'boolean' }, admin: { type: 'string' } } as const

function printList(list: readonly SnapshotInfo[], json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`)
  else for (const s of list) process.stdout.write(`${s.name}\t${s.state}\t${new Date(s.created).toISOString()}\tid ${s.id}\n`)
}

/** `snapshot SUB NAME [SNAP]` through the server's admin socket; exit codes as offline (a refusal 8, a malformed request 2). */
async function online(sub: 'create' | 'list' | 'delete', positionals: readonly string[], values: { name?: string; json?: boolean; admin?: string }): Promise<number> {
  const [volume, second, ...extra] = positionals
  const snap = values.name ?? second
  if (volume === undefined || extra.length > 0 || (sub === 'list' ? second !== undefined : snap === undefined || (values.name !== undefined && second !== undefined))) {
    throw new VolumeUsageError(sub === 'list' ? 'online: volume snapshot list NAME [--json]' : `online: volume snapshot ${sub} NAME SNAP`)
  }
  const req: AdminRequest = sub === 'list' ? { command: 'snapshot-list', volume } : { command: `snapshot-${sub}`, volume, snapshot: snap }
  try {
    const r = await adminRequest(values.admin ?? defaultAdminPath(), req)
    if (!r.ok) {
      process.stderr.write(`tsnfs volume snapshot ${sub}: ${r.code}: ${r.message}\n`)
      return r.code === 'ADMIN_BAD_ARGUMENT' ? 2 : 8
    }
    if (sub === 'list') printList(r.snapshots as SnapshotInfo[], values.json === true)
    else if (sub === 'create') {
      const s = r.snapshot as SnapshotInfo
      process.stdout.write(`volume ${String(r.volume)}: snapshot ${s.name} (id ${s.id}) created\n`)
    } else process.stdout.write(`volume ${String(r.volume)}: snapshot ${String(snap)} deleted\n`)
    return 0
  } catch (err) {
    if (!(err instanceof AdminUnreachable)) throw err
    process.stderr.write(`tsnfs volume snapshot ${sub}: ${err.message}; is the volume served? (offline, name its disks: tsnfs volume snapshot ${sub} DISK...)\n`)
    return 8
  }
}

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
  if (await goesOnline('snapshot', positionals, values.admin)) return await online(sub, positionals, values)
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
      printList(listVolumeSnapshots(v), values.json === true)
    }
    return 0
  } finally {
    await v.close()
  }
}
