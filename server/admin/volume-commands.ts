/*
 * The admin commands on served volumes (issue 14 item 3): volumes, status, fail, replace, scrub,
 * grow (the volume, then its file system, while the export's calls wait: see ServedVolume.regrow).
 * They act on the volume the server holds open, through the same functions the offline
 * `tsnfs volume` commands use (vfs/volume/member-repair.ts, scrub-volume.ts), so the engine
 * keeps serving while a member is failed, rebuilt or checked.
 */
import { isAbsolute, resolve } from 'node:path'
import { ImageFile } from '../../vfs/engine/blockdev/image-file.ts'
import { VolumeError } from '../../vfs/volume/layer.ts'
import { memberAtAddress } from '../../vfs/volume/member-place.ts'
import { checkReplace, failVolumeMember, refuseMemberPath, replaceVolumeMember } from '../../vfs/volume/member-repair.ts'
import { checkGrowable, growDisks } from '../../vfs/volume/grow.ts'
import type { OpenVolume } from '../../vfs/volume/open-volume.ts'
import { scrubLayers } from '../../vfs/volume/scrub-volume.ts'
import { volumeStatus } from '../../vfs/volume/volume-status.ts'
import type { Logger } from '../logger.ts'
import type { ServedVolume, VolumeOperation, VolumeRegistry } from '../volume-registry.ts'
import type { AdminCommands, AdminContext } from './commands.ts'
import { optionalBoolean, optionalNumber, stringField } from './commands.ts'
import type { AdminRequest } from './protocol.ts'
import { AdminError } from './protocol.ts'

/** 1 TB/s: a rate beyond any disk, and well inside a safe integer. */
const MAX_RATE = 2 ** 40

export function served(volumes: VolumeRegistry, req: AdminRequest): { sv: ServedVolume; v: OpenVolume } {
  const name = stringField(req, 'volume')
  const sv = volumes.get(name)
  if (sv?.volume == null) {
    const names = volumes.all().map((x) => x.name)
    throw new AdminError('ADMIN_NO_VOLUME', `no served volume "${name.slice(0, 64)}" (served: ${names.length === 0 ? 'none' : names.join(', ')})`)
  }
  return { sv, v: sv.volume }
}

const MEMBER_FORMS = 'an index (0, 1, ...), a layout address (0.1: child 1 of child 0), a member uuid or a disk path'

/** `member`: an index, a layout address ("0.1", see member-place.ts), or a member's uuid or disk path. */
export function memberOf(v: OpenVolume, req: AdminRequest): number {
  const m = req.member
  if (typeof m === 'number') {
    if (!Number.isSafeInteger(m) || m < 0) throw new AdminError('ADMIN_BAD_ARGUMENT', `${req.command}: "member" must be ${MEMBER_FORMS}`)
    return m
  }
  if (typeof m !== 'string' || m === '') throw new AdminError('ADMIN_BAD_ARGUMENT', `${req.command}: "member" must be ${MEMBER_FORMS}`)
  if (/^\d+\.[\d.]*$/.test(m)) return memberAtAddress(v, m)
  const byUuid = v.config.members.findIndex((r) => r.uuid === m)
  if (byUuid >= 0) return byUuid
  const disk = v.disks.find((d) => resolve(d.path) === resolve(m))
  const byPath = disk === undefined ? -1 : v.config.members.findIndex((r) => r.uuid === disk.uuid)
  if (byPath >= 0) return byPath
  throw new VolumeError('VOLUME_MEMBER', `volume ${v.config.name} has no member ${JSON.stringify(m.slice(0, 256))} (give an index, a member uuid or one of its disks)`)
}

/** `disks`: absent, or absolute paths of new disks (the server's working directory is not the client's). */
function diskList(req: AdminRequest): string[] {
  const v = req.disks
  if (v === undefined) return []
  if (!Array.isArray(v) || v.length > 64 || !v.every((d): d is string => typeof d === 'string' && isAbsolute(d) && d.length <= 4096)) {
    throw new AdminError('ADMIN_BAD_ARGUMENT', `${req.command}: "disks" must be a list of at most 64 absolute paths`)
  }
  return v
}

/** `size`: absent, "max", or bytes per member. */
function growSize(req: AdminRequest): 'max' | number | undefined {
  if (req.size === 'max') return 'max'
  return optionalNumber(req, 'size', Number.MAX_SAFE_INTEGER)
}

function describeOperation(op: VolumeOperation | null): Record<string, unknown> | null {
  if (op === null) return null
  return { kind: op.kind, ...(op.member === undefined ? {} : { member: op.member }), ...(op.disk === undefined ? {} : { disk: op.disk }), startedAt: op.startedAt, done: op.progress.done, total: op.progress.total }
}

function refuseBusy(sv: ServedVolume): void {
  const op = sv.operation
  if (op !== null) throw new AdminError('ADMIN_BUSY', `volume ${sv.name}: a ${op.kind} runs already (started ${op.startedAt}, ${op.progress.done} of ${op.progress.total} bytes)`)
}

/** Streams the operation's progress to this client until it ends or the client goes; the operation goes on either way. */
async function follow(op: VolumeOperation, ctx: AdminContext): Promise<void> {
  op.watchers.add(ctx.progress)
  const gone = new Promise<void>((resolveGone) => {
    if (ctx.signal.aborted) resolveGone()
    ctx.signal.addEventListener('abort', () => { resolveGone() }, { once: true })
  })
  try {
    await Promise.race([op.finished, gone])
  } finally {
    op.watchers.delete(ctx.progress)
  }
}

export function volumeState(sv: ServedVolume): 'ok' | 'degraded' | 'failed' | 'closed' {
  if (sv.volume === null) return 'closed'
  const st = volumeStatus(sv.volume)
  return st.failed ? 'failed' : st.degraded ? 'degraded' : 'ok'
}

export function registerVolumeCommands(commands: AdminCommands, volumes: VolumeRegistry, log: Logger): void {
  commands.register('volumes', () =>
    Promise.resolve({
      volumes: volumes.all().map((sv) => ({
        name: sv.name,
        id: sv.volume?.config.id ?? null,
        level: sv.volume?.config.root.kind ?? null,
        export: sv.exportPath,
        state: volumeState(sv),
        operation: describeOperation(sv.operation),
      })),
    }),
  )

  commands.register('status', (req) => {
    const { sv, v } = served(volumes, req)
    return Promise.resolve({ ...volumeStatus(v), export: sv.exportPath, operation: describeOperation(sv.operation), lastOperation: sv.lastOperation })
  })

  commands.register('fail', async (req) => {
    const { sv, v } = served(volumes, req)
    const index = memberOf(v, req)
    const r = await failVolumeMember(v, index, 'failed by hand (tsnfs volume fail, online)')
    log.warn({ volume: sv.name, member: index }, `volume ${sv.name}: member ${index} failed by hand, ${r.lost} out of service, configuration seq ${r.config.seq}`)
    return { volume: sv.name, member: index, uuid: v.config.members[index]?.uuid, seq: r.config.seq, lost: r.lost, whole: !r.place.sole, unreachable: r.unreachable.map((u) => u.path) }
  })

  commands.register('replace', async (req, ctx) => {
    const { sv, v } = served(volumes, req)
    const index = memberOf(v, req)
    const disk = stringField(req, 'disk')
    // The server's working directory is not the client's: a relative path would name another file.
    if (!isAbsolute(disk)) throw new AdminError('ADMIN_BAD_ARGUMENT', `replace: "disk" must be an absolute path, got ${JSON.stringify(disk.slice(0, 256))}`)
    // No rate asked: the export's rebuild_rate= (0 when it sets none: as fast as the disks go).
    const rate = optionalNumber(req, 'rate', MAX_RATE) ?? sv.rebuildRate
    const place = checkReplace(v, index)
    refuseMemberPath(v, disk)
    refuseBusy(sv)
    const op = sv.start('replace', { member: index, disk }, async (report) => {
      log.warn({ volume: sv.name, member: index, disk }, `volume ${sv.name}: replace of member ${index} onto ${disk} started`)
      const dev = await ImageFile.open(disk)
      try {
        const r = await replaceVolumeMember(v, index, { path: disk, dev }, { rateBytesPerSec: rate, onProgress: report })
        log.warn({ volume: sv.name, member: index, disk }, `volume ${sv.name}: member ${index} rebuilt onto ${disk} (${r.uuid}), configuration seq ${r.config.seq}`)
        return `member ${index} rebuilt onto ${disk} (${r.uuid}), configuration seq ${r.config.seq}`
      } catch (err) {
        // Once the swap is recorded the volume owns the disk (and closes it); before, it is ours.
        if (!v.disks.some((d) => d.dev === dev)) await dev.close().catch(() => undefined)
        log.warn({ volume: sv.name, member: index, err }, `volume ${sv.name}: replace of member ${index} failed`)
        throw err
      }
    })
    await follow(op, ctx)
    await op.finished
    const m = v.config.members[index]
    // A disk of a stripe leg: the whole leg was rebuilt (the reply says so, as fail's does).
    return { volume: sv.name, member: index, disk, uuid: m?.uuid, seq: v.config.seq, rebuilt: place.path, whole: !place.sole, message: sv.lastOperation?.message }
  })

  commands.register('grow', async (req) => {
    const { sv, v } = served(volumes, req)
    const add = diskList(req)
    const size = growSize(req)
    const force = optionalBoolean(req, 'force')
    refuseBusy(sv)
    for (const d of add) refuseMemberPath(v, d)
    // Refused from the configuration before the export is held and anything closed.
    checkGrowable(v, add.length, size, true)
    const regrow = sv.regrow
    if (regrow === null) throw new AdminError('ADMIN_FAILED', `volume ${sv.name} is not serving yet`)
    const before = { size: v.device.size, seq: v.config.seq }
    let grown = false
    const op = sv.start('grow', {}, async () => {
      log.warn({ volume: sv.name, add, size }, `volume ${sv.name}: online grow started (the export's calls wait while the volume and its engine reopen)`)
      const r = await regrow(async (paths) => {
        const g = await growDisks(paths, add, { ...(size === undefined ? {} : { size }), force })
        grown = g.grown
        return g.paths
      })
      const line = `${r.volume.config.root.kind} ${grown ? `grown from ${before.size} to ${r.volume.device.size} bytes` : `already ${before.size} bytes`}; file system ${r.fs.grown ? `grown from ${r.fs.oldBlocks} to ${r.fs.newBlocks} blocks` : `already ${r.fs.oldBlocks} blocks`} of ${r.fs.blockSize} bytes`
      log.warn({ volume: sv.name }, `volume ${sv.name}: ${line}`)
      return line
    })
    await op.finished
    const now = sv.volume
    return { volume: sv.name, grown, before: before.size, size: now?.device.size ?? null, seq: now?.config.seq ?? null, added: add, message: sv.lastOperation?.message }
  })

  commands.register('scrub', async (req, ctx) => {
    const { sv, v } = served(volumes, req)
    const repair = optionalBoolean(req, 'repair')
    refuseBusy(sv)
    let layers: Awaited<ReturnType<typeof scrubLayers>> = []
    const op = sv.start('scrub', {}, async (report) => {
      layers = await scrubLayers(v.top, { repair, onProgress: report })
      const found = layers.reduce((sum, l) => sum + l.mismatches, 0)
      sv.scrubMismatches += found
      if (found > 0) log.warn({ volume: sv.name }, `volume ${sv.name}: scrub found ${found} mismatches${repair ? ', repaired' : ''}`)
      return layers.map((l) => l.line).join('; ') || 'no redundancy to check'
    })
    await follow(op, ctx)
    await op.finished
    return { volume: sv.name, repair, layers, mismatches: layers.reduce((sum, l) => sum + l.mismatches, 0) }
  })
}
