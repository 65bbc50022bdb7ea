/*
 * A mount point as the kernel names it, found without stat(2) of anything
 * that may be a mount: the path is made absolute, its parent directory
 * resolved (realpath of the parent, never of the point itself), symlinks at
 * the last component followed with readlink (which does not enter what the
 * link names), and the mount table consulted at each step. So `tsnfs
 * umount` of a mount whose server is gone, and `tsnfs mount` onto a point
 * already used, answer at once.
 */
import { lstatSync, readlinkSync, realpathSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { mountAt, readMountinfo } from '../client/fuse/mountinfo.ts'
import type { MountEntry } from '../client/fuse/mountinfo.ts'

/** Links followed at the last component (Linux's MAXSYMLINKS). */
const MAX_LINKS = 40

export interface Located {
  /** Absolute, symlinks resolved: the string /proc/self/mountinfo would show. */
  path: string
  /** What is mounted there now (the topmost mount), or null. */
  mount: MountEntry | null
}

/** Where `target` (as the user typed it) is; throws the fs error of a missing parent or a link loop. */
export function locate(target: string, cwd: string = process.cwd()): Located {
  const table = readMountinfo()
  let path = resolve(cwd, target)
  for (let links = 0; ; links++) {
    const lexical = mountAt(path, table)
    if (lexical !== null) return { path, mount: lexical }
    const parent = dirname(path)
    path = parent === path ? path : join(realpathSync(parent), basename(path))
    const mount = mountAt(path, table)
    if (mount !== null) return { path, mount }
    // Not a mount point: lstat is safe here, and readlink never enters what it names.
    let isLink: boolean
    try {
      isLink = lstatSync(path).isSymbolicLink()
    } catch {
      return { path, mount: null }
    }
    if (!isLink) return { path, mount: null }
    if (links >= MAX_LINKS) throw Object.assign(new Error(`${target}: too many levels of symbolic links`), { code: 'ELOOP' })
    path = resolve(dirname(path), readlinkSync(path))
  }
}
