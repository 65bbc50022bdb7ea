/*
 * tsnfs umount [-l] MOUNTPOINT: umount(8) a FUSE mount made by tsnfs mount,
 * then wait (up to --wait seconds, default 30) for its daemon to finish
 * writing out and exit. The daemon is found by its command line (`mount
 * --foreground … MOUNTPOINT`). EBUSY while files are open, as for any
 * mount; -l detaches at once and the daemon serves open files until the
 * last one closes.
 */
import { readdirSync, readFileSync, realpathSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { unmount } from '../client/fuse/mount.ts'
import { messageOf, parseCommand, UsageError } from './common.ts'
import { wantsHelp } from './help.ts'

export const UMOUNT_USAGE = `usage: tsnfs umount [-l] [--wait SECONDS] MOUNTPOINT
  unmount a tsnfs FUSE mount and wait for its daemon to exit
  -l, --lazy        detach now; the daemon exits when the last open file is closed
  --wait SECONDS    how long to wait for the daemon (default 30; 0: do not wait)
`

/** Processes serving a mount point: `… mount --foreground … MOUNTPOINT`. */
export function daemonsOf(mountpoint: string): number[] {
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
    if (i >= 0 && args.includes('--foreground') && args.slice(i + 1).some(a => a === mountpoint || safeReal(a) === mountpoint)) out.push(Number(d))
  }
  return out
}

function safeReal(p: string): string | undefined {
  try {
    return p.startsWith('/') ? realpathSync(p) : undefined
  } catch {
    return undefined
  }
}

/** Running, not a zombie waiting for init to reap it (a detached daemon's parent is gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    return !/^\d+ \(.*\) [ZX]/.test(stat)
  } catch {
    return false
  }
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
  const mp = safeReal(target.startsWith('/') ? target : `${process.cwd()}/${target}`) ?? target
  const daemons = daemonsOf(mp)
  try {
    await unmount(mp, { lazy: values.lazy === true })
  } catch (err) {
    process.stderr.write(`tsnfs umount: ${messageOf(err)}\n`)
    return 1
  }
  const deadline = Date.now() + Number(values.wait ?? '30') * 1000
  while (values.lazy !== true && daemons.some(alive) && Date.now() < deadline) await sleep(50)
  return 0
}
