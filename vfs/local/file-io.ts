/*
 * READ, WRITE and COMMIT on a pinned regular file (RFC 1813 §3.3.6, 3.3.7,
 * 3.3.21) through the cached I/O fds. Durability: UNSTABLE stays in the
 * page cache; DATA_SYNC is fdatasync'd and FILE_SYNC fsync'd before the
 * reply; COMMIT fsyncs the whole file. An fsync error closes the fd (Linux
 * reports a writeback error once per open file: an fd kept open must not
 * look clean afterwards) and is EIO, so the server changes its write
 * verifier and clients resend. The handle index is flushed with every sync.
 */
import { VfsError } from '../errors.ts'
import type { Attr, ReadResult, Stability } from '../types.ts'
import { toAttr } from './attr.ts'
import type { HandleIndex } from './handle-index.ts'
import type { IoFiles } from './io-files.ts'
import type { ReadBuffers } from '../memory/read-buffers.ts'
import type { Pinned } from './resolver.ts'
import { MAX_FILE_SIZE } from './set-attr.ts'
import { fdatasync, fstatNow, fsync, pread, pwrite, pwriteNow, toVfsError } from './sys.ts'
import type { SyncGate } from './sync-gate.ts'

/** Larger reads are short (legal, RFC 1813 §3.3.6), so one request cannot make us allocate without bound. */
const MAX_READ = 16 * 1024 * 1024

export async function readFile(io: IoFiles, bufs: ReadBuffers, p: Pinned, offset: bigint, count: number): Promise<ReadResult> {
  if (offset < 0n || count < 0) throw new VfsError('EINVAL')
  const f = io.acquire(p, false)
  const want = Math.min(count, MAX_READ)
  const loan = bufs.take(want)
  let lent = false
  try {
    const buf = loan.buf.length > want ? loan.buf.subarray(0, want) : loan.buf
    let n = 0
    while (n < buf.length) {
      const got = await pread(f.fd, buf.subarray(n), offset + BigInt(n))
      if (got === 0) break
      n += got
    }
    const st = fstatNow(f.fd)
    // RFC 1813 §3.3.6: eof when the data returned reaches the end of the file.
    const reply: ReadResult = { data: buf.subarray(0, n), eof: offset + BigInt(n) >= st.size, attr: toAttr(st, p.gen, p.id) }
    if (n > 0 && loan.release !== null) {
      reply.release = loan.release
      lent = true
    }
    return reply
  } catch (err) {
    throw toVfsError(err)
  } finally {
    if (!lent) loan.release?.()
    io.release(f)
  }
}

/** Writes go to the page cache on the event loop while `gate` is open (sync-gate.ts), else through the thread pool. */
export async function writeFile(
  io: IoFiles,
  index: HandleIndex,
  gate: SyncGate,
  p: Pinned,
  offset: bigint,
  data: Buffer,
  stable: Stability,
): Promise<{ count: number; committed: Stability; before: Attr; after: Attr }> {
  if (offset < 0n) throw new VfsError('EINVAL')
  const before = toAttr(p.st, p.gen, p.id)
  // A write of 0 bytes changes nothing, not even mtime (RFC 1813 §3.3.7).
  if (data.length === 0) return { count: 0, committed: stable, before, after: before }
  if (offset + BigInt(data.length) > MAX_FILE_SIZE) throw new VfsError('EFBIG')
  const f = io.acquire(p, true)
  try {
    let n = 0
    while (n < data.length) {
      const rest = data.subarray(n)
      const at = offset + BigInt(n)
      n += gate.open ? gate.run(() => pwriteNow(f.fd, rest, at)) : await pwrite(f.fd, rest, at)
    }
    if (stable !== 'unstable') await sync(io, index, f.fd, p.id, stable === 'file_sync')
    return { count: n, committed: stable, before, after: toAttr(fstatNow(f.fd), p.gen, p.id) }
  } catch (err) {
    throw toVfsError(err)
  } finally {
    io.release(f)
  }
}

/** fsync of the whole file: the kernel flushes by inode, so the range does not matter. */
export async function commitFile(io: IoFiles, index: HandleIndex, p: Pinned): Promise<{ before: Attr; after: Attr }> {
  const f = io.acquire(p, false)
  try {
    await sync(io, index, f.fd, p.id, true)
    return { before: toAttr(p.st, p.gen, p.id), after: toAttr(fstatNow(f.fd), p.gen, p.id) }
  } catch (err) {
    throw toVfsError(err)
  } finally {
    io.release(f)
  }
}

async function sync(io: IoFiles, index: HandleIndex, fd: number, id: bigint, full: boolean): Promise<void> {
  // The index only speeds resolution up (a lost entry is found again by search): its failure fails no write.
  const indexed = index.flush().catch(() => undefined)
  try {
    await (full ? fsync(fd) : fdatasync(fd))
  } catch (err) {
    void io.drop(id)
    throw new VfsError('EIO', 'fsync failed', { cause: err })
  } finally {
    await indexed
  }
}
