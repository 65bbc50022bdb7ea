/*
 * A frozen copy of a memory tree (issue 16 §5: "a backup reads from a snapshot where the backend
 * has one (... memory: a frozen copy)"). Taken synchronously, so it is one instant of the tree:
 * the metadata (attributes, directory entries with their cookies, symlink targets) is copied,
 * and file data is not. Chunks ARE modified in place by later writes, so each chunk the copy
 * holds is lent (loans.ts), exactly as a READ's view is: the live file's next write to it copies
 * it first (file-data.ts #writable), and a chunk the live file drops meanwhile goes back to the
 * pool only when the copy is released. So the copy costs a walk of the tree and a Map per file,
 * never a copy of data, and the live tree stays writable.
 *
 * The copy is a read-only Vfs (every change is EROFS) with the live tree's fileids, generations
 * and readdir cookies; after release() every handle is ESTALE.
 */
// Every operation completes synchronously, as in memory-vfs.ts; `async` makes a throw a rejection.
/* eslint-disable @typescript-eslint/require-await */
import { VfsError } from '../errors.ts'
import type { Attr, DirEntry, DirPage, FileRef, FsStat, PathConf, ReadResult, Vfs, VfsCapabilities } from '../types.ts'
import { LINK_MAX } from './create.ts'
import { FIRST_ENTRY_SEQ } from './directory.ts'
import { CHUNK_SIZE } from './file-data.ts'
import type { FrozenData } from './file-data.ts'
import { attrOf } from './inode.ts'
import type { DirInode, Inode } from './inode.ts'
import type { InodeTable } from './inode-table.ts'
import { NAME_MAX } from '../names.ts'

interface FrozenEntry {
  readonly key: string
  readonly id: bigint
  readonly seq: number
}

interface FrozenInode {
  readonly attr: Attr
  /** Directories: entries in cookie (sequence) order, and by name. */
  readonly entries?: readonly FrozenEntry[]
  readonly byName?: ReadonlyMap<string, bigint>
  readonly parent?: bigint
  readonly data?: FrozenData
  readonly target?: Buffer
}

const CHUNK = BigInt(CHUNK_SIZE)
/** As memory-vfs.ts: a larger read is short (legal, RFC 1813 §3.3.6). */
const MAX_READ = 16 * 1024 * 1024

const rofs = (): Promise<never> => Promise.reject(new VfsError('EROFS', 'a frozen copy is read-only'))

/** Copies the tree under `root` now (synchronously: nothing changes meanwhile). */
export function freezeTree(table: InodeTable, root: DirInode, capabilities: VfsCapabilities, fsstat: FsStat): FrozenMemoryVfs {
  const inodes = new Map<bigint, FrozenInode>()
  const stack: Inode[] = [root]
  for (let ino = stack.pop(); ino !== undefined; ino = stack.pop()) {
    if (inodes.has(ino.id)) continue // a hard link met again
    const attr = attrOf(ino)
    switch (ino.type) {
      case 'dir': {
        const { slots } = ino.dir.after(FIRST_ENTRY_SEQ - 1, Number.MAX_SAFE_INTEGER)
        const entries = slots.map((s) => ({ key: s.key, id: s.id, seq: s.seq }))
        inodes.set(ino.id, { attr, entries, byName: new Map(entries.map((e) => [e.key, e.id])), parent: ino.parent })
        for (const e of entries) stack.push(table.byId(e.id))
        break
      }
      case 'file':
        inodes.set(ino.id, { attr, data: ino.data.freeze() })
        break
      case 'symlink':
        // Never modified in place (a new symlink is a new inode): shared.
        inodes.set(ino.id, { attr, target: ino.target })
        break
      default:
        inodes.set(ino.id, { attr })
    }
  }
  return new FrozenMemoryVfs(inodes, { id: root.id, gen: root.gen }, capabilities, fsstat)
}

export class FrozenMemoryVfs implements Vfs {
  #inodes: Map<bigint, FrozenInode>
  readonly #root: FileRef
  readonly #caps: VfsCapabilities
  readonly #fsstat: FsStat

  constructor(inodes: Map<bigint, FrozenInode>, root: FileRef, caps: VfsCapabilities, fsstat: FsStat) {
    this.#inodes = inodes
    this.#root = root
    this.#caps = caps
    this.#fsstat = fsstat
  }

  /** Objects in the copy. */
  get size(): number {
    return this.#inodes.size
  }

  /** Ends the copy's loans of file chunks (the live tree's writes stop copying them); every handle turns ESTALE. */
  release(): void {
    for (const ino of this.#inodes.values()) ino.data?.release()
    this.#inodes = new Map()
  }

  root(): FileRef {
    return this.#root
  }

  capabilities(): VfsCapabilities {
    return this.#caps
  }

  #get(f: FileRef): FrozenInode {
    const ino = this.#inodes.get(f.id)
    if (ino?.attr.gen !== f.gen) throw new VfsError('ESTALE')
    return ino
  }

  #dir(f: FileRef): FrozenInode & { entries: readonly FrozenEntry[]; byName: ReadonlyMap<string, bigint>; parent: bigint } {
    const ino = this.#get(f)
    if (ino.entries === undefined || ino.byName === undefined || ino.parent === undefined) throw new VfsError('ENOTDIR')
    return { ...ino, entries: ino.entries, byName: ino.byName, parent: ino.parent }
  }

  #byId(id: bigint): FrozenInode {
    const ino = this.#inodes.get(id)
    if (ino === undefined) throw new VfsError('ESTALE')
    return ino
  }

  async getattr(f: FileRef): Promise<Attr> {
    return this.#get(f).attr
  }

  async lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; attr: Attr }> {
    const d = this.#dir(dir)
    const key = name.toString('latin1')
    const id = key === '.' ? dir.id : key === '..' ? d.parent : d.byName.get(key)
    if (id === undefined) throw new VfsError('ENOENT')
    const attr = this.#byId(id).attr
    return { ref: { id: attr.fileid, gen: attr.gen }, attr }
  }

  async readlink(f: FileRef): Promise<Buffer> {
    const ino = this.#get(f)
    if (ino.target === undefined) throw new VfsError('EINVAL', 'not a symlink')
    return Buffer.from(ino.target)
  }

  async read(f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
    const ino = this.#get(f)
    if (ino.data === undefined) throw new VfsError('EINVAL', `not a regular file: ${ino.attr.type}`)
    if (offset < 0n || count < 0) throw new VfsError('EINVAL')
    const data = readChunks(ino.data, offset, Math.min(count, MAX_READ))
    return { data, eof: offset + BigInt(data.length) >= ino.data.size, attr: ino.attr }
  }

  async readdir(dir: FileRef, cookie: bigint, max: number): Promise<DirPage> {
    const d = this.#dir(dir)
    const limit = Math.max(1, Math.floor(max))
    const out: DirEntry[] = []
    if (cookie === 0n) out.push({ name: Buffer.from('.'), fileid: dir.id, cookie: 1n, ref: { id: dir.id, gen: dir.gen } })
    if (cookie <= 1n && out.length < limit) {
      const p = this.#byId(d.parent).attr
      out.push({ name: Buffer.from('..'), fileid: p.fileid, cookie: 2n, ref: { id: p.fileid, gen: p.gen } })
    } else if (cookie <= 1n) return { entries: out, eof: false }
    // Cookies are the live tree's sequence numbers: the first entry after `cookie`, by binary search.
    let lo = 0
    let hi = d.entries.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (BigInt(d.entries[mid]?.seq ?? 0) <= cookie) lo = mid + 1
      else hi = mid
    }
    let i = lo
    for (; i < d.entries.length && out.length < limit; i++) {
      const e = d.entries[i] as FrozenEntry
      const attr = this.#byId(e.id).attr
      out.push({ name: Buffer.from(e.key, 'latin1'), fileid: attr.fileid, cookie: BigInt(e.seq), ref: { id: attr.fileid, gen: attr.gen }, attr })
    }
    return { entries: out, eof: i >= d.entries.length }
  }

  async fsstat(f: FileRef): Promise<FsStat> {
    this.#get(f)
    return this.#fsstat
  }

  async pathconf(f: FileRef): Promise<PathConf> {
    this.#get(f)
    return { linkMax: LINK_MAX, nameMax: NAME_MAX, noTrunc: true, chownRestricted: true, caseInsensitive: false, casePreserving: true }
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

  async close(): Promise<void> {
    this.release()
  }
}

/** `count` bytes from `offset` (short at the end), holes and bytes past a short chunk as zeros. */
function readChunks(d: FrozenData, offset: bigint, count: number): Buffer {
  if (offset >= d.size || count <= 0) return Buffer.alloc(0)
  const avail = d.size - offset
  const n = BigInt(count) < avail ? count : Number(avail)
  const out = Buffer.allocUnsafe(n)
  let done = 0
  while (done < n) {
    const pos = offset + BigInt(done)
    const at = Number(pos % CHUNK)
    const step = Math.min(n - done, CHUNK_SIZE - at)
    const chunk = d.chunks.get(Number(pos / CHUNK))
    let copied = 0
    if (chunk !== undefined && at < chunk.length) copied = chunk.copy(out, done, at, Math.min(chunk.length, at + step))
    if (copied < step) out.fill(0, done + copied, done + step)
    done += step
  }
  return out
}
