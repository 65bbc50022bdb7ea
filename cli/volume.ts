/*
 * tsnfs volume: volumes of several disks under the storage engine (issue 14), offline. Each
 * subcommand opens the disks given, assembles the volume from their member superblocks
 * (vfs/volume/open-volume.ts), does its work and closes them again.
 */
import { parseArgs } from 'node:util'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { MkfsError } from '../vfs/engine/mkfs/errors.ts'
import { makeFileSystem } from '../vfs/engine/mkfs/mkfs.ts'
import { probeFileSystem, uuidText } from '../vfs/engine/mkfs/probe.ts'
import type { ParentKind } from '../vfs/volume/config.ts'
import { createVolume } from '../vfs/volume/create-volume.ts'
import type { Disk } from '../vfs/volume/member-io.ts'
import { openVolume } from '../vfs/volume/open-volume.ts'
import { volumeStatus } from '../vfs/volume/volume-status.ts'
import type { VolumeStatus } from '../vfs/volume/volume-status.ts'
import { wantsHelp } from './help.ts'
import { createMissing, parseSize, VolumeUsageError } from './volume-args.ts'
import { exportImage } from './volume-export.ts'
import { growOffline } from './volume-grow.ts'
import { goesOnline, volumeOnline } from './volume-online.ts'
import { raidLayoutOf } from './volume-raid.ts'
import { failMember, replaceOffline, scrubVolume } from './volume-repair.ts'
import { SNAPSHOT_USAGE, volumeSnapshot } from './volume-snapshot.ts'
import { LAYERS } from '../vfs/volume/factory.ts'
import type { StoreRequest } from '../vfs/volume/snapshot-volume.ts'

export const VOLUME_USAGE = `usage: tsnfs volume <subcommand> ...
  volumes made of several disks (image files or block devices), served by backend=engine exports
  (volume=NAME,disks=A:B:C); every subcommand works offline, on disks no server has open

  create NAME --level span|stripe|mirror|raid5 [--unit SIZE] [--size SIZE] [--force]
         [--snapshot-store SIZE|PCT%] DISK...
        make DISK... the members of a new volume (member superblocks and configuration);
        --size creates missing DISKs as sparse image files of SIZE bytes; --force overwrites
        disks that already belong to a volume; --unit: stripe unit of stripe and raid5 (64K);
        --snapshot-store: keep the volume's last SIZE bytes (or PCT%) for snapshots
  mkfs DISK... [--block-size 4096|1024] [--label L] [--force]
        make an ext4 file system on the volume for the storage engine (as tsnfs mkfs)
  status [--json] DISK...
        assemble read-only and print the volume and each member (exit 1 when degraded)
  export DISK... --to FILE [--snapshot SNAP]
        write the volume's bytes to FILE (sparse), for e2fsck and the loop mount; with
        --snapshot, the bytes of snapshot SNAP (the file system as it was when it was taken)
  scrub [--repair] DISK...
        read everything, compare mirror legs and RAID-5 parity, print the mismatches (exit 1
        when some were found); --repair rewrites them
  fail DISK... --member N
        mark member N (its index in status) failed in the configuration
  replace DISK... --member N --new NEWDISK [--rate BYTES/s] [--size SIZE]
        rebuild member N onto NEWDISK (created sparse with --size if missing), progress on stderr
  grow DISK... [--add NEWDISK...] [--size max|SIZE] [--force]
        span: append NEWDISKs as members; mirror, stripe, raid5 (and a span's last member): grow
        each member's used size to the smallest disk's capacity (max) or to SIZE, after the disks
        were replaced by larger ones or their image files made larger; the new region of a
        mirror or raid5 is zeroed so legs and parity agree. --add NEWDISK on a stripe or raid5:
        a reshape over one more member (same unit), checkpointed, resumed at the next assembly
        after a crash. Then grow the file system: tsnfs resize --volume DISK...
  online, through a running server's admin socket (the server holds the disks; it keeps serving):
  status [NAME] [--json] [--admin SOCK]      a served volume (without NAME: every served volume)
  fail NAME DISK|--member N [--admin SOCK]
  replace NAME OLD NEW [--rate BYTES/s] [--size SIZE] [--admin SOCK]
        OLD: a member index, uuid or disk; rebuild while serving, progress on stderr
        a member inside nested layers is also named by its layout address, offline (--member)
        and online: 0.1 is member 1 of the stripe that is leg 0 of a mirror; failing it fails
        that whole leg and replacing it rebuilds the whole leg (as md's RAID-1 over RAID-0)
  scrub NAME [--repair] [--admin SOCK]
  export NAME FILE --snapshot SNAP [--admin SOCK]
        the server writes snapshot SNAP of the volume it serves to FILE, as offline export does
  grow NAME [NEWDISK...] [--size max|SIZE] [--force] [--admin SOCK]
        as offline grow (NEWDISKs: span members to append), then the file system grows onto
        the new space; the export's calls wait while the volume and its engine reopen (handles
        stay valid). An appended disk must also be in the export's disks= for the next start
        these go online with --admin SOCK, or when NAME is not a file and a server answers on the
        default socket (STATE-DIR/admin.sock, the state directory as tsnfs serve's)
${SNAPSHOT_USAGE}
  exit: 0 ok, 1 a problem found (degraded, mismatches), 2 usage, 8 error
`

const LEVELS: readonly ParentKind[] = ['span', 'stripe', 'mirror', 'raid5']

const OPTIONS = {
  level: { type: 'string' },
  unit: { type: 'string' },
  size: { type: 'string' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
  to: { type: 'string' },
  repair: { type: 'boolean' },
  member: { type: 'string' },
  new: { type: 'string' },
  rate: { type: 'string' },
  'block-size': { type: 'string' },
  label: { type: 'string' },
  admin: { type: 'string' },
  add: { type: 'string', multiple: true },
  'snapshot-store': { type: 'string' },
  snapshot: { type: 'string' },
} as const

/** The subcommands that also run through a server's admin socket, and the options each takes there. */
const ONLINE: Readonly<Record<string, readonly (keyof Values)[]>> = {
  status: ['json', 'admin'],
  fail: ['member', 'admin'],
  replace: ['member', 'new', 'rate', 'size', 'admin'],
  scrub: ['repair', 'admin'],
  grow: ['size', 'force', 'admin'],
  export: ['to', 'snapshot', 'admin'],
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values']

/** Options a subcommand does not take are mistakes, not silently ignored. */
function only(sub: string, values: Values, allowed: readonly (keyof Values)[]): void {
  for (const key of Object.keys(values) as (keyof Values)[]) {
    if (values[key] !== undefined && !allowed.includes(key)) throw new VolumeUsageError(`volume ${sub} does not take --${key}`)
  }
}

function disksOf(positionals: readonly string[]): string[] {
  if (positionals.length === 0) throw new VolumeUsageError('no DISK given')
  return [...positionals]
}

/** --member: an index in status, or a layout address (0.1: member 1 of child 0); resolved once the volume is open. */
export function memberIndex(text: string | undefined): string {
  if (text === undefined) throw new VolumeUsageError('--member N is needed')
  if (!/^\d{1,4}$/.test(text) && !/^\d{1,2}(\.\d{1,2}){1,7}$/.test(text)) throw new VolumeUsageError(`--member: a member index (0, 1, ...) or a layout address (0.1), got ${text}`)
  return text
}

async function create(positionals: string[], values: Values): Promise<number> {
  only('create', values, ['level', 'unit', 'size', 'force', 'snapshot-store'])
  const [name, ...paths] = positionals
  if (name === undefined) throw new VolumeUsageError('expected NAME and DISK...')
  const level = values.level
  if (level === undefined || !LEVELS.includes(level as ParentKind)) throw new VolumeUsageError(`--level: one of ${LEVELS.join(', ')}, got ${level ?? 'nothing'}`)
  const size = values.size === undefined ? undefined : parseSize('--size', values.size)
  const unit = values.unit === undefined ? undefined : parseSize('--unit', values.unit)
  const storeText = values['snapshot-store']
  const store: StoreRequest | undefined = storeText === undefined ? undefined
    : /^\d{1,2}%$/.test(storeText) ? { percent: Number(storeText.slice(0, -1)) } : { bytes: parseSize('--snapshot-store', storeText) }
  for (const p of disksOf(paths)) await createMissing(p, size)
  const disks: Disk[] = []
  try {
    for (const p of paths) disks.push({ path: p, dev: await ImageFile.open(p) })
    const made = await createVolume(name, level as ParentKind, disks, { ...(unit === undefined ? {} : { unit }), ...(store === undefined ? {} : { snapshotStore: store, layers: LAYERS }), force: values.force === true })
    const kept = made.config.snapshotStore
    process.stdout.write(`volume ${made.config.name} (id ${made.config.id}): ${level} of ${disks.length} disks${kept === undefined ? '' : `, snapshot store of ${kept.size} bytes`}\n`)
    for (const [i, d] of made.disks.entries()) process.stdout.write(`  member ${i}: ${d.uuid} ${d.path}\n`)
    return 0
  } finally {
    for (const d of disks) await d.dev.close().catch(() => undefined)
  }
}

async function mkfsVolume(positionals: string[], values: Values): Promise<number> {
  only('mkfs', values, ['block-size', 'label', 'force'])
  const bs = values['block-size']
  if (bs !== undefined && bs !== '1024' && bs !== '4096') throw new VolumeUsageError(`--block-size: 1024 or 4096, got ${bs}`)
  const v = await openVolume(disksOf(positionals))
  try {
    const found = await probeFileSystem(v.device)
    if (found !== undefined && values.force !== true) {
      throw new MkfsError('MKFS_HAS_FS', `volume ${v.config.name} already holds an ${found.type} file system${found.uuid === undefined ? '' : ` (UUID ${found.uuid})`}; use --force to format it anyway`)
    }
    // Not `zeroed`: a volume's disks may have held anything before they were members.
    const raid = raidLayoutOf(v.config.root)
    const r = await makeFileSystem(v.device, {
      zeroed: false,
      ...(raid === undefined ? {} : { raid }),
      ...(bs === undefined ? {} : { blockSize: bs === '1024' ? 1024 : 4096 }),
      ...(values.label === undefined ? {} : { label: values.label }),
    })
    const g = r.geometry
    process.stdout.write(`volume ${v.config.name}: ext4, ${g.blocksCount} blocks of ${g.blockSize} bytes, ${g.inodesCount} inodes, UUID ${uuidText(r.uuid)}\n`)
    return 0
  } finally {
    await v.close()
  }
}

async function status(positionals: string[], values: Values): Promise<number> {
  only('status', values, ['json'])
  const v = await openVolume(disksOf(positionals), { readOnly: true })
  try {
    const st = volumeStatus(v)
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify(st, null, 2)}\n`)
    } else {
      process.stdout.write(statusText(st))
    }
    const degraded = st.degraded
    return degraded ? 1 : 0
  } finally {
    await v.close()
  }
}

/** The status as people read it (offline and online alike). */
export function statusText(st: VolumeStatus): string {
  let out = `volume ${st.name} (id ${st.id}): ${st.level}, ${st.size} bytes, seq ${st.seq}, ${st.failed ? 'failed' : st.degraded ? 'degraded' : 'ok'}\n`
  for (const m of st.members) {
    const rebuilt = m.rebuilt === undefined ? '' : ` (${m.rebuilt} bytes rebuilt)`
    out += `  member ${m.index}: ${m.uuid} ${m.path ?? '-'} ${m.state}${rebuilt}${m.reason === undefined ? '' : ` (${m.reason})`}\n`
  }
  for (const r of st.repairs) out += `  ${r.path}: ${r.problems.join('; ')}\n`
  const store = st.snapshotStore
  if (store !== undefined) {
    const others = [store.deleting > 0 ? `, ${store.deleting} deleting` : '', store.invalid > 0 ? `, ${store.invalid} invalid` : ''].join('')
    out += `  snapshot store: ${store.size} bytes, ${store.used} of ${store.bytes} bytes used, ${store.snapshots} snapshot${store.snapshots === 1 ? '' : 's'}${others}\n`
  }
  return out
}

const SUBCOMMANDS: Readonly<Record<string, (positionals: string[], values: Values) => Promise<number>>> = {
  create,
  mkfs: mkfsVolume,
  status,
  export: (p, v) => {
    only('export', v, ['to', 'snapshot'])
    if (v.to === undefined) throw new VolumeUsageError('--to FILE is needed')
    return exportImage(disksOf(p), v.to, v.snapshot)
  },
  scrub: (p, v) => {
    only('scrub', v, ['repair'])
    return scrubVolume(disksOf(p), v.repair === true)
  },
  fail: (p, v) => {
    only('fail', v, ['member'])
    return failMember(disksOf(p), memberIndex(v.member))
  },
  grow: (p, v) => {
    only('grow', v, ['add', 'size', 'force'])
    return growOffline(disksOf(p), { add: v.add ?? [], size: v.size === undefined ? undefined : v.size === 'max' ? 'max' : parseSize('--size', v.size), force: v.force === true })
  },
  replace: (p, v) => {
    only('replace', v, ['member', 'new', 'rate', 'size'])
    if (v.new === undefined) throw new VolumeUsageError('--new NEWDISK is needed')
    const rate = v.rate === undefined ? 0 : /^\d{1,15}$/.test(v.rate) ? Number(v.rate) : NaN
    if (Number.isNaN(rate)) throw new VolumeUsageError(`--rate: bytes per second, got ${v.rate ?? ''}`)
    return replaceOffline(disksOf(p), memberIndex(v.member), v.new, { rate, size: v.size === undefined ? undefined : parseSize('--size', v.size) })
  },
}

export async function volume(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(VOLUME_USAGE)
    return 0
  }
  const [sub, ...rest] = argv
  const run = sub === undefined ? undefined : SUBCOMMANDS[sub]
  try {
    if (sub === 'snapshot') return await volumeSnapshot(rest)
    if (run === undefined) throw new VolumeUsageError(sub === undefined ? 'no subcommand given' : `unknown subcommand "${sub}"`)
    let parsed: { values: Values; positionals: string[] }
    try {
      parsed = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true })
    } catch (err) {
      throw new VolumeUsageError(err instanceof Error ? err.message : String(err))
    }
    const online = sub === undefined ? undefined : ONLINE[sub]
    if (sub !== undefined && online !== undefined && (await goesOnline(sub, parsed.positionals, parsed.values.admin))) {
      only(sub, parsed.values, online)
      const v = parsed.values
      const args = { admin: v.admin, json: v.json === true, repair: v.repair === true, member: v.member, new: v.new, rate: v.rate, size: v.size, force: v.force === true, to: v.to, snapshot: v.snapshot }
      return await volumeOnline(sub, parsed.positionals, args, statusText)
    }
    return await run(parsed.positionals, parsed.values)
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    if (err instanceof VolumeUsageError) {
      process.stderr.write(`tsnfs volume: ${message}\n${VOLUME_USAGE}`)
      return 2
    }
    process.stderr.write(`tsnfs volume${sub === undefined ? '' : ` ${sub}`}: ${message}\n`)
    return 8
  }
}
