/*
 * The pieces the namespace layer (engine-fs.ts) is assembled from, each behind the smallest
 * interface it needs. Inodes, a file's block map (extents) and directories are separate parts so
 * each can be tested against real images on its own; fs/assemble.ts wires the real ones.
 *
 * Every method that changes anything takes the operation's transaction handle and changes only
 * through it. Methods that take an `Inode` may change that object in memory (size, i_blocks,
 * i_block, flags); the caller writes it with `InodeStore.write` before ending the handle.
 */
import type { Inode } from '../format/inode.ts'
import type { InodeSlot } from '../inode/inode-table.ts'
import type { MetaTxn } from '../txn/txn.ts'

export interface InodeStore {
  /** The decoded inode (the caller may change the returned object only to write it back). */
  read(ino: number): Promise<Inode>
  /** The cached inode itself, for looking only: never change it (readers skip the copy). */
  peek(ino: number): Promise<Readonly<Inode>>
  /** The cached slot (the inode peek would give, and what readers derived from it), at once; undefined if not cached. */
  cachedSlot(ino: number): InodeSlot | undefined
  /** The slot of inode ino, read if not cached: for looking only, as peek. */
  slot(ino: number): Promise<InodeSlot>
  /** Read what holds these inodes (those not cached) at once, so the slot() calls that follow find it. */
  prefetch?(inos: readonly number[]): Promise<void>
  write(h: MetaTxn, ino: number, inode: Inode): Promise<void>
  /** A new inode's record for a number just allocated: the type and permission bits in `mode`. */
  fresh(ino: number, mode: number, owner: { uid: number; gid: number }, now: { sec: number; nsec: number }): Promise<Inode>
}

/** A stretch of a file: `pblk` 0 is a hole (or an unwritten extent, which reads as zeros). */
export interface Run {
  lblk: number
  pblk: number
  len: number
  /** Blocks allocated by this call: their old contents are garbage until written. */
  fresh?: boolean
}

export interface FileMap {
  /** The runs covering [lblk, lblk + count), in order, holes included. */
  map(ino: number, inode: Inode, lblk: number, count: number): Promise<Run[]>
  /** Allocate whatever is missing in [lblk, lblk + count) and return the runs (no holes). */
  allocate(h: MetaTxn, ino: number, inode: Inode, lblk: number, count: number): Promise<Run[]>
  /** Free every block at or after `fromLblk` (0: all, the tree back to an empty root). */
  truncate(h: MetaTxn, ino: number, inode: Inode, fromLblk: number): Promise<void>
}

export interface DirEntryFound {
  ino: number
  /** The dirent's file type (format/dirent.ts FT). */
  fileType: number
}

export interface ListedEntry extends DirEntryFound {
  name: Buffer
  /** Resumes the listing after this entry; never 0; stable while other entries come and go. */
  cookie: bigint
}

export interface DirIndex {
  find(dirIno: number, dir: Inode, name: Buffer): Promise<DirEntryFound | undefined>
  /** What find would answer, at once, when a name cache holds it; undefined: ask find. */
  findCached?(dirIno: number, name: Buffer): DirEntryFound | undefined
  /** Drop what is remembered of directories (the journal aborted: the blocks may not be what was read). */
  forget?(): void
  /** EEXIST if present; may grow the directory (its inode's size and blocks). */
  add(h: MetaTxn, dirIno: number, dir: Inode, name: Buffer, ino: number, fileType: number): Promise<void>
  /** ENOENT if absent. */
  remove(h: MetaTxn, dirIno: number, dir: Inode, name: Buffer): Promise<void>
  /** A new directory's first block with `.` and `..`. */
  init(h: MetaTxn, dirIno: number, dir: Inode, parentIno: number): Promise<void>
  /** Point `..` at a new parent (a directory moved by rename). */
  setParent(h: MetaTxn, dirIno: number, dir: Inode, parentIno: number): Promise<void>
  /** Only `.` and `..` left. */
  isEmpty(dirIno: number, dir: Inode): Promise<boolean>
  /** Up to `max` entries after `cookie` (0: from the start), `.` and `..` included. */
  list(dirIno: number, dir: Inode, cookie: bigint, max: number): Promise<{ entries: ListedEntry[]; eof: boolean }>
}
