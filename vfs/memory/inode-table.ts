/*
 * The inode table of the memory backend: id and generation allocation,
 * FileRef resolution (ESTALE), link counting and space accounting.
 */
import { randomFillSync } from 'node:crypto'
import { VfsError } from '../errors.ts'
import type { FileRef, Owner, Timespec } from '../types.ts'
import { Directory } from './directory.ts'
import type { ChunkPool } from './chunk-pool.ts'
import { FileData } from './file-data.ts'
import type { DirInode, FileInode, Inode, NodeInode, SymlinkInode } from './inode.ts'
import { ownCopy } from './own-copy.ts'

/** What one inode costs in fsstat, besides its data: a nominal figure so that free space shrinks with file count. */
export const INODE_BYTES = 256n

export interface TableLimits {
  capacityBytes: bigint
  maxFiles: bigint
}

export interface TableOptions extends TableLimits {
  /** Where new files take and give back their chunks (default: the process-wide pool of file-data.ts). */
  chunkPool?: ChunkPool
}

type Common = Pick<Inode, 'id' | 'gen' | 'mode' | 'uid' | 'gid' | 'nlink' | 'atime' | 'mtime' | 'ctime'>

export class InodeTable {
  readonly limits: TableLimits
  readonly #inodes = new Map<bigint, Inode>()
  // RFC 1813 §2.3.3: fileid 0 is avoided by clients; ids are never reused within an instance.
  #nextId = 1n
  /** Bytes of file chunks and symlink targets. */
  #dataBytes = 0n
  readonly #genPool = new Uint32Array(1024)
  #genNext = 1024

  readonly #chunkPool: ChunkPool | undefined

  constructor(o: TableOptions) {
    this.limits = { capacityBytes: o.capacityBytes, maxFiles: o.maxFiles }
    this.#chunkPool = o.chunkPool
  }

  get fileCount(): bigint {
    return BigInt(this.#inodes.size)
  }

  get usedBytes(): bigint {
    return this.#dataBytes + this.fileCount * INODE_BYTES
  }

  /** The object a FileRef names; ESTALE if it is gone or belongs to another generation. */
  get(ref: FileRef): Inode {
    const ino = this.#inodes.get(ref.id)
    if (ino?.gen !== ref.gen) throw new VfsError('ESTALE')
    return ino
  }

  getDir(ref: FileRef): DirInode {
    const ino = this.get(ref)
    if (ino.type !== 'dir') throw new VfsError('ENOTDIR')
    return ino
  }

  /** A regular file; READ, WRITE and COMMIT on anything else are EINVAL (RFC 1813 §3.3.6, §3.3.7). */
  getFile(ref: FileRef): FileInode {
    const ino = this.get(ref)
    if (ino.type !== 'file') throw new VfsError('EINVAL', `not a regular file: ${ino.type}`)
    return ino
  }

  /** An inode reached through a directory entry; a missing one is a bug in this backend. */
  byId(id: bigint): Inode {
    const ino = this.#inodes.get(id)
    if (ino === undefined) throw new Error(`memory vfs: dangling entry to inode ${id}`)
    return ino
  }

  /** Throws ENOSPC unless `bytes` more data and `files` more inodes fit. */
  reserve(bytes: bigint, files: bigint): void {
    if (this.fileCount + files > this.limits.maxFiles) throw new VfsError('ENOSPC', 'no free inodes')
    if (this.usedBytes + bytes + files * INODE_BYTES > this.limits.capacityBytes) throw new VfsError('ENOSPC')
  }

  /** Records a change in data bytes (a write, a truncate) that the caller has reserved. */
  account(delta: bigint): void {
    this.#dataBytes += delta
  }

  newFile(mode: number, owner: Owner, now: Timespec): FileInode {
    this.reserve(0n, 1n)
    // Spelled out rather than spread from #common(): one object of a fixed shape on CREATE's path.
    return this.#add({
      id: this.#nextId++, gen: this.#gen(), mode: mode & 0o7777, uid: owner.uid, gid: owner.gid, nlink: 1,
      atime: now, mtime: now, ctime: now, type: 'file', data: new FileData(this.#chunkPool), verifier: null,
    })
  }

  newDir(mode: number, owner: Owner, now: Timespec, parent: bigint | null): DirInode {
    this.reserve(0n, 1n)
    const common = this.#common(mode, owner, now)
    return this.#add({ ...common, nlink: 2, type: 'dir', dir: new Directory(), parent: parent ?? common.id })
  }

  newSymlink(target: Buffer, mode: number, owner: Owner, now: Timespec): SymlinkInode {
    this.reserve(BigInt(target.length), 1n)
    this.#dataBytes += BigInt(target.length)
    return this.#add({ ...this.#common(mode, owner, now), type: 'symlink', target: ownCopy(target) })
  }

  newNode(
    type: NodeInode['type'],
    rdev: { major: number; minor: number },
    mode: number,
    owner: Owner,
    now: Timespec,
  ): NodeInode {
    this.reserve(0n, 1n)
    return this.#add({ ...this.#common(mode, owner, now), type, rdev: { major: rdev.major, minor: rdev.minor } })
  }

  /** One directory entry to `ino` went away; the last one frees it (its FileRefs turn ESTALE). */
  unlink(ino: Inode, now: Timespec): void {
    if (ino.type === 'dir') {
      this.#free(ino)
      return
    }
    ino.nlink--
    ino.ctime = now
    if (ino.nlink <= 0) this.#free(ino)
  }

  clear(): void {
    this.#inodes.clear()
    this.#dataBytes = 0n
  }

  #free(ino: Inode): void {
    if (ino.type === 'file') {
      this.#dataBytes -= BigInt(ino.data.used)
      ino.data.clear()
    } else if (ino.type === 'symlink') {
      this.#dataBytes -= BigInt(ino.target.length)
    }
    this.#inodes.delete(ino.id)
  }

  /** A random non-zero u32, so a handle minted by an earlier server run is STALE here. Drawn from a batch: one crypto call per 1,024 inodes. */
  #gen(): number {
    if (this.#genNext >= this.#genPool.length) {
      randomFillSync(this.#genPool)
      this.#genNext = 0
    }
    const g = this.#genPool[this.#genNext++] ?? 0
    return g === 0 ? 1 : g
  }

  #common(mode: number, owner: Owner, now: Timespec): Common {
    return { id: this.#nextId++, gen: this.#gen(), mode: mode & 0o7777, uid: owner.uid, gid: owner.gid, nlink: 1, atime: now, mtime: now, ctime: now }
  }

  #add<T extends Inode>(ino: T): T {
    this.#inodes.set(ino.id, ino)
    return ino
  }
}
