/*
 * tsnfs volume status|fail|replace|scrub|grow|export (of a snapshot) through a running server's admin socket (server/admin):
 * the server holds the disks open, so these act on the volume it serves while it keeps serving.
 * Used when --admin SOCK is given, or when the first word is not a disk (a volume NAME) and a
 * server answers on the default socket (STATE-DIR/admin.sock, the state directory as serve's).
 * Output and exit codes as offline: 0 ok, 1 a problem found, 2 usage, 8 error.
 */
import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { AdminUnreachable, adminRequest, defaultAdminPath } from '../server/admin/client.ts'
import type { AdminReply, AdminRequest } from '../server/admin/protocol.ts'
import type { OperationProgress } from '../server/volume-registry.ts'
import type { VolumeStatus } from '../vfs/volume/volume-status.ts'
import { createMissing, parseSize, VolumeUsageError } from './volume-args.ts'
import { rebuildProgress } from './volume-repair.ts'

export interface OnlineArgs {
  readonly admin: string | undefined
  readonly json: boolean
  readonly repair: boolean
  readonly member: string | undefined
  readonly new: string | undefined
  readonly rate: string | undefined
  readonly size: string | undefined
  readonly force: boolean
  readonly to?: string | undefined
  readonly snapshot?: string | undefined
}

/** Online when --admin is given, or when the first word names no file (a volume name, not a disk); a bare `status` lists the served volumes. */
export async function goesOnline(sub: string, positionals: readonly string[], admin: string | undefined): Promise<boolean> {
  if (admin !== undefined) return true
  const first = positionals[0]
  if (first === undefined) return sub === 'status'
  return !(await stat(first).then(() => true, () => false))
}

class Refused extends Error {
  readonly exit: number
  constructor(message: string, exit: number) {
    super(message)
    this.exit = exit
  }
}

async function call(socket: string, req: AdminRequest, onProgress?: (p: OperationProgress) => void): Promise<Record<string, unknown>> {
  const reply: AdminReply = await adminRequest(socket, req, onProgress)
  if (reply.ok) return reply
  // A request the server calls malformed is a usage mistake; any other refusal an error.
  throw new Refused(`${reply.code}: ${reply.message}`, reply.code === 'ADMIN_BAD_ARGUMENT' ? 2 : 8)
}

/** A member as the server takes it: an index, or a uuid or disk path (made absolute: the server's directory is not ours). */
function memberArg(text: string): number | string {
  if (/^\d{1,4}$/.test(text)) return Number(text)
  // A layout address: leg 0, stripe member 1 is "0.1" (vfs/volume/member-place.ts).
  if (/^\d{1,2}(\.\d{1,2}){1,7}$/.test(text)) return text
  return /^[0-9a-f]{32}$/.test(text) ? text : resolve(text)
}

function progressLine(p: OperationProgress): string {
  const pct = p.total === 0 ? 0 : Math.floor((p.done * 100) / p.total)
  return `scrub of volume ${p.volume}: ${pct}% (${p.done} of ${p.total} bytes)\n`
}

async function status(socket: string, name: string | undefined, json: boolean, statusText: (st: VolumeStatus) => string): Promise<number> {
  if (name === undefined) {
    const r = await call(socket, { command: 'volumes' })
    const list = r.volumes as { name: string; level: string | null; export: string; state: string; operation: { kind: string } | null }[]
    if (json) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`)
    else for (const v of list) process.stdout.write(`${v.name}: ${v.level ?? '-'}, export ${v.export}, ${v.state}${v.operation === null ? '' : `, ${v.operation.kind} running`}\n`)
    return list.some((v) => v.state !== 'ok') ? 1 : 0
  }
  const r = await call(socket, { command: 'status', volume: name })
  const st: Record<string, unknown> = { ...r }
  delete st.ok
  if (json) process.stdout.write(`${JSON.stringify(st, null, 2)}\n`)
  else {
    process.stdout.write(statusText(st as unknown as VolumeStatus))
    const op = st.operation as { kind: string; member?: number; done: number; total: number } | null
    if (op !== null) process.stdout.write(`  ${op.kind}${op.member === undefined ? '' : ` of member ${op.member}`} running: ${op.done} of ${op.total} bytes\n`)
    const last = st.lastOperation as { kind: string; ok: boolean; message: string } | null
    if (last !== null) process.stdout.write(`  last ${last.kind}: ${last.ok ? 'done' : 'failed'}: ${last.message}\n`)
  }
  const s = st as unknown as VolumeStatus
  return s.degraded || s.failed ? 1 : 0
}

/** Runs `sub` online; `statusText` is the offline status printer (cli/volume.ts), so both print alike. */
export async function volumeOnline(sub: string, positionals: readonly string[], a: OnlineArgs, statusText: (st: VolumeStatus) => string): Promise<number> {
  const socket = a.admin ?? defaultAdminPath()
  const [name, ...rest] = positionals
  try {
    switch (sub) {
      case 'status':
        if (rest.length > 0) throw new VolumeUsageError('online: volume status [NAME] [--json]')
        return await status(socket, name, a.json, statusText)
      case 'fail': {
        const what = a.member ?? rest[0]
        if (name === undefined || what === undefined || rest.length > (a.member === undefined ? 1 : 0)) throw new VolumeUsageError('online: volume fail NAME DISK|--member N')
        const r = await call(socket, { command: 'fail', volume: name, member: memberArg(what) })
        process.stdout.write(`volume ${String(r.volume)}: member ${String(r.member)} (${String(r.uuid)}) marked failed, configuration seq ${String(r.seq)}\n`)
        if (r.whole === true) process.stdout.write(`  out of service with it: ${String(r.lost)}\n`)
        return 0
      }
      case 'replace': {
        const words = [...rest]
        const old = a.member ?? words.shift()
        const fresh = a.new ?? words.shift()
        if (name === undefined || old === undefined || fresh === undefined || words.length > 0) throw new VolumeUsageError('online: volume replace NAME OLD NEW [--rate BYTES/s] [--size SIZE]')
        const rate = a.rate === undefined ? undefined : /^\d{1,13}$/.test(a.rate) ? Number(a.rate) : NaN
        if (Number.isNaN(rate)) throw new VolumeUsageError(`--rate: bytes per second, got ${a.rate ?? ''}`)
        const disk = resolve(fresh)
        await createMissing(disk, a.size === undefined ? undefined : parseSize('--size', a.size))
        const member = memberArg(old)
        // The progress names the member by index (the server resolved a uuid or disk to it).
        let show: ((done: number, total: number) => void) | undefined
        const r = await call(socket, { command: 'replace', volume: name, member, disk, ...(rate === undefined ? {} : { rate }) }, (p) => {
          show ??= rebuildProgress(p.member ?? 0, fresh, (line) => process.stderr.write(line))
          show(p.done, p.total)
        })
        process.stdout.write(`volume ${String(r.volume)}: member ${String(r.member)} rebuilt onto ${fresh} (${String(r.uuid)}), configuration seq ${String(r.seq)}\n`)
        if (r.whole === true) process.stdout.write(`  rebuilt whole: ${String(r.rebuilt)}\n`)
        return 0
      }
      case 'scrub': {
        if (name === undefined || rest.length > 0) throw new VolumeUsageError('online: volume scrub NAME [--repair]')
        let shown = -1
        const r = await call(socket, { command: 'scrub', volume: name, repair: a.repair }, (p) => {
          const pct = p.total === 0 ? 0 : Math.floor((p.done * 100) / p.total)
          if (pct === shown) return
          shown = pct
          process.stderr.write(progressLine(p))
        })
        const layers = r.layers as { line: string }[]
        if (layers.length === 0) process.stdout.write(`volume ${name}: no redundancy to check\n`)
        for (const l of layers) process.stdout.write(`${l.line}\n`)
        return Number(r.mismatches) > 0 ? 1 : 0
      }
      case 'grow': {
        if (name === undefined) throw new VolumeUsageError('online: volume grow NAME [NEWDISK...] [--size max|SIZE] [--force]')
        const size = a.size === undefined ? undefined : a.size === 'max' ? 'max' : parseSize('--size', a.size)
        if (rest.length === 0 && size === undefined) throw new VolumeUsageError('volume grow: give NEWDISK... (span) or --size max|SIZE')
        const r = await call(socket, { command: 'grow', volume: name, disks: rest.map((d) => resolve(d)), ...(size === undefined ? {} : { size }), force: a.force })
        process.stdout.write(`volume ${String(r.volume)}: ${String(r.message)} (configuration seq ${String(r.seq)})\n`)
        return 0
      }
      case 'export': {
        const words = [...rest]
        const file = a.to ?? words.shift()
        if (name === undefined || file === undefined || words.length > 0) throw new VolumeUsageError('online: volume export NAME FILE --snapshot SNAP')
        // A served volume changes while it is read: only a snapshot holds still for a whole image.
        if (a.snapshot === undefined) throw new VolumeUsageError(`online: volume export of served volume ${name} needs --snapshot SNAP (take one with: tsnfs volume snapshot create ${name} SNAP)`)
        const r = await call(socket, { command: 'snapshot-export', volume: name, snapshot: a.snapshot, file: resolve(file) })
        process.stdout.write(`${file}: ${String(r.size)} bytes of snapshot ${a.snapshot} of volume ${String(r.volume)} (${String(r.written)} bytes of data written)\n`)
        return 0
      }
      default:
        throw new VolumeUsageError(`volume ${sub} works offline only (name its disks)`)
    }
  } catch (err) {
    if (err instanceof AdminUnreachable) {
      process.stderr.write(`tsnfs volume ${sub}: ${err.message}; is the volume served? (offline, name its disks: tsnfs volume ${sub} DISK...)\n`)
      return 8
    }
    if (!(err instanceof Refused)) throw err
    process.stderr.write(`tsnfs volume ${sub}: ${err.message}\n`)
    return err.exit
  }
}
