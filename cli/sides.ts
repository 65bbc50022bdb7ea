/*
 * The two ends cp, get and put copy between: a local directory tree
 * (node:fs) or a path inside a mounted export (NfsClient). Both offer the
 * same small set of calls, so one copy routine serves local→server,
 * server→local, server→server (and local→local).
 */
import { createReadStream, createWriteStream } from 'node:fs'
import type { Stats } from 'node:fs'
import { lstat, mkdir, readdir, readlink, stat, symlink, chmod, utimes, unlink } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import type { FileType, NfsClient, NfsFile, NfsStats } from '../client/index.ts'
import { baseName, joinPath } from './common.ts'

export interface SideStat {
  type: FileType
  /** Permission bits (07777). */
  mode: number
  size: number
  atime: Date
  mtime: Date
}

export interface Side {
  /** How paths of this side are shown in messages. */
  show(path: string): string
  join(dir: string, name: string): string
  basename(path: string): string
  lstat(path: string): Promise<SideStat>
  stat(path: string): Promise<SideStat>
  readdir(path: string): Promise<string[]>
  readlink(path: string): Promise<string>
  mkdir(path: string, mode: number): Promise<void>
  symlink(target: string, path: string): Promise<void>
  unlink(path: string): Promise<void>
  read(path: string): Readable
  /** Create or truncate. */
  write(path: string, mode: number): Writable
  chmod(path: string, mode: number): Promise<void>
  utimes(path: string, atime: Date, mtime: Date): Promise<void>
  /** Paths of the local file system (transfer.ts copies to and from them block by block). */
  local?: boolean
  /** An export's side: open a file of it for block-wise copies (transfer.ts). */
  open?(path: string, flags: 'r' | 'w', mode?: number): Promise<NfsFile>
}

const LOCAL_CHUNK = 1024 * 1024

const LOCAL_TYPES: readonly [keyof Stats, FileType][] = [
  ['isFile', 'file'],
  ['isDirectory', 'directory'],
  ['isSymbolicLink', 'symlink'],
  ['isBlockDevice', 'block'],
  ['isCharacterDevice', 'char'],
  ['isSocket', 'socket'],
  ['isFIFO', 'fifo'],
]

function localStat(s: Stats): SideStat {
  const type = LOCAL_TYPES.find(([m]) => (s[m] as () => boolean).call(s))?.[1] ?? 'file'
  return { type, mode: s.mode & 0o7777, size: s.size, atime: s.atime, mtime: s.mtime }
}

export const localSide: Side = {
  local: true,
  show: p => p,
  join: (dir, name) => join(dir, name),
  basename: p => basename(p),
  lstat: async p => localStat(await lstat(p)),
  stat: async p => localStat(await stat(p)),
  readdir: p => readdir(p),
  readlink: p => readlink(p),
  mkdir: async (p, mode) => {
    await mkdir(p, { mode })
  },
  symlink: (target, p) => symlink(target, p),
  unlink: p => unlink(p),
  // Chunks of 1 MiB (the largest block a mount uses): each whole block is then sent as read, without a copy.
  read: p => createReadStream(p, { highWaterMark: LOCAL_CHUNK }),
  write: (p, mode) => createWriteStream(p, { mode }),
  chmod: (p, mode) => chmod(p, mode),
  utimes: (p, atime, mtime) => utimes(p, atime, mtime),
}

function nfsStat(s: NfsStats): SideStat {
  return { type: s.type, mode: s.mode, size: Number(s.size), atime: s.atime, mtime: s.mtime }
}

const sides = new WeakMap<NfsClient, Side>()

/**
 * Paths inside one mounted export; `show` gives them back as nfs:// URLs
 * like `url` (the first URL that mounted it). One Side per client, so two
 * places on the same mount compare equal.
 */
export function nfsSide(client: NfsClient, url: string): Side {
  const known = sides.get(client)
  if (known !== undefined) return known
  const side = makeNfsSide(client, urlMaker(url, client.exportPath))
  sides.set(client, side)
  return side
}

function makeNfsSide(client: NfsClient, urlOf: (path: string) => string): Side {
  return {
    show: urlOf,
    join: joinPath,
    basename: baseName,
    lstat: async p => nfsStat(await client.lstat(p)),
    stat: async p => nfsStat(await client.stat(p)),
    readdir: p => client.readdir(p),
    readlink: p => client.readlink(p),
    mkdir: (p, mode) => client.mkdir(p, mode),
    symlink: (target, p) => client.symlink(target, p),
    unlink: p => client.unlink(p),
    read: p => client.createReadStream(p),
    // The chunks come from fs or NFS read streams, which never reuse them.
    write: (p, mode) => client.createWriteStream(p, { flags: 'w', mode, transfer: true }),
    chmod: (p, mode) => client.chmod(p, mode),
    utimes: (p, atime, mtime) => client.utimes(p, atime, mtime),
    open: (p, flags, mode) => client.open(p, flags, mode),
  }
}

/** nfs://host/export/path?query for a path of the mount a URL named. */
export function urlMaker(url: string, exportPath: string): (path: string) => string {
  const u = new URL(url)
  const base = `nfs://${u.host}`
  const root = exportPath === '/' ? '' : exportPath
  return p => `${base}${root}${p === '/' && root !== '' ? '' : p}${u.search}`
}
