/*
 * An engine volume's snapshot as a backup reads it (issue 16 §5). A snapshot's objects carry
 * fileids `(snapshot id + 1) << 40 | inode` in the `.snapshot/SNAP/` view, so they never collide
 * with the live tree's; but a backup compares fileids with its base's listing to see renames, and
 * two backups read from two snapshots (whatever ids they got) must see the same fileid for the
 * same inode. This view gives the inode's own fileid back and refuses every change (EROFS).
 */
import { VfsError } from '../../vfs/errors.ts'
import type { Attr, DirPage, FileRef, FsStat, PathConf, ReadResult, Vfs, VfsCapabilities } from '../../vfs/types.ts'

/** The bits a snapshot view puts above the inode number (vfs/snapdir). */
const INODE_BITS = (1n << 40n) - 1n

const rofs = (): Promise<never> => Promise.reject(new VfsError('EROFS', 'a snapshot is read-only'))

export class SnapshotReadView implements Vfs {
  readonly #inner: Vfs
  readonly #root: FileRef

  constructor(inner: Vfs, root: FileRef) {
    this.#inner = inner
    this.#root = root
  }

  root(): FileRef {
    return this.#root
  }

  capabilities(): VfsCapabilities {
    return this.#inner.capabilities()
  }

  async getattr(f: FileRef): Promise<Attr> {
    return own(await this.#inner.getattr(f))
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    const r = await this.#inner.lookup(dir, name)
    return { ref: r.ref, attr: own(r.attr) }
  }

  readlink(f: FileRef): Promise<Buffer> {
    return this.#inner.readlink(f)
  }

  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    const r = await this.#inner.read(f, offset, count)
    return { ...r, attr: own(r.attr) }
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    const page = await this.#inner.readdir(dir, cookie, max)
    return {
      eof: page.eof,
      entries: page.entries.map((e) => ({ ...e, fileid: e.fileid & INODE_BITS, ...(e.attr === undefined ? {} : { attr: own(e.attr) }) })),
    }
  }

  fsstat(f: FileRef): Promise<FsStat> {
    return this.#inner.fsstat(f)
  }

  pathconf(f: FileRef): Promise<PathConf> {
    return this.#inner.pathconf(f)
  }

  setattr = rofs
  write = rofs
  commit = rofs
  create = rofs
  mkdir = rofs
  symlink = rofs
  mknod = rofs
  remove = rofs
  rmdir = rofs
  rename = rofs
  link = rofs

  /** The export's Vfs stays open: it is the server's, not this view's. */
  close(): Promise<void> {
    return Promise.resolve()
  }
}

function own(a: Attr): Attr {
  return { ...a, fileid: a.fileid & INODE_BITS }
}
