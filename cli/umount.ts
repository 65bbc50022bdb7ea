/*
 * tsnfs umount [-l] MOUNTPOINT: umount(8) a FUSE mount made by tsnfs mount,
 * then wait (up to --wait seconds, default 30) for its daemon to finish
 * writing out and exit, and say what happened. The mount point and its
 * daemon are found from the mount table and the daemon's claim file
 * (cli/mountpoint.ts, cli/mount-registry.ts), never by stat(2) of a mount:
 * a mount whose server is down, and every other mount on the host, cannot
 * make it wait. EBUSY while files are open, as for any mount; -l detaches
 * at once and the daemon serves open files until the last one closes.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { unmount } from '../client/fuse/mount.ts'
import { messageOf, parseCommand, UsageError } from './common.ts'
import { wantsHelp } from './help.ts'
import { daemonOf } from './mount-registry.ts'
import { locate } from './mountpoint.ts'
import { processRunning } from '../server/state.ts'

export const UMOUNT_USAGE = `usage: tsnfs umount [-l] [--wait SECONDS] MOUNTPOINT
  unmount a tsnfs FUSE mount and wait for its daemon to write out and exit
  -l, --lazy        detach now; the daemon exits when the last open file is closed
  --wait SECONDS    how long to wait for the daemon (default 30; 0: do not wait)
  exit status 0 once the daemon has exited (or detached with -l); 1 if the mount is busy,
  not a tsnfs mount, not mounted, or the daemon is still writing when the wait ends
`

/**
 * Daemons started before claim files existed: `… mount --foreground … MOUNTPOINT`
 * with that exact string (never resolved: resolving another daemon's path could hang on its mount).
 */
function daemonsByCmdline(mountpoint: string): number[] {
  const out: number[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue
    let args: string[]
    try {
      args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    const i = args.indexOf('mount')
    if (i >= 0 && args.includes('--foreground') && args.slice(i + 1).includes(mountpoint)) out.push(Number(d))
  }
  return out
}

export async function umount(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(UMOUNT_USAGE)
    return 0
  }
  let values: { lazy?: boolean; wait?: string }
  let positionals: string[]
  try {
    ;({ values, positionals } = parseCommand(argv, { lazy: { type: 'boolean', short: 'l' }, wait: { type: 'string' } }))
    if (positionals.length !== 1) throw new UsageError('expected MOUNTPOINT')
    if (values.wait !== undefined && !/^\d+$/.test(values.wait)) throw new UsageError('--wait needs a number of seconds')
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`tsnfs umount: ${err.message}\n${UMOUNT_USAGE}`)
    return 2
  }
  const target = positionals[0] ?? ''
  const fail = (msg: string): number => {
    process.stderr.write(`tsnfs umount: ${msg}\n`)
    return 1
  }
  let where: ReturnType<typeof locate>
  try {
    where = locate(target)
  } catch (err) {
    return fail(`${target}: ${messageOf(err)}`)
  }
  const mp = where.path
  const record = daemonOf(mp)
  const pids = record !== null ? [record.pid] : daemonsByCmdline(mp)
  const alive = (): boolean => (record !== null ? processRunning(record.pid, record.start) : pids.some((p) => processRunning(p)))
  const daemon = pids.length === 0 ? 'no mount daemon found' : `the mount daemon (pid ${pids.join(', ')})`
  if (where.mount === null) {
    if (pids.length === 0) return fail(`${mp}: not mounted`)
    process.stdout.write(`tsnfs umount: ${mp}: not mounted (detached already); waiting for ${daemon}\n`)
  } else if (where.mount.fstype !== 'fuse.tsnfs') {
    return fail(`${mp}: not a tsnfs mount (${where.mount.fstype} ${where.mount.source}): use umount(8)`)
  } else {
    try {
      await unmount(mp, { lazy: values.lazy === true })
    } catch (err) {
      const busy = /busy/i.test(messageOf(err))
      return fail(busy ? `${mp}: target is busy (a file is open there, or a process works in it); tsnfs umount -l detaches it now and ${daemon} serves open files until they are closed` : messageOf(err))
    }
    if (values.lazy === true) {
      process.stdout.write(`tsnfs umount: ${mp}: detached; ${daemon} exits once the last open file is closed\n`)
      return 0
    }
  }
  const waitS = Number(values.wait ?? '30')
  const deadline = Date.now() + waitS * 1000
  while (alive() && Date.now() < deadline) await sleep(50)
  if (pids.length === 0) {
    process.stdout.write(`tsnfs umount: ${mp}: unmounted (${daemon})\n`)
    return 0
  }
  if (!alive()) {
    process.stdout.write(`tsnfs umount: ${mp}: unmounted; ${daemon} wrote out its data and exited\n`)
    return 0
  }
  if (waitS === 0) {
    process.stdout.write(`tsnfs umount: ${mp}: unmounted; ${daemon} is finishing\n`)
    return 0
  }
  return fail(
    `${mp}: unmounted, but ${daemon} is still running after ${String(waitS)} s: it is writing out data the server has not ` +
      `acknowledged (is the server up?) and keeps trying; kill -TERM ${pids.join(' ')} stops it within its --stop-timeout, reporting what is lost`,
  )
}
