/*
 * The state the passes share, sized by the image's own (validated) counts:
 * bit maps of blocks and inodes, one byte of file type and four bytes of
 * counted links per inode, and a small record per directory. Inode tables
 * are streamed; nothing here grows with file data.
 */
import type { GroupDesc } from '../format/group-desc.ts'
import type { Ext4Image } from '../reader/image.ts'
import type { Verifier } from '../reader/verify.ts'
import { BitSet } from './bitset.ts'
import type { EaInodeFacts } from './ea-inode.ts'
import type { JournalFacts } from './journal-check.ts'
import type { FsckPass, Reporter } from './problems.ts'
import type { XattrUse } from './xattr-check.ts'

/** A directory as pass 1 saw it; pass 2 reads its blocks from extents. */
export interface DirInfo {
  generation: number
  flags: number
  size: number
  /** Initialised extents in logical order: [logical, physical, length]. */
  extents: Array<[number, number, number]>
  /** The inode of '..', once pass 2 has read it (0: none). */
  dotdot: number
  /** The directory holding the entry that names this one (0: none found). */
  parent: number
}

/** Runs of multiply-claimed blocks remembered for the clone repair (a wrecked image may have millions). */
export const MAX_DUP_RUNS = 1 << 16

export class FsckContext {
  readonly img: Ext4Image
  readonly report: Reporter
  /** Checks metadata checksums (NO_VERIFY without metadata_csum); throws FormatError on a mismatch. */
  readonly verifier: Verifier
  readonly csum: boolean
  /** Blocks in use as computed (metadata and every inode's blocks). */
  readonly blocks: BitSet
  /** Inodes in use as computed (reserved inodes, inodes with links, orphans). */
  readonly inodes: BitSet
  /** Inodes on the orphan chain: in use with no links, waiting to be released at mount. */
  readonly orphans = new Set<number>()
  /** S_IFMT >> 12 of each inode in use (0: unused). */
  readonly types: Uint8Array
  /** i_links_count of each inode in use. */
  readonly linksCount: Uint16Array
  /** Directory entries (with '.' and '..') naming each inode. */
  readonly refs: Uint32Array
  readonly dirs = new Map<number, DirInfo>()
  /** Every group descriptor, decoded in pass 1. */
  groups: GroupDesc[] = []
  /** The metadata-only block map, for groups whose bitmap is BLOCK_UNINIT (pass 5). */
  metaBlocks: BitSet | undefined
  /** The inode root's 'lost+found' entry names (0: none), found in pass 2. */
  lostFound = 0
  /** Where the journal's superblock lives, when its inode is usable (set by the journal check). */
  journal: JournalFacts | undefined
  /** Each extended attribute block named by an inode in use (several may share one), claimed once (xattr-check.ts). */
  readonly xattr = new Map<number, XattrUse>()
  /** Users remembered in xattr, against MAX_XATTR_USERS. */
  xattrUsers = 0
  /** Entries naming each value inode (ea_inode): one per inode body or attribute block (ea-inode.ts). */
  readonly eaRefs = new Map<number, number>()
  /** Inodes in use with EA_INODE_FL, as pass 1 read them (pass 4 judges their count). */
  readonly eaInodes = new Map<number, EaInodeFacts>()
  /**
   * Per inode, the runs [first, count] of blocks it claimed that something claimed before it
   * (pass 1B's list, for the clone repair); at most MAX_DUP_RUNS runs in all.
   */
  readonly dupRuns = new Map<number, Array<[number, number]>>()
  #dupRunCount = 0

  constructor(img: Ext4Image, report: Reporter, verifier: Verifier, csum: boolean) {
    this.img = img
    this.report = report
    this.verifier = verifier
    this.csum = csum
    this.blocks = new BitSet(img.blocksCount)
    this.inodes = new BitSet(img.sb.inodesCount + 1)
    this.types = new Uint8Array(img.sb.inodesCount + 1)
    this.linksCount = new Uint16Array(img.sb.inodesCount + 1)
    this.refs = new Uint32Array(img.sb.inodesCount + 1)
  }

  /**
   * Mark count blocks from first as used by owner; a block already in use is
   * multiply claimed (reported once per run). 'outside' when the range
   * leaves the file system, and then nothing is marked.
   */
  claim(pass: FsckPass, first: number, count: number, owner: string, ino?: number): 'ok' | 'outside' | 'dup' {
    const where = ino === undefined ? {} : { ino }
    if (!Number.isSafeInteger(first) || first < this.img.sb.firstDataBlock || count < 1 || first + count > this.img.blocksCount) {
      this.report.add(pass, 'BLOCK_OUT_OF_RANGE', `${owner}: blocks ${first}+${count} outside the file system (${this.img.sb.firstDataBlock}..${this.img.blocksCount - 1})`, { ...where, block: first })
      return 'outside'
    }
    let dupFirst = -1
    let dups = 0
    let runs: Array<[number, number]> | undefined
    for (let b = first; b < first + count; b++) {
      if (this.blocks.testAndSet(b)) {
        if (dupFirst < 0) dupFirst = b
        dups++
        if (ino !== undefined && this.#dupRunCount < MAX_DUP_RUNS) {
          runs ??= this.dupRuns.get(ino) ?? []
          const last = runs[runs.length - 1]
          if (last !== undefined && last[0] + last[1] === b) last[1]++
          else {
            runs.push([b, 1])
            this.#dupRunCount++
          }
        }
      }
    }
    if (runs !== undefined && ino !== undefined) this.dupRuns.set(ino, runs)
    if (dups === 0) return 'ok'
    this.report.add(1, 'BLOCK_MULTIPLY_CLAIMED', `${owner}: ${dups} block${dups > 1 ? 's' : ''} from ${dupFirst} already in use (multiply-claimed)`, { ...where, block: dupFirst })
    return 'dup'
  }

  /** Run a verifier check; a mismatch becomes a problem instead of an exception. False on mismatch. */
  verify(pass: FsckPass, code: string, kind: Parameters<Verifier['verify']>[0], bytes: Buffer, ctx: Parameters<Verifier['verify']>[2]): boolean {
    try {
      this.verifier.verify(kind, bytes, ctx)
      return true
    } catch (err) {
      const where: { ino?: number; block?: number } = { block: ctx.block }
      if (ctx.ino !== undefined) where.ino = ctx.ino
      this.report.add(pass, code, err instanceof Error ? err.message : String(err), where)
      return false
    }
  }
}
