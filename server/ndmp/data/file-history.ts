/*
 * File history for the DMA's catalog (draft-skardal-ndmpv4 §3.12, "File history interface"),
 * built from the backup's onFile entries in one of the two forms the draft offers:
 *  - node form (dump's): FH_ADD_DIR (name, node, parent) for every name, FH_ADD_NODE (stat,
 *    node, fh_info) for every object; the first two dir entries are "." and ".." of the root,
 *    both with node = parent = the root's node, which is how a DMA finds the root (ndmjob's
 *    index writes "DHr" from the first). A directory's entries go out before the nodes they
 *    name (§3.12.2: a node is sent after the dir entry naming it), so dirs flush before nodes.
 *  - file form (tar's): FH_ADD_FILE with the whole path, "/" for the root.
 * fh_info is the object's byte offset in the stream: a direct access restore hands it back.
 * Entries are batched (500 a message, and about 256 KiB of names) so a 100,000-file backup is
 * 200 posts, not 100,000.
 */
import type { DirListing, FileHistoryEntry } from '../../../backup/types.ts'
import type { FileType } from '../../../vfs/types.ts'
import type { HistoryForm } from './env.ts'

/** ndmp4_file_type / ndmp3_file_type values. */
export const FhFileType = { DIR: 0, FIFO: 1, CSPEC: 2, BSPEC: 3, REG: 4, SLINK: 5, SOCK: 6, REGISTRY: 7, OTHER: 8 } as const

export interface FhStat {
  ftype: number
  mtime: number
  atime: number
  ctime: number
  owner: number
  group: number
  /** UNIX mode bits (permissions; the type is in ftype). */
  fattr: number
  size: bigint
  links: number
}

export interface FhFile {
  name: string
  stat: FhStat
  node: bigint
  fhInfo: bigint
}

export interface FhDir {
  name: string
  node: bigint
  parent: bigint
}

export interface FhNode {
  stat: FhStat
  node: bigint
  fhInfo: bigint
}

export type FhBatch = { kind: 'file'; files: FhFile[] } | { kind: 'dir'; dirs: FhDir[] } | { kind: 'node'; nodes: FhNode[] }

export const FH_BATCH_ENTRIES = 500
export const FH_BATCH_BYTES = 256 * 1024
/** Per-entry XDR cost besides the name: stat, node, fh_info, array and union words. */
const ENTRY_OVERHEAD = 96

const TYPES: Record<FileType, number> = {
  dir: FhFileType.DIR,
  fifo: FhFileType.FIFO,
  char: FhFileType.CSPEC,
  block: FhFileType.BSPEC,
  file: FhFileType.REG,
  symlink: FhFileType.SLINK,
  socket: FhFileType.SOCK,
}

/** u_long on the wire: seconds past 2106 or before 1970 are clamped, never wrapped. */
function u32(n: number): number {
  if (!Number.isFinite(n) || n < 0) return 0
  return n > 0xffffffff ? 0xffffffff : Math.floor(n)
}

export function fhStat(e: FileHistoryEntry): FhStat {
  return {
    ftype: TYPES[e.type],
    mtime: u32(e.mtime.sec),
    atime: u32(e.atime.sec),
    ctime: u32(e.ctime.sec),
    owner: u32(e.uid),
    group: u32(e.gid),
    fattr: e.mode & 0o7777,
    size: e.type === 'file' || e.type === 'symlink' ? e.size : 0n,
    links: e.type === 'dir' ? 2 : 1,
  }
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i < 0 ? '' : path.slice(0, i)
}

function baseOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i < 0 ? path : path.slice(i + 1)
}

/**
 * Collects entries and hands full batches to `send`, which returns once the post is queued
 * (its promise is the backpressure: the backup's sink awaits drain() before its next write).
 */
export class FileHistoryBatcher {
  private files: FhFile[] = []
  private dirs: FhDir[] = []
  private nodes: FhNode[] = []
  private bytes = 0
  private pending: Promise<void> = Promise.resolve()
  private failure: unknown = null
  /** Directory path -> its node, to name each entry's parent. */
  private readonly dirNodes = new Map<string, bigint>()
  private rootSent = false
  entries = 0
  posts = 0

  private readonly form: HistoryForm
  private readonly send: (batch: FhBatch) => Promise<void>
  /** Paths sent (node form of an incremental): addListing() names the rest. */
  private readonly sent: Set<string> | null

  constructor(form: HistoryForm, send: (batch: FhBatch) => Promise<void>, incremental = false) {
    this.form = form
    this.send = send
    this.sent = incremental && form === 'node' ? new Set() : null
  }

  /**
   * After an incremental (node form): a dir entry for every name the directories held that no
   * object was sent for, as dump does (every directory goes out whole at every level; the unchanged
   * nodes get no FH_ADD_NODE). A DMA's catalog then knows every name present at this backup, so
   * unchanged files are found in the chain and deleted ones are known gone.
   */
  addListing(listing: DirListing): void {
    if (this.sent === null) return
    for (const [dir, names] of listing) {
      const parent = this.dirNodes.get(dir)
      if (parent === undefined) continue
      for (const e of names) {
        const path = dir === '' ? e.name : `${dir}/${e.name}`
        if (this.sent.has(path)) continue
        this.dirs.push({ name: e.name, node: e.fileid, parent })
        this.bytes += e.name.length + ENTRY_OVERHEAD
        if (this.dirs.length >= FH_BATCH_ENTRIES || this.bytes >= FH_BATCH_BYTES) this.flush()
      }
    }
  }

  add(e: FileHistoryEntry): void {
    this.entries++
    this.sent?.add(e.path)
    const stat = fhStat(e)
    if (this.form === 'file') {
      const name = e.path === '' ? '/' : `/${e.path}`
      this.files.push({ name, stat, node: e.fileid, fhInfo: e.offset })
      this.bytes += name.length + ENTRY_OVERHEAD
    } else {
      if (e.type === 'dir') this.dirNodes.set(e.path, e.fileid)
      if (e.path === '') {
        if (!this.rootSent) {
          this.rootSent = true
          this.dirs.push({ name: '.', node: e.fileid, parent: e.fileid }, { name: '..', node: e.fileid, parent: e.fileid })
          this.bytes += 2 * ENTRY_OVERHEAD
        }
      } else {
        const parent = this.dirNodes.get(parentOf(e.path)) ?? this.dirNodes.get('') ?? 0n
        const name = baseOf(e.path)
        this.dirs.push({ name, node: e.fileid, parent })
        this.bytes += name.length + ENTRY_OVERHEAD
      }
      // A second name of a hard-linked file is one more dir entry for the same node.
      if (e.hardLinkOf === undefined) {
        this.nodes.push({ stat, node: e.fileid, fhInfo: e.offset })
        this.bytes += ENTRY_OVERHEAD
      }
    }
    if (this.files.length >= FH_BATCH_ENTRIES || this.dirs.length >= FH_BATCH_ENTRIES || this.nodes.length >= FH_BATCH_ENTRIES || this.bytes >= FH_BATCH_BYTES) {
      this.flush()
    }
  }

  /** Queues what is collected: dir entries before the nodes they name. */
  flush(): void {
    const batches: FhBatch[] = []
    if (this.files.length > 0) batches.push({ kind: 'file', files: this.files })
    if (this.dirs.length > 0) batches.push({ kind: 'dir', dirs: this.dirs })
    if (this.nodes.length > 0) batches.push({ kind: 'node', nodes: this.nodes })
    this.files = []
    this.dirs = []
    this.nodes = []
    this.bytes = 0
    for (const b of batches) {
      this.posts++
      this.pending = this.pending.then(() => this.send(b)).catch((err: unknown) => {
        this.failure ??= err
      })
    }
  }

  /** Resolves when every queued post went out; rejects with the first send failure. */
  async drain(): Promise<void> {
    await this.pending
    if (this.failure instanceof Error) throw this.failure
    if (this.failure !== null) throw new Error('file history post failed')
  }
}
