/*
 * What this process holds open on a file, read from /proc (Linux only): the open flags of each fd,
 * so a test can check how a file was opened (O_DSYNC for the replication logs' durable writes).
 */
import { constants, readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** The open flags of every fd this process holds on `path`. */
export function flagsOf(path: string): number[] {
  const out: number[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue
    }
    if (target !== path) continue
    const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
    if (m?.[1] !== undefined) out.push(parseInt(m[1], 8))
  }
  return out
}

/** Whether flags include O_DSYNC. */
export const dsync = (flags: number): boolean => (flags & constants.O_DSYNC) === constants.O_DSYNC
