/*
 * tsnfs debug IMAGE ls|stat|cat PATH: look into an ext4 image without
 * serving or mounting it, through the engine's read-only walker
 * (vfs/engine/reader/). Paths are from the image's root; symlinks are
 * followed in the middle of a path, never at its end.
 */
import { once } from 'node:events'
import { parseArgs } from 'node:util'
import { VfsError } from '../vfs/errors.ts'
import { FormatError } from '../vfs/engine/format/errors.ts'
import { blocksIn512, fileType, INODE_FLAGS, isDir, isReg, isSymlink, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from '../vfs/engine/format/inode.ts'
import type { Ext4Time, Inode } from '../vfs/engine/format/inode.ts'
import { decodeExtentHeader } from '../vfs/engine/format/extent.ts'
import { Ext4Image } from '../vfs/engine/reader/image.ts'
import { FileReadAt } from '../vfs/engine/reader/read-at.ts'
import { wantsHelp } from './help.ts'

export const DEBUG_USAGE = `usage: tsnfs debug IMAGE ls [-l] PATH | stat PATH | cat PATH
  read an ext4 image (file or block device) without serving or mounting it
  ls [-l] PATH   the names in a directory (-l: inode, mode, links, uid, gid, size, name)
  stat PATH      the inode's fields: type, mode, links, uid, gid, size, blocks, flags,
                 generation, times with nanoseconds, a symlink's target
  cat PATH       the file's bytes to stdout
`

/**
 * strerror(3) texts for the errnos the walker and the image file give; kept
 * here so that the command loads no client code (cli/common.ts does).
 */
const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EIO: 'Input/output error',
}

function strerror(code: string): string {
  return STRERROR[code] ?? code
}

/** Bytes per read when streaming a file: holes and extents are mapped per chunk. */
const CAT_CHUNK = 1024 * 1024

const TYPES: ReadonlyArray<[number, string, string]> = [
  [S_IFREG, 'regular file', '-'],
  [S_IFDIR, 'directory', 'd'],
  [S_IFLNK, 'symbolic link', 'l'],
  [S_IFCHR, 'character device', 'c'],
  [S_IFBLK, 'block device', 'b'],
  [S_IFIFO, 'fifo', 'p'],
  [S_IFSOCK, 'socket', 's'],
]

function typeOf(mode: number): [string, string] {
  const t = TYPES.find(([m]) => m === fileType(mode))
  return t === undefined ? [`unknown type 0${fileType(mode).toString(8)}`, '?'] : [t[1], t[2]]
}

/** drwxr-xr-x, with setuid/setgid/sticky as ls(1) shows them. */
export function modeString(mode: number): string {
  const rwx = (bits: number, special: boolean, lower: string, upper: string): string =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${special ? (bits & 1 ? lower : upper) : bits & 1 ? 'x' : '-'}`
  return typeOf(mode)[1] + rwx(mode >> 6, (mode & 0o4000) !== 0, 's', 'S') + rwx(mode >> 3, (mode & 0o2000) !== 0, 's', 'S') + rwx(mode, (mode & 0o1000) !== 0, 't', 'T')
}

function timeText(t: Ext4Time): string {
  const iso = new Date(t.sec * 1000).toISOString().replace('.000Z', '')
  return `${iso}.${String(t.nsec).padStart(9, '0')}Z (${t.sec}.${String(t.nsec).padStart(9, '0')})`
}

export function statLines(path: string, ino: number, inode: Inode, blockSize: number, target: Buffer | undefined): string {
  const lines = [
    `path: ${path}`,
    `inode: ${ino}`,
    `type: ${typeOf(inode.mode)[0]}`,
    `mode: 0${(inode.mode & 0o7777).toString(8).padStart(3, '0')} (${modeString(inode.mode)})`,
    `links: ${inode.linksCount}`,
    `uid: ${inode.uid}`,
    `gid: ${inode.gid}`,
    `size: ${inode.size}`,
    `blocks: ${blocksIn512(inode, blockSize)} (512-byte)`,
    `flags: 0x${inode.flags.toString(16)}`,
    `generation: ${inode.generation}`,
  ]
  if ((inode.flags & INODE_FLAGS.EXTENTS) !== 0) lines.push(`extent depth: ${decodeExtentHeader(inode.block).depth}`)
  lines.push(`atime: ${timeText(inode.atime)}`, `mtime: ${timeText(inode.mtime)}`, `ctime: ${timeText(inode.ctime)}`)
  if (inode.crtime !== undefined) lines.push(`crtime: ${timeText(inode.crtime)}`)
  if (target !== undefined) lines.push(`target: ${target.toString('utf8')}`)
  return `${lines.join('\n')}\n`
}

/** Write to stdout, waiting when the pipe is full; false once the reader has gone away. */
async function emit(data: Buffer | string): Promise<boolean> {
  if (process.stdout.destroyed) return false
  if (!process.stdout.write(data)) {
    const closed = once(process.stdout, 'close').then(() => false)
    return Promise.race([once(process.stdout, 'drain').then(() => true), closed])
  }
  return true
}

async function run(img: Ext4Image, op: string, path: string, long: boolean): Promise<void> {
  const ino = await img.lookup(path)
  const inode = await img.readInode(ino)
  if (op === 'stat') {
    await emit(statLines(path, ino, inode, img.blockSize, isSymlink(inode) ? await img.readlink(ino, inode) : undefined))
  } else if (op === 'ls') {
    if (!isDir(inode)) throw new VfsError('ENOTDIR')
    const entries = await img.readDir(ino, inode)
    let out = ''
    for (const e of entries) {
      if (!long) {
        out += `${e.text}\n`
        continue
      }
      const c = await img.readInode(e.inode)
      out += `${e.inode} ${modeString(c.mode)} ${c.linksCount} ${c.uid} ${c.gid} ${c.size} ${e.text}\n`
    }
    await emit(out)
  } else {
    if (isDir(inode)) throw new VfsError('EISDIR')
    if (!isReg(inode) && !isSymlink(inode)) throw new VfsError('EINVAL', 'not a regular file')
    if (isSymlink(inode)) {
      await emit(await img.readlink(ino, inode))
      return
    }
    for (let off = 0; off < inode.size; off += CAT_CHUNK) {
      if (!(await emit(await img.readFile(ino, inode, off, CAT_CHUNK)))) return
    }
  }
}

function messageOf(err: unknown): string {
  if (err instanceof VfsError) return strerror(err.code)
  if (err instanceof FormatError) return `${err.message} (${err.code})`
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code
    return typeof code === 'string' ? strerror(code) : err.message
  }
  return String(err)
}

export async function debug(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(DEBUG_USAGE)
    return 0
  }
  let positionals: string[]
  let long: boolean
  try {
    const parsed = parseArgs({ args: argv, options: { long: { type: 'boolean', short: 'l' } }, allowPositionals: true })
    positionals = parsed.positionals
    long = parsed.values.long === true
  } catch (err) {
    process.stderr.write(`tsnfs debug: ${err instanceof Error ? err.message : String(err)}\n${DEBUG_USAGE}`)
    return 2
  }
  const [image, op, path, ...extra] = positionals
  if (image === undefined || op === undefined || path === undefined || extra.length > 0 || !['ls', 'stat', 'cat'].includes(op) || (long && op !== 'ls')) {
    process.stderr.write(`tsnfs debug: expected IMAGE ls|stat|cat PATH\n${DEBUG_USAGE}`)
    return 2
  }
  process.stdout.on('error', () => {})
  let dev: FileReadAt
  try {
    dev = await FileReadAt.open(image)
  } catch (err) {
    process.stderr.write(`tsnfs debug: ${image}: ${messageOf(err)}\n`)
    return 1
  }
  try {
    let img: Ext4Image
    try {
      img = await Ext4Image.open(dev)
    } catch (err) {
      process.stderr.write(`tsnfs debug: ${image}: ${messageOf(err)}\n`)
      return 1
    }
    try {
      await run(img, op, path, long)
    } catch (err) {
      process.stderr.write(`tsnfs debug: ${path}: ${messageOf(err)}\n`)
      return 1
    }
    return 0
  } finally {
    await dev.close()
  }
}
