/*
 * In-memory inodes: one record per stored object, a discriminated union on
 * `type`, and the snapshot that turns one into an Attr.
 */
import type { Attr, Timespec } from '../types.ts'
import type { Directory } from './directory.ts'
import type { FileData } from './file-data.ts'

interface InodeCommon {
  readonly id: bigint
  /** Random non-zero u32: a handle from another instance with the same id is stale, never the wrong object. */
  readonly gen: number
  mode: number
  uid: number
  gid: number
  nlink: number
  atime: Timespec
  mtime: Timespec
  ctime: Timespec
}

export interface FileInode extends InodeCommon {
  readonly type: 'file'
  readonly data: FileData
  /** The EXCLUSIVE create verifier, kept with the file (RFC 1813 §3.3.8). */
  verifier: Buffer | null
}

export interface DirInode extends InodeCommon {
  readonly type: 'dir'
  readonly dir: Directory
  /** The directory holding this one; the root's parent is itself. */
  parent: bigint
}

export interface SymlinkInode extends InodeCommon {
  readonly type: 'symlink'
  readonly target: Buffer
}

export interface NodeInode extends InodeCommon {
  readonly type: 'block' | 'char' | 'socket' | 'fifo'
  readonly rdev: { major: number; minor: number }
}

export type Inode = FileInode | DirInode | SymlinkInode | NodeInode

/** Directory size as tmpfs reports it: a nominal 20 bytes per entry, `.` and `..` included. */
const DIRENT_BYTES = 20n

function sizeOf(ino: Inode): { size: bigint; used: bigint } {
  switch (ino.type) {
    case 'file':
      return { size: ino.data.size, used: BigInt(ino.data.used) }
    case 'dir': {
      const size = BigInt(ino.dir.count + 2) * DIRENT_BYTES
      return { size, used: size }
    }
    case 'symlink': {
      const size = BigInt(ino.target.length)
      return { size, used: size }
    }
    default:
      return { size: 0n, used: 0n }
  }
}

const NO_RDEV = Object.freeze({ major: 0, minor: 0 })

/**
 * A snapshot of the inode's attributes. The Timespec and rdev objects are
 * shared with the inode: they are replaced on change, never modified in
 * place (nothing in vfs/ or server/ assigns to their fields), so sharing
 * them saves four objects per call on READDIRPLUS's per-entry path.
 */
export function attrOf(ino: Inode): Attr {
  const { size, used } = sizeOf(ino)
  return {
    type: ino.type,
    mode: ino.mode,
    nlink: ino.nlink,
    uid: ino.uid,
    gid: ino.gid,
    size,
    used,
    rdev: ino.type === 'block' || ino.type === 'char' ? ino.rdev : NO_RDEV,
    fileid: ino.id,
    gen: ino.gen,
    atime: ino.atime,
    mtime: ino.mtime,
    ctime: ino.ctime,
  }
}
