/*
 * The operations on a file's contents: READLINK, READ, WRITE, SETATTR (a size is a truncate) and
 * COMMIT. A WRITE allocates under the lock and hands its data blocks to the data phase
 * (EngineCore.change's `later`, data-flights.ts); READ and a truncate wait for the overlapping
 * ones first.
 */
import { VfsError } from '../../errors.ts'
import { checkSetAttr } from '../../set-attr-checks.ts'
import type { Attr, Caller, FileRef, ReadResult, SetAttr, Stability } from '../../types.ts'
import { blocksIn512, S_IFMT } from '../format/inode.ts'
import { applyAttrs, fileTypeOf, modeBitsOf } from './attr.ts'
import { PATH_MAX } from './engine-core.ts'
import type { EngineCore } from './engine-core.ts'
import { allocateData, blockSpan, MAX_IO, readData, readDataInto, truncateData, writeRuns } from './file-io.ts'
import { getattr } from './lookup-ops.ts'

export async function readlink(c: EngineCore, f: FileRef): Promise<Buffer> {
  return c.read(async () => {
    const { ino, inode } = await c.get(f, true)
    if ((inode.mode & S_IFMT) !== modeBitsOf('symlink')) throw new VfsError('EINVAL', 'not a symlink')
    if (inode.size > PATH_MAX) throw new VfsError('EIO', `symlink ${ino} claims ${inode.size} bytes`)
    // Fast when no block holds it, as ext4_inode_is_fast_symlink (an xattr block aside).
    const eaBlocks = inode.fileAcl !== 0 ? c.p.blockSize / 512 : 0
    if (blocksIn512(inode, c.p.blockSize) - eaBlocks === 0 && inode.size < 60) {
      return Buffer.from(inode.block.subarray(0, inode.size))
    }
    return readData(c.p, ino, inode, 0, inode.size)
  })
}

export async function read(c: EngineCore, f: FileRef, offset: bigint, count: number): Promise<ReadResult> {
  return c.read(async () => {
    const { ino, inode } = await c.getType(f, 'file', true)
    if (offset < 0n || count < 0) throw new VfsError('EINVAL')
    const off = offset > BigInt(inode.size) ? inode.size : Number(offset)
    const want = Math.max(0, Math.min(count, MAX_IO, inode.size - off))
    if (want > 0) {
      // The blocks a WRITE has mapped but not yet filled hold their old contents: wait for it.
      const span = blockSpan(c.p.blockSize, off, want)
      const busy = c.flights.settled(ino, span.first, span.last)
      if (busy !== undefined) await busy
    }
    const loan = c.bufs.take(want)
    let lent = false
    try {
      const data = await readDataInto(c.p, ino, inode, off, loan.buf.subarray(0, want))
      const reply: ReadResult = { data, eof: off + data.length >= inode.size, attr: c.attr(ino, inode) }
      // The pooled buffer goes to the socket by reference and comes back once the reply is sent.
      if (data.length > 0 && loan.release !== null) {
        reply.release = loan.release
        lent = true
      }
      return reply
    } finally {
      if (!lent) loan.release?.()
    }
  })
}

export async function setattr(c: EngineCore, f: FileRef, set: SetAttr): Promise<{ before: Attr; after: Attr }> {
  return c.change(async (h) => {
    const { ino, inode } = await c.get(f)
    checkSetAttr(fileTypeOf(inode.mode) ?? 'file', set)
    if (set.size !== undefined && set.size > c.p.maxFileSize) throw new VfsError('EFBIG')
    const before = c.attr(ino, inode)
    const now = c.now()
    if (set.size !== undefined) {
      const size = Number(set.size)
      if (size !== inode.size) {
        // A WRITE still filling a partial block would undo the zeroing of its tail.
        await c.flights.settled(ino)
        await truncateData(c.p, h, ino, inode, size)
        inode.mtime = now
        c.noteWrite(ino, h.tid)
      }
    }
    applyAttrs(inode, set, now)
    inode.ctime = now
    await c.p.inodes.write(h, ino, inode)
    return { before, after: c.attr(ino, inode) }
  })
}

export async function write(c: EngineCore, f: FileRef, offset: bigint, data: Buffer, stable: Stability, caller?: Caller): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
  const sync = stable !== 'unstable'
  const out = await c.change(async (h, later) => {
    h.caller = caller
    const { ino, inode } = await c.getType(f, 'file')
    if (offset < 0n) throw new VfsError('EINVAL')
    const before = c.attr(ino, inode)
    // A write of 0 bytes changes nothing, not even mtime (RFC 1813 §3.3.7).
    if (data.length === 0) return { count: 0, committed: stable, before, after: before }
    if (offset + BigInt(data.length) > c.p.maxFileSize) throw new VfsError('EFBIG')
    const off = Number(offset)
    const span = blockSpan(c.p.blockSize, off, data.length)
    // An earlier write into the same blocks finishes first (its read-modify-write of a partial
    // block, and the order of the two): rare, and it needs no lock to finish.
    const busy = c.flights.settled(ino, span.first, span.last)
    if (busy !== undefined) await busy
    // Under the lock: allocation, extents, size and times. The data blocks themselves are
    // written once the lock is released, with the handle still open, so the commit that makes
    // these extents durable waits for them (ordered mode) while other requests go on.
    const runs = await allocateData(c.p, h, ino, inode, off, data.length)
    const now = c.now()
    inode.size = Math.max(inode.size, off + data.length)
    inode.mtime = now
    inode.ctime = now
    await c.p.inodes.write(h, ino, inode)
    c.noteWrite(ino, h.tid)
    const after = c.attr(ino, inode)
    later(ino, span, () => writeRuns(c.p, runs, off, data))
    return { count: data.length, committed: stable, before, after }
  }, sync)
  if (out.count === 0) return out
  // Side-by-side WRITEs reply in the order their data lands, not the order they took the lock: a
  // reply that leaves after a later WRITE's must not carry the older size (a client keeps the
  // attributes it got last, and read a file 7 bytes short). So: the file's attributes as they are now.
  const ino = Number(f.id)
  const now = c.liveSlot(ino)
  return now === undefined || now.inode.generation !== f.gen ? out : { ...out, after: c.viewAttr(ino, now) }
}

/** The range does not matter: the file's last transaction and one device flush cover all of it. */
export async function commit(c: EngineCore, f: FileRef): Promise<{ before: Attr; after: Attr }> {
  const attr = await getattr(c, f)
  const ino = Number(f.id)
  const tid = c.lastWriteTid(ino)
  // Every WRITE changes the inode (mtime), so its data was on the device before its transaction
  // ended, and that transaction's commit flushes the device before its commit block: waiting for
  // the file's last transaction makes all its data and metadata durable.
  try {
    if (tid !== undefined) await c.p.txm.waitDurable(tid)
  } catch (err) {
    // An aborted journal (damage found, or a failing device): the data is not known durable.
    throw c.fail(err)
  }
  return { before: attr, after: attr }
}
