/*
 * The mount table as the kernel states it (/proc/self/mountinfo, proc(5)),
 * read without touching any mount point: stat(2) or realpath(3) of a FUSE
 * or NFS mount whose server is gone blocks, so whether a path is a mount
 * point, and what is mounted there, is decided from this text alone.
 */
import { readFileSync } from 'node:fs'

export interface MountEntry {
  /** Mount id (field 1). */
  id: number
  /** st_dev of the mounted file system, as "major:minor" (a FUSE connection's number is the minor). */
  dev: string
  /** The mount point, with the kernel's octal escapes (\040 …) undone. */
  mountpoint: string
  /** "fuse.tsnfs", "nfs4", "ext4" … */
  fstype: string
  source: string
}

/** mountinfo escapes space, tab, newline and backslash as \ooo (fs/proc_namespace.c mangle). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-', 6)
    if (f.length < 10 || sep < 0) continue
    out.push({
      id: Number(f[0]),
      dev: f[2] ?? '',
      mountpoint: unescape(f[4] ?? ''),
      fstype: f[sep + 1] ?? '',
      source: unescape(f[sep + 2] ?? ''),
    })
  }
  return out
}

/** This process's mount table; empty where there is no /proc. */
export function readMountinfo(): MountEntry[] {
  try {
    return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
  } catch {
    return []
  }
}

/**
 * The topmost mount on `path` (absolute, no symlinks, as the kernel shows
 * it), or null: the table lists mounts in the order they were attached, so
 * the last entry for a path is the one on top (ids are reused: not them).
 */
export function mountAt(path: string, table: readonly MountEntry[] = readMountinfo()): MountEntry | null {
  let top: MountEntry | null = null
  for (const e of table) if (e.mountpoint === path) top = e
  return top
}
