/*
 * Compression around the tar stream (node:zlib): a sink that compresses before the real sink, and a
 * source that recognises a compressed stream and inflates it. gzip is known by its magic bytes
 * (RFC 1952 §2.3.1); brotli has none (RFC 7932), so it is known when the first block is not tar
 * and inflates as brotli to a tar header (sniffStreamStart).
 */
import { once } from 'node:events'
import zlib from 'node:zlib'
import type { Transform } from 'node:stream'
import type { ByteSink, ByteSource } from './types.ts'
import { BackupFormatError } from './types.ts'
import { BLOCK, decodeHeader, isZeroBlock } from './tar/header.ts'

export type Compression = 'gzip' | 'brotli'

export interface ClosableSink extends ByteSink {
  /** Flushes the compressor's tail into the real sink. */
  end(): Promise<void>
}

/** Throws what the compressor's pump met (it fails asynchronously, between our awaits). */
function rethrow(state: { failed: Error | null }): void {
  if (state.failed !== null) throw state.failed
}

/** A sink that compresses into `out`, keeping its backpressure: write() waits while `out` is slow. */
export function compressingSink(out: ByteSink, how: Compression): ClosableSink {
  const z: Transform =
    how === 'gzip'
      ? zlib.createGzip({ level: 6, chunkSize: 256 * 1024 })
      : zlib.createBrotliCompress({ chunkSize: 256 * 1024, params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } })
  const state: { failed: Error | null } = { failed: null }
  const pump = (async () => {
    for await (const chunk of z) await out.write(chunk as Buffer)
  })().catch((err: unknown) => {
    state.failed = err instanceof Error ? err : new Error(String(err))
    z.destroy()
  })
  return {
    async write(chunk: Buffer): Promise<void> {
      if (state.failed !== null) throw state.failed
      if (!z.write(chunk)) await Promise.race([once(z, 'drain'), pump])
      rethrow(state)
    },
    async end(): Promise<void> {
      z.end()
      await pump
      rethrow(state)
    },
  }
}

/** Counts what passes so the caller knows the compressed size. */
export function countingSink(out: ByteSink): ByteSink & { bytes: bigint } {
  const s = {
    bytes: 0n,
    async write(chunk: Buffer): Promise<void> {
      s.bytes += BigInt(chunk.length)
      await out.write(chunk)
    },
  }
  return s
}

/** A source that first hands out `head`, then the rest of `src`. */
export function replay(head: Buffer, src: ByteSource): ByteSource {
  let first: Buffer | null = head.length > 0 ? head : null
  return {
    async read(max: number): Promise<Buffer | null> {
      if (first !== null) {
        const b = first.subarray(0, max)
        first = first.length > max ? first.subarray(max) : null
        return b
      }
      return src.read(max)
    },
  }
}

function inflating(src: ByteSource, how: Compression, name: string): ByteSource {
  const z: Transform = how === 'gzip' ? zlib.createGunzip() : zlib.createBrotliDecompress()
  let inBytes = 0n
  const state: { failed: Error | null } = { failed: null }
  const feed = (async () => {
    for (;;) {
      const b = await src.read(256 * 1024)
      if (b === null) break
      inBytes += BigInt(b.length)
      if (!z.write(b)) await once(z, 'drain')
    }
    z.end()
  })().catch((err: unknown) => {
    state.failed = err instanceof Error ? err : new Error(String(err))
    z.destroy(state.failed)
  })
  void feed
  const it = z[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  let rest: Buffer | null = null
  return {
    async read(max: number): Promise<Buffer | null> {
      if (rest === null) {
        let r: IteratorResult<Buffer>
        try {
          r = await it.next()
        } catch (err) {
          if (state.failed !== null) throw state.failed
          const msg = err instanceof Error ? err.message : String(err)
          throw new BackupFormatError(name, inBytes, `${how} stream is corrupt: ${msg} (offset is of the compressed input read so far)`)
        }
        if (r.done === true) return null
        rest = r.value
      }
      const b = rest.subarray(0, max)
      rest = rest.length > max ? rest.subarray(max) : null
      return b
    },
  }
}

/**
 * The first plain bytes a brotli stream yields from `head` alone (flushed, not finished: the rest
 * of the stream is not there), at most about a block more than one block; null: `head` is not the
 * start of a brotli stream (the decoder refused it).
 */
function brotliStart(head: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const z = zlib.createBrotliDecompress()
    const out: Buffer[] = []
    let have = 0
    let settled = false
    const done = (r: Buffer | null): void => {
      if (settled) return
      settled = true
      z.destroy()
      resolve(r)
    }
    z.on('data', (b: Buffer) => {
      out.push(b)
      have += b.length
      // Enough to judge: a few compressed bytes may stand for gigabytes of zeros.
      if (have >= BLOCK) done(Buffer.concat(out))
    })
    z.on('error', () => {
      done(null)
    })
    z.write(head)
    z.flush(zlib.constants.BROTLI_OPERATION_FLUSH, () => {
      done(Buffer.concat(out))
    })
  })
}

/** End of the ustar magic "ustar" (POSIX.1-2001 ustar header, offset 257). */
const USTAR_MAGIC_END = 262

/** What the first block of a stream says it is (sniffStreamStart). */
export type StreamStart = 'tar' | Compression | 'unknown'

/**
 * Judges a backup stream by its first block alone, for a reader that must decide before reading
 * on (a direct access restore, which would otherwise seek by the plain stream's offsets):
 * - 'gzip': the gzip magic 1f 8b (RFC 1952 §2.3.1);
 * - 'tar': a tar header or a zero block (a plain stream, or an empty one);
 * - 'brotli': the block is not tar, and a brotli decoder takes it as the start of a stream and
 *   yields a tar header from it (or, from a stored meta-block, all of it but the last bytes,
 *   magic included). brotli has no magic (RFC 7932 §9.1 starts with the window size), so this is
 *   the only test there is; a random block is refused by the decoder or yields no such header;
 * - 'unknown': none of these (a damaged first block, another format).
 */
export async function sniffStreamStart(head: Buffer): Promise<StreamStart> {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= BLOCK && (isZeroBlock(head.subarray(0, BLOCK)) || decodeHeader(head.subarray(0, BLOCK)).ok)) return 'tar'
  const plain = await brotliStart(head)
  if (plain === null) return 'unknown'
  if (plain.length >= BLOCK) return decodeHeader(plain.subarray(0, BLOCK)).ok ? 'brotli' : 'unknown'
  // A stored (uncompressed) meta-block gives back a few bytes fewer than it takes (RFC 7932
  // §9.2: its header is in the block): the ustar magic at 257 is then what says tar.
  return plain.length >= USTAR_MAGIC_END && plain.toString('ascii', 257, USTAR_MAGIC_END) === 'ustar' ? 'brotli' : 'unknown'
}

/**
 * Reads the start of `src` and returns a source of plain tar bytes, inflating gzip or brotli
 * (sniffStreamStart). A first block that is none of tar, gzip or brotli is read as tar: the reader
 * then names the bad header and its offset, where inflating it as brotli named a decoder failure
 * further on.
 */
export async function detectCompression(src: ByteSource, name: string): Promise<{ source: ByteSource; compression: Compression | null }> {
  const parts: Buffer[] = []
  let have = 0
  while (have < BLOCK) {
    const b = await src.read(BLOCK - have)
    if (b === null) break
    parts.push(b)
    have += b.length
  }
  const head = Buffer.concat(parts)
  const source = replay(head, src)
  const kind = await sniffStreamStart(head)
  if (kind === 'gzip' || kind === 'brotli') return { source: inflating(source, kind, name), compression: kind }
  return { source, compression: null }
}
