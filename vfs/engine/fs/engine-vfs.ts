/*
 * The engine as a Vfs: NFS-shaped operations (file ids, generations, errno codes) over the
 * ext4-format parts. File ids are inode numbers and the handle generation is i_generation, so a
 * handle stays valid across restarts and renames and turns stale when the inode is reused.
 *
 * Each change runs in one transaction handle under the exclusive side of a lock, then waits for
 * its transaction to be durable *outside* the lock (a WRITE also writes its data blocks outside
 * it, with its handle still open: data-flights.ts): concurrent changes join the same transaction
 * and share its commit (group commit), and every reply that promises stability goes out only
 * after the commit that holds it (RFC 1813 §3.3: CREATE, REMOVE, RENAME... are synchronous).
 * All checks run before the first change; what can still fail midway (ENOSPC) is undone by hand,
 * as ext4 does, since a journal handle cannot roll back.
 *
 * This class is the one public face; the work is split by what it touches: engine-core.ts (the
 * lock, a change's handle and commit, freezing, finding inodes), lookup-ops.ts, file-ops.ts,
 * create-ops.ts and name-ops.ts (the operations, as functions over the core).
 */
import type {
  Attr, Caller, CreateMode, Created, DirChange, DirPage, FileRef, FsStat, Owner, PathConf,
  ReadResult, SetAttr, Stability, Vfs, VfsCache, VfsCapabilities,
} from '../../types.ts'
import { create, mkdir, mknod, symlink } from './create-ops.ts'
import { EngineCore, ROOT_INO } from './engine-core.ts'
import type { EngineParts, EngineVfsOptions } from './engine-core.ts'
import { commit, read, readlink, setattr, write } from './file-ops.ts'
import { fsstat, getattr, lookup, pathconf, readdir } from './lookup-ops.ts'
import { link, remove, rename, rmdir } from './name-ops.ts'

export { ROOT_INO } from './engine-core.ts'
export type { EngineParts, EngineVfsOptions } from './engine-core.ts'
export { LINK_MAX } from './dir-links.ts'

export class EngineVfs implements Vfs {
  readonly #c: EngineCore
  #rootGen = 0

  private constructor(parts: EngineParts, opts: EngineVfsOptions) {
    this.#c = new EngineCore(parts, opts)
  }

  static async open(parts: EngineParts, opts: EngineVfsOptions = {}): Promise<EngineVfs> {
    const vfs = new EngineVfs(parts, opts)
    vfs.#rootGen = (await parts.inodes.read(ROOT_INO)).generation
    return vfs
  }

  get readOnly(): boolean {
    return this.#c.readOnly
  }

  root(): FileRef {
    return { id: BigInt(ROOT_INO), gen: this.#rootGen }
  }

  capabilities(): VfsCapabilities {
    return {
      maxFileSize: this.#c.p.maxFileSize,
      timeDelta: { sec: 0, nsec: 1 },
      hardLinks: true,
      symlinks: true,
      deviceNodes: true,
      canSetTime: true,
    }
  }

  // ---- reading (lookup-ops.ts, file-ops.ts) ----

  getattr(f: FileRef): Promise<Attr> {
    return getattr(this.#c, f)
  }

  lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    return lookup(this.#c, dir, name)
  }

  readlink(f: FileRef): Promise<Buffer> {
    return readlink(this.#c, f)
  }

  read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    return read(this.#c, f, offset, count)
  }

  readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    return readdir(this.#c, dir, cookie, max)
  }

  fsstat(f: FileRef): Promise<FsStat> {
    return fsstat(this.#c, f)
  }

  pathconf(f: FileRef): Promise<PathConf> {
    return pathconf(this.#c, f)
  }

  // ---- changing (file-ops.ts, create-ops.ts, name-ops.ts) ----

  setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    return setattr(this.#c, f, set)
  }

  write(f: FileRef, offset: bigint, data: Buffer, stable: Stability, caller?: Caller): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    return write(this.#c, f, offset, data, stable, caller)
  }

  commit(f: FileRef): Promise<{ before: Attr; after: Attr }> {
    return commit(this.#c, f)
  }

  create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    return create(this.#c, dir, name, mode, owner)
  }

  mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return mkdir(this.#c, dir, name, attr, owner)
  }

  symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return symlink(this.#c, dir, name, target, attr, owner)
  }

  mknod(
    dir: FileRef, name: Buffer, type: 'block' | 'char' | 'socket' | 'fifo',
    rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner,
  ): Promise<Created> {
    return mknod(this.#c, dir, name, type, rdev, attr, owner)
  }

  remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    return remove(this.#c, dir, name)
  }

  rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    return rmdir(this.#c, dir, name)
  }

  link(f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }> {
    return link(this.#c, f, dir, name, caller)
  }

  rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }> {
    return rename(this.#c, fromDir, fromName, toDir, toName, caller)
  }

  close(): Promise<void> {
    return this.#c.close()
  }

  caches(): readonly VfsCache[] {
    return this.#c.p.caches ?? []
  }

  // ---- freezing (ext4_freeze / FIFREEZE: engine-core.ts) ----

  freeze(): Promise<void> {
    return this.#c.freeze()
  }

  thaw(): Promise<void> {
    return this.#c.thaw()
  }

  get frozen(): boolean {
    return this.#c.frozen
  }

  /** WRITEs in their data phase now, and the most at once so far (for counting tests). */
  get dataWritesInFlight(): { now: number; max: number } {
    return this.#c.dataWritesInFlight
  }
}
