/*
 * Text the client commands print: ls(1)-style mode strings and long lines,
 * stat(1)-style timestamps with nanoseconds, df(1)-style human sizes.
 */
import type { nfstime3 } from '../xdr/generated/nfs3.ts'
import type { FileType, NfsStats } from '../client/index.ts'

const TYPE_CHAR: Readonly<Record<FileType, string>> = {
  file: '-',
  directory: 'd',
  symlink: 'l',
  block: 'b',
  char: 'c',
  socket: 's',
  fifo: 'p',
}

/** `drwxr-xr-x`, with s/S and t/T for setuid, setgid and sticky as ls prints them. */
export function modeString(type: FileType, mode: number): string {
  const rwx = (bits: number, special: boolean, on: string, off: string): string =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? on : off) : bits & 1 ? 'x' : '-'}`
  return (
    TYPE_CHAR[type] +
    rwx((mode >> 6) & 7, (mode & 0o4000) !== 0, 's', 'S') +
    rwx((mode >> 3) & 7, (mode & 0o2000) !== 0, 's', 'S') +
    rwx(mode & 7, (mode & 0o1000) !== 0, 't', 'T')
  )
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const SIX_MONTHS_MS = (365.2425 / 2) * 86_400_000

/** ls -l's date: `Jan  2 15:04` within six months of now, else `Jan  2  2006` (local time). */
export function lsTime(d: Date, now = Date.now()): string {
  const month = MONTHS[d.getMonth()] ?? '???'
  const day = String(d.getDate()).padStart(2, ' ')
  const recent = Math.abs(now - d.getTime()) < SIX_MONTHS_MS
  const tail = recent ? `${pad2(d.getHours())}:${pad2(d.getMinutes())}` : ` ${String(d.getFullYear())}`
  return `${month} ${day} ${tail}`
}

function pad2(n: number): string {
  return String(n).padStart(2, '0')
}

/** stat(1)'s `2006-01-02 15:04:05.123456789 +0100`: local time, full nanoseconds from the wire. */
export function fullTime(t: nfstime3): string {
  const d = new Date(t.seconds * 1000)
  const off = -d.getTimezoneOffset()
  const sign = off < 0 ? '-' : '+'
  const zone = `${sign}${pad2(Math.floor(Math.abs(off) / 60))}${pad2(Math.abs(off) % 60)}`
  const date = `${String(d.getFullYear())}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`
  return `${date} ${time}.${String(t.nseconds).padStart(9, '0')} ${zone}`
}

/** df -h / ls -h sizes: powers of 1024, one decimal below 10 (rounded up, as coreutils does). */
export function humanSize(bytes: bigint | number): string {
  let v = Number(bytes)
  if (v < 1024) return String(v)
  const units = ['K', 'M', 'G', 'T', 'P', 'E']
  let i = -1
  do {
    v /= 1024
    i++
  } while (v >= 1024 && i < units.length - 1)
  const text = v < 10 ? (Math.ceil(v * 10) / 10).toFixed(1) : String(Math.ceil(v))
  return `${text}${units[i] ?? '?'}`
}

/** A byte count for progress lines: `1.5 MiB`. */
export function byteUnits(bytes: number): string {
  if (bytes < 1024) return `${String(bytes)} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = -1
  do {
    v /= 1024
    i++
  } while (v >= 1024 && i < units.length - 1)
  return `${v.toFixed(1)} ${units[i] ?? '?'}`
}

export interface LongEntry {
  name: string
  stats: NfsStats
  /** The symlink's text, for `name -> target`. */
  target?: string | undefined
}

/** ls -l lines with columns aligned across the listing. */
export function longLines(entries: readonly LongEntry[], now = Date.now()): string[] {
  const rows = entries.map(e => ({
    mode: modeString(e.stats.type, e.stats.mode),
    nlink: String(e.stats.nlink),
    uid: String(e.stats.uid),
    gid: String(e.stats.gid),
    size: e.stats.type === 'block' || e.stats.type === 'char' ? `${String(e.stats.rdev.major)}, ${String(e.stats.rdev.minor)}` : String(e.stats.size),
    time: lsTime(e.stats.mtime, now),
    name: e.target === undefined ? e.name : `${e.name} -> ${e.target}`,
  }))
  const width = (k: 'nlink' | 'uid' | 'gid' | 'size'): number => Math.max(0, ...rows.map(r => r[k].length))
  const w = { nlink: width('nlink'), uid: width('uid'), gid: width('gid'), size: width('size') }
  return rows.map(
    r => `${r.mode} ${r.nlink.padStart(w.nlink)} ${r.uid.padEnd(w.uid)} ${r.gid.padEnd(w.gid)} ${r.size.padStart(w.size)} ${r.time} ${r.name}`,
  )
}

const TYPE_NAME: Readonly<Record<FileType, string>> = {
  file: 'regular file',
  directory: 'directory',
  symlink: 'symbolic link',
  block: 'block special file',
  char: 'character special file',
  socket: 'socket',
  fifo: 'fifo',
}

/** stat(1)-like text of every attribute the server sent. */
export function statText(name: string, st: NfsStats, target?: string): string {
  const a = st.attrs
  const octal = st.mode.toString(8).padStart(4, '0')
  return [
    `  File: ${target === undefined ? name : `${name} -> ${target}`}`,
    `  Size: ${String(st.size).padEnd(15)} Used: ${String(st.used).padEnd(15)} Type: ${TYPE_NAME[st.type]}`,
    `  Mode: (${octal}/${modeString(st.type, st.mode)})  Uid: ${String(st.uid)}  Gid: ${String(st.gid)}`,
    ` Nlink: ${String(st.nlink).padEnd(15)} Fileid: ${String(st.fileid)}  Fsid: 0x${st.fsid.toString(16)}`,
    `  Rdev: ${String(st.rdev.major)},${String(st.rdev.minor)}`,
    `Access: ${fullTime(a.atime)}`,
    `Modify: ${fullTime(a.mtime)}`,
    `Change: ${fullTime(a.ctime)}`,
    '',
  ].join('\n')
}
