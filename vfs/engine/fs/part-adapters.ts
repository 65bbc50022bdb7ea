/*
 * The real parts behind fs/parts.ts: the inode table, extent trees and directory code as the
 * namespace layer asks for them. Reads (lookups, listings) go through a read-only view of the
 * transaction manager's cache, so they see every change made so far, committed or not, and never
 * the stale home copy of a block still waiting in the journal.
 */
import { VfsError } from '../../errors.ts'
import type { Ext4Allocator } from '../alloc/ext4-allocator.ts'
import type { DirFile } from '../dir/dir-file.ts'
import type { Directories } from '../dir/dir-ops.ts'
import { composeLeaf, setDxCsum, setLeafCsum } from '../dir/dir-block.ts'
import { mapInRoot } from '../extent/root-map.ts'
import type { ExtentTree } from '../extent/tree.ts'
import { corrupt } from '../format/errors.ts'
import { DIR_TAIL_FT, DIR_TAIL_SIZE, FT, parseDirBlock, recLenFromDisk } from '../format/dirent.ts'
import { effectiveHashVersion } from '../format/dx-hash.ts'
import { INODE_FLAGS } from '../format/inode.ts'
import type { Inode } from '../format/inode.ts'
import type { InodeTable } from '../inode/inode-table.ts'
import { newInode } from '../inode/new-inode.ts'
import { DX_ROOT_COUNT_OFFSET, hashName } from '../reader/htree-lookup.ts'
import { hash2pos, HTREE_EOF_64BIT, htreeListPage } from '../reader/htree-readdir.ts'
import { TxnError } from '../txn/txn.ts'
import type { MetaTxn, TxnManager } from '../txn/txn.ts'
import type { Verifier } from '../reader/verify.ts'
import type { DirIndex, FileMap, InodeStore, ListedEntry, Run } from './parts.ts'

const DOTDOT = Buffer.from('..')
/** '..' is the second record of a directory's first block, right after the 12-byte '.'. */
const DOTDOT_OFFSET = 12

/** A handle that can only read: lookups and listings through the manager's cache. */
export function readView(txm: TxnManager): MetaTxn {
  const no = (): never => {
    throw new TxnError('TXN_NOT_HELD', 'a read-only view cannot change blocks')
  }
  return { tid: 0, get: (b) => txm.read(b), fresh: no, dirty: no, revoke: no, afterCommit: no }
}

export function inodeStoreOf(table: InodeTable, inodeSize: number): InodeStore {
  // New inodes go to a slot that may hold anything: their first write zeroes the record.
  const fresh = new WeakSet<Inode>()
  return {
    read: (ino) => table.get(ino),
    peek: (ino) => table.peek(ino),
    cachedSlot: (ino) => table.cachedSlot(ino),
    slot: (ino) => table.slot(ino),
    prefetch: (inos) => table.prefetch(inos),
    write: async (h, ino, inode) => {
      await table.put(h, ino, inode, fresh.delete(inode))
    },
    fresh: (_ino, mode, owner, now) => {
      const inode = newInode({ mode, uid: owner.uid, gid: owner.gid, now: { sec: now.sec, nsec: now.nsec } }, inodeSize)
      fresh.add(inode)
      return Promise.resolve(inode)
    },
  }
}

/**
 * The extent code keeps its place in shared decoded nodes, so walks of one inode's tree must not
 * interleave. Writers already run alone; concurrent readers of one file or directory take turns
 * here (readers of different inodes do not wait for each other).
 */
export function perInodeTurns(): <T>(ino: number, fn: () => Promise<T>) => Promise<T> {
  const walking = new Map<number, Promise<unknown>>()
  return <T>(ino: number, fn: () => Promise<T>): Promise<T> => {
    const run = (walking.get(ino) ?? Promise.resolve()).then(fn, fn)
    const tail = run.catch(() => undefined)
    walking.set(ino, tail)
    void tail.then(() => {
      if (walking.get(ino) === tail) walking.delete(ino)
    })
    return run
  }
}

export type Turns = ReturnType<typeof perInodeTurns>

export function fileMapOf(txm: TxnManager, tree: ExtentTree, alloc: Ext4Allocator, oneAtATime: Turns): FileMap {
  const ro = readView(txm)
  return {
    map: (ino, inode, lblk, count) => oneAtATime(ino, async () => {
      const runs: Run[] = []
      const end = lblk + count
      for (let pos = lblk; pos < end; ) {
        const m = await tree.lookup(ro, ino, inode, pos)
        if (m.extent !== undefined) {
          const e = m.extent
          const len = Math.min(end, e.block + e.len) - pos
          // An unwritten extent reads as zeros: a hole to the reader.
          runs.push({ lblk: pos, pblk: e.uninit ? 0 : e.start + (pos - e.block), len })
          pos += len
        } else {
          const len = Math.min(end, m.holeEnd) - pos
          runs.push({ lblk: pos, pblk: 0, len })
          pos += len
        }
      }
      return runs
    }),
    async allocate(h, ino, inode, lblk, count) {
      const goal = alloc.goalForInode(ino, true)
      let runs = await tree.mapOrAllocate(h, ino, inode, lblk, count, goal)
      if (runs.some((r) => r.uninit)) {
        // Writing into preallocated (unwritten) space: trade it for written blocks, whose unwritten
        // remainder the write fills with zeros (what the unwritten extent read as).
        for (const r of runs.filter((x) => x.uninit)) await tree.punch(h, ino, inode, r.lblk, r.count)
        runs = await tree.mapOrAllocate(h, ino, inode, lblk, count, goal)
      }
      return runs.map((r) => ({ lblk: r.lblk, pblk: r.start, len: r.count, fresh: r.fresh }))
    },
    truncate: (h, ino, inode, fromLblk) => tree.truncate(h, ino, inode, fromLblk),
  }
}

/**
 * A handle whose reads check each directory block's checksum the first time the cache hands that
 * buffer out (after that only we change it, and we keep its checksum right); blocks it creates are
 * ours from the start. A class rather than an object of closures: one is made per directory call.
 */
class CheckedTxn implements MetaTxn {
  readonly raw: MetaTxn
  readonly ino: number
  readonly generation: number
  readonly verified: WeakSet<Buffer>
  readonly verifier: Verifier
  readonly bs: number

  constructor(raw: MetaTxn, ino: number, generation: number, verified: WeakSet<Buffer>, verifier: Verifier, bs: number) {
    this.raw = raw
    this.ino = ino
    this.generation = generation
    this.verified = verified
    this.verifier = verifier
    this.bs = bs
  }

  get tid(): number {
    return this.raw.tid
  }

  async get(block: number): Promise<Buffer> {
    const buf = await this.raw.get(block)
    if (!this.verified.has(buf)) {
      this.verifier.verify(!isDxShaped(buf, this.bs) && hasDirTail(buf, this.bs) ? 'dir-block' : 'dx-block', buf, { block, ino: this.ino, generation: this.generation })
      this.verified.add(buf)
    }
    return buf
  }

  fresh(block: number): Buffer {
    const buf = this.raw.fresh(block)
    this.verified.add(buf)
    return buf
  }

  dirty(block: number): void {
    this.raw.dirty(block)
  }

  revoke(block: number): void {
    this.raw.revoke(block)
  }

  afterCommit(fn: () => void): void {
    this.raw.afterCommit(fn)
  }
}

/** The handle under a checked view, for the extent lookups that must not be checked as directory blocks. */
function rawOf(h: MetaTxn): MetaTxn {
  return h instanceof CheckedTxn ? h.raw : h
}

export function dirIndexOf(txm: TxnManager, dirs: Directories, tree: ExtentTree, alloc: Ext4Allocator, oneAtATime: Turns, verifier: Verifier): DirIndex {
  const fs = dirs.fs
  const bs = fs.blockSize
  const ro = readView(txm)
  const verified = new WeakSet<Buffer>()
  const checked = (h: MetaTxn, ino: number, generation: number): CheckedTxn => new CheckedTxn(h, ino, generation, verified, verifier, bs)

  const fileOf = (ino: number, inode: Inode): DirFile => ({
    ino,
    generation: inode.generation,
    blockCount: () => Math.ceil(inode.size / bs),
    async physical(h, lblk) {
      // Most directories keep their few extents in i_block: read there, no walk and no turn.
      const inRoot = mapInRoot(inode, lblk)
      if (inRoot !== undefined) return inRoot
      const raw = rawOf(h)
      const m = await oneAtATime(ino, () => tree.lookup(raw, ino, inode, lblk))
      if (m.extent === undefined || m.extent.uninit) throw corrupt(`directory ${ino} has a hole at block ${lblk}`)
      return m.extent.start + (lblk - m.extent.block)
    },
    async append(h) {
      const lblk = Math.ceil(inode.size / bs)
      const raw = rawOf(h)
      const [run] = await tree.mapOrAllocate(raw, ino, inode, lblk, 1, alloc.goalForInode(ino, false))
      if (run === undefined) throw new VfsError('ENOSPC')
      inode.size = (lblk + 1) * bs
      return { lblk, pblk: run.start }
    },
    isIndexed: () => (inode.flags & INODE_FLAGS.INDEX) !== 0,
    setIndexed: () => {
      inode.flags |= INODE_FLAGS.INDEX
      return Promise.resolve()
    },
  })

  const firstBlock = async (h: MetaTxn, ino: number, inode: Inode): Promise<{ pblk: number; buf: Buffer }> => {
    const pblk = await fileOf(ino, inode).physical(h, 0)
    return { pblk, buf: await checked(h, ino, inode.generation).get(pblk) }
  }

  /** Every entry of a directory without an index, in hash order as ext4 lists a small directory. */
  const linearList = async (ino: number, inode: Inode, cookie: bigint, max: number): Promise<{ entries: ListedEntry[]; eof: boolean }> => {
    const dir = fileOf(ino, inode)
    const version = effectiveHashVersion(fs.defHashVersion, fs.sbFlags)
    const view = checked(ro, ino, inode.generation)
    const dx = dirs.dxDir(view, dir)
    const all: Array<ListedEntry & { pos: bigint }> = []
    for (let lblk = 0; lblk < dir.blockCount(); lblk++) {
      const buf = await view.get(await dir.physical(view, lblk))
      for (const e of parseDirBlock(buf, bs, `directory ${ino} block ${lblk}`).entries) {
        const dot = e.name.length === 1 && e.name[0] === 0x2e
        const dotdot = e.name.length === 2 && e.name[0] === 0x2e && e.name[1] === 0x2e
        // '.' and '..' at hashes 0 and 2, as ext4 places them.
        const pos = dot ? hash2pos(0, 0) : dotdot ? hash2pos(2, 0) : (() => {
          const h = hashName(dx, version, e.name)
          return hash2pos(h.major, h.minor)
        })()
        if (pos >= cookie) all.push({ name: e.name, ino: e.inode, fileType: e.fileType, cookie: 0n, pos })
      }
    }
    all.sort((a, b) => (a.pos < b.pos ? -1 : a.pos > b.pos ? 1 : 0))
    let cut = Math.min(max, all.length)
    // Entries at one position go out together: a resume could not tell them apart.
    while (cut > 0 && cut < all.length && all[cut - 1]?.pos === all[cut]?.pos) cut--
    if (cut === 0) {
      const p = all[0]?.pos
      cut = all.findIndex((g) => g.pos !== p)
      if (cut < 0) cut = all.length
    }
    const entries = all.slice(0, cut).map((e, i) => ({ name: e.name, ino: e.ino, fileType: e.fileType, cookie: all[i + 1]?.pos ?? HTREE_EOF_64BIT }))
    return { entries, eof: cut === all.length }
  }

  return {
    async find(dirIno, dir, name) {
      if (name.equals(DOTDOT)) {
        const { buf } = await firstBlock(ro, dirIno, dir)
        const parent = buf.readUInt32LE(DOTDOT_OFFSET)
        if (parent === 0) throw corrupt(`directory ${dirIno} has no ..`)
        return { ino: parent, fileType: FT.DIR }
      }
      const e = await dirs.find(checked(ro, dirIno, dir.generation), fileOf(dirIno, dir), name)
      return e === undefined ? undefined : { ino: e.inode, fileType: e.fileType }
    },
    add: (h, dirIno, dir, name, ino, fileType) => dirs.addEntry(checked(h, dirIno, dir.generation), fileOf(dirIno, dir), name, ino, fileType),
    async remove(h, dirIno, dir, name) {
      await dirs.removeEntry(checked(h, dirIno, dir.generation), fileOf(dirIno, dir), name)
    },
    async init(h, dirIno, dir, parentIno) {
      const [run] = await tree.mapOrAllocate(h, dirIno, dir, 0, 1, alloc.goalForInode(dirIno, false))
      if (run === undefined) throw new VfsError('ENOSPC')
      const buf = h.fresh(run.start)
      composeLeaf(buf, fs, [
        { inode: dirIno, fileType: FT.DIR, name: Buffer.from('.') },
        { inode: parentIno, fileType: FT.DIR, name: DOTDOT },
      ])
      dir.size = bs
      setLeafCsum(buf, fs, dirIno, dir.generation)
      h.dirty(run.start)
    },
    async setParent(h, dirIno, dir, parentIno) {
      const { pblk, buf } = await firstBlock(h, dirIno, dir)
      buf.writeUInt32LE(parentIno, DOTDOT_OFFSET)
      if ((dir.flags & INODE_FLAGS.INDEX) !== 0 && fs.dirIndex) setDxCsum(buf, fs, dirIno, dir.generation, DX_ROOT_COUNT_OFFSET)
      else setLeafCsum(buf, fs, dirIno, dir.generation)
      h.dirty(pblk)
    },
    async isEmpty(dirIno, dir) {
      const page = await this.list(dirIno, dir, 0n, 3)
      return page.entries.every((e) => e.name.equals(DOTDOT) || (e.name.length === 1 && e.name[0] === 0x2e))
    },
    async list(dirIno, dir, cookie, max) {
      if ((dir.flags & INODE_FLAGS.INDEX) !== 0 && fs.dirIndex) {
        return htreeListPage(dirs.dxDir(checked(ro, dirIno, dir.generation), fileOf(dirIno, dir)), cookie, max)
      }
      return linearList(dirIno, dir, cookie, max)
    },
  }
}

/**
 * An htree root ('.' of 12 bytes, then '..' spanning the rest) or interior node (one empty record
 * spanning the block). Asked before hasDirTail: a root the kernel made from a linear block can keep
 * the old leaf's tail bytes inside '..''s record, where they look like a dirent tail.
 */
function isDxShaped(buf: Buffer, bs: number): boolean {
  if (buf.readUInt32LE(0) === 0 && recLenFromDisk(buf.readUInt16LE(4), bs) === bs) return true
  return recLenFromDisk(buf.readUInt16LE(4), bs) === 12 && buf[6] === 1 && buf[8] === 0x2e && recLenFromDisk(buf.readUInt16LE(12 + 4), bs) === bs - 12
}

/** A leaf ends in the 12-byte checksum entry (inode 0, rec_len 12, type 0xde); an htree block does not. */
function hasDirTail(buf: Buffer, bs: number): boolean {
  const t = bs - DIR_TAIL_SIZE
  return buf.readUInt32LE(t) === 0 && buf.readUInt16LE(t + 4) === DIR_TAIL_SIZE && buf[t + 6] === 0 && buf[t + 7] === DIR_TAIL_FT
}
