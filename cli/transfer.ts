/*
 * One file's bytes between a local file and an export, block by block, as
 * fast as the pair allows: up a local read goes straight into a buffer of
 * the client's pool (sent as it is, several WRITEs in flight, the buffer
 * back in the pool at its reply, one COMMIT at the end); down the READs run ahead of the local writes (NfsFile.readTo:
 * a window that opens only as far as the writes have to wait for them), each block written from the buffer its READ was received into,
 * which then goes back to the pool; between two exports each received block
 * is the WRITE's data, back in the source's pool once committed (between).
 * So no block is copied in user space and the same few megabytes serve the
 * whole copy. Anything else (local to local) goes through the sides' streams.
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import type { NfsFile } from '../client/index.ts'
import { BlockPrefetch } from '../client/readahead.ts'
import { messageOf, PathError } from './common.ts'
import type { Progress } from './progress.ts'
import type { Side } from './sides.ts'

export async function copyData(from: Side, src: string, to: Side, dst: string, mode: number, progress: Progress): Promise<void> {
  if (from.open !== undefined && to.open === undefined && to.local === true) {
    await download(await from.open(src, 'r'), dst, mode, progress, from.show(src))
    return
  }
  if (from.local === true && to.open !== undefined) {
    await upload(src, await to.open(dst, 'w', mode), progress)
    return
  }
  if (from.open !== undefined && to.open !== undefined) {
    const f = await from.open(src, 'r')
    await between(f, await to.open(dst, 'w', mode).catch(async (err: unknown) => {
      await f.close()
      throw err
    }), progress)
    return
  }
  await pipeline(from.read(src), progress.counter(), to.write(dst, mode))
}

/**
 * A local file into an open NfsFile (closed here). The file can be read
 * again, so no block is held for the COMMIT: each goes back to the pool at
 * its WRITE's reply, one COMMIT ends the copy, and whatever its verifier
 * does not cover is read again and re-sent (NfsFile.writeFrom).
 */
export async function upload(src: string, f: NfsFile, progress: Progress): Promise<void> {
  let fd: FileHandle | null = null
  try {
    const local = await open(src, 'r')
    fd = local
    await f.writeFrom(async (buf, pos) => (await local.read(buf, 0, buf.length, pos)).bytesRead, n => {
      progress.add(n)
    })
  } catch (err) {
    await f.close().catch(() => undefined)
    throw err
  } finally {
    await fd?.close()
  }
  await f.close()
}

/**
 * An open NfsFile into a local file (created or truncated; both closed
 * here; `source`: how the source is named when reading it fails), through NfsFile.readTo: several READs out, each reply written from
 * the buffer it was received into. The local writes are synchronous, on this thread: the READs keep
 * arriving into the socket's buffers meanwhile, and the blocks are written
 * from the thread that received them. Through the thread pool instead, the
 * same copy spent several times the system time on this kind of machine
 * (256 MiB: 0.13-0.23 s against 0.23-0.89 s, bench/README.md).
 */
export async function download(f: NfsFile, dst: string, mode: number, progress: Progress, source?: string): Promise<void> {
  let fd: number | null = null
  // The local file's own failures (a full disk) are the destination's; anything else came of reading the source.
  let sinkFailure: unknown = undefined
  try {
    const out = openSync(dst, 'w', mode)
    fd = out
    await f.readTo((buf, pos) => {
      try {
        writeAll(out, buf, pos)
      } catch (err) {
        sinkFailure = err
        throw err
      }
    }, n => {
      progress.add(n)
    })
  } catch (err) {
    // As cp says "error reading SRC": a READ that failed is the source's error, not the file being written.
    if (source !== undefined && fd !== null && err !== sinkFailure) throw new PathError(source, messageOf(err))
    throw err
  } finally {
    if (fd !== null) closeSync(fd)
    await f.close()
  }
}

/**
 * Every block of f in order, to `sink` (pooled: a block of f's pool, to give back with
 * f.release once used): read ahead while the size holds, then on until the end, as cat does,
 * since the file may have grown since it was opened.
 */
async function eachBlock(f: NfsFile, progress: Progress, sink: (buf: Buffer, pos: number, pooled: boolean) => unknown): Promise<void> {
  const bs = f.blockSize
  const blocks = new BlockPrefetch(f, 0, Math.ceil(f.localSize / bs), f.readaheadBlocks)
  let pos = 0
  for (;;) {
    const block = blocks.take()
    if (block === null) break
    const buf = await block
    const n = buf.length
    await sink(buf, pos, true)
    pos += n
    progress.add(n)
    // Short: the end of the file came sooner than its size said (truncated meanwhile).
    if (n < bs) {
      blocks.stop()
      break
    }
  }
  for (;;) {
    const buf = await f.read(bs, pos)
    if (buf.length === 0) break
    await sink(buf, pos, false)
    pos += buf.length
    progress.add(buf.length)
  }
}

/**
 * One export's file into another's (two mounts, or one): each block the
 * READs received is handed to the destination as it is and goes back to
 * the source's pool once the destination has committed it. Through streams
 * every block was a fresh slab of the source's pool (the destination could
 * not give it back): 256 MiB between two mounts of one server took 1.0-1.3 s
 * of CPU and 256 fresh slabs, against 0.40-0.47 s and 45-52 slabs this way.
 * Both files are closed here; the destination's close flushes and commits.
 */
export async function between(f: NfsFile, g: NfsFile, progress: Progress): Promise<void> {
  try {
    await eachBlock(f, progress, (buf, pos, pooled) => pooled ? g.write(buf, pos, { transfer: true, release: () => { f.release(buf) } }) : g.write(buf, pos))
  } catch (err) {
    await g.close().catch(() => undefined)
    throw err
  } finally {
    await f.close()
  }
  // Flush and COMMIT; a deferred write error surfaces here.
  await g.close()
}

function writeAll(fd: number, buf: Buffer, pos: number): void {
  for (let done = 0; done < buf.length; ) done += writeSync(fd, buf, done, buf.length - done, pos + done)
}
