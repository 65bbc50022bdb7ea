/*
 * The export's Vfs over a volume whose engine may be replaced while serving (an online grow: the
 * layers and the file system's group count change, which the running engine cannot take in).
 * Calls pass straight to the current engine; `hold` stops new calls at a gate and waits for the
 * ones running to finish, `swap` puts the new engine in, `release` lets the waiting calls go on
 * against it. FileRefs are inode numbers and generations, the same in every engine opened on the
 * same file system, so the handles clients hold stay valid across the swap.
 */
import { vfsError } from '../vfs/errors.ts'
import type { Attr, Caller, Created, CreateMode, DirChange, DirPage, FileRef, FsStat, Owner, PathConf, ReadResult, SetAttr, Stability, Vfs, VfsCache, VfsCapabilities } from '../vfs/types.ts'

export class SwappableVfs implements Vfs {
  #current: Vfs | null
  #gate: Promise<void> | null = null
  #open: () => void = () => undefined
  #running = 0
  #drained: (() => void)[] = []

  constructor(first: Vfs) {
    this.#current = first
  }

  /** The engine serving now (null after a swap that failed to open one: every call is EIO). */
  get current(): Vfs | null {
    return this.#current
  }

  /** Resolves once no call runs and new ones wait; one hold at a time (the caller's operation is exclusive). */
  async hold(): Promise<void> {
    if (this.#gate !== null) throw new Error('SwappableVfs: already held')
    this.#gate = new Promise((resolve) => (this.#open = resolve))
    if (this.#running > 0) await new Promise<void>((resolve) => this.#drained.push(resolve))
  }

  /** While held: the Vfs the waiting calls will reach (null: none, they fail with EIO). */
  swap(next: Vfs | null): void {
    this.#current = next
  }

  release(): void {
    const open = this.#open
    this.#gate = null
    open()
  }

  async #run<T>(call: (v: Vfs) => Promise<T>): Promise<T> {
    while (this.#gate !== null) await this.#gate
    const v = this.#current
    if (v === null) throw vfsError('EIO', 'the volume\'s file system could not be reopened after a grow')
    this.#running++
    try {
      return await call(v)
    } finally {
      this.#running--
      if (this.#running === 0) for (const wake of this.#drained.splice(0)) wake()
    }
  }

  #sync(): Vfs {
    if (this.#current === null) throw vfsError('EIO', 'the volume\'s file system could not be reopened after a grow')
    return this.#current
  }

  root(): FileRef {
    return this.#sync().root()
  }

  capabilities(): VfsCapabilities {
    return this.#sync().capabilities()
  }

  getattr(f: FileRef): Promise<Attr> {
    return this.#run((v) => v.getattr(f))
  }

  lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    return this.#run((v) => v.lookup(dir, name))
  }

  setattr(f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
    return this.#run((v) => v.setattr(f, set))
  }

  readlink(f: FileRef): Promise<Buffer> {
    return this.#run((v) => v.readlink(f))
  }

  read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    return this.#run((v) => v.read(f, offset, count))
  }

  write(f: FileRef, offset: bigint, data: Buffer, stable: Stability, caller?: Caller): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
    return this.#run((v) => v.write(f, offset, data, stable, caller))
  }

  commit(f: FileRef, offset: bigint, count: number): Promise<{ before: Attr; after: Attr }> {
    return this.#run((v) => v.commit(f, offset, count))
  }

  async commitMetadata(refs: readonly FileRef[]): Promise<void> {
    await this.#run((v) => v.commitMetadata?.(refs) ?? Promise.resolve())
  }

  create(dir: FileRef, name: Buffer, mode: CreateMode, owner: Owner): Promise<Created> {
    return this.#run((v) => v.create(dir, name, mode, owner))
  }

  mkdir(dir: FileRef, name: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#run((v) => v.mkdir(dir, name, attr, owner))
  }

  symlink(dir: FileRef, name: Buffer, target: Buffer, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#run((v) => v.symlink(dir, name, target, attr, owner))
  }

  mknod(dir: FileRef, name: Buffer, type: 'block' | 'char' | 'socket' | 'fifo', rdev: { major: number; minor: number }, attr: SetAttr, owner: Owner): Promise<Created> {
    return this.#run((v) => v.mknod(dir, name, type, rdev, attr, owner))
  }

  remove(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#run((v) => v.remove(dir, name))
  }

  rmdir(dir: FileRef, name: Buffer): Promise<DirChange> {
    return this.#run((v) => v.rmdir(dir, name))
  }

  rename(fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, caller?: Caller): Promise<{ from: DirChange; to: DirChange }> {
    return this.#run((v) => v.rename(fromDir, fromName, toDir, toName, caller))
  }

  link(f: FileRef, dir: FileRef, name: Buffer, caller?: Caller): Promise<{ attr: Attr; dir: DirChange }> {
    return this.#run((v) => v.link(f, dir, name, caller))
  }

  readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    return this.#run((v) => v.readdir(dir, cookie, max))
  }

  fsstat(f: FileRef): Promise<FsStat> {
    return this.#run((v) => v.fsstat(f))
  }

  pathconf(f: FileRef): Promise<PathConf> {
    return this.#run((v) => v.pathconf(f))
  }

  async close(): Promise<void> {
    while (this.#gate !== null) await this.#gate
    await this.#current?.close()
  }

  /** The caches of the engine serving now (a grow replaces them). */
  caches(): readonly VfsCache[] {
    return this.#current?.caches?.() ?? []
  }
}
