/*
 * Verify by restore (issue 16 §7): a backup restored into a scratch directory, then every restored
 * file hashed and compared with the SHA-256 the stream's index recorded when the file was read for
 * the backup. Unlike verify.ts (which hashes the stream's bytes), this proves the restore path
 * itself: tar reader, sparse holes, names, the host file system under the scratch directory.
 */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { detectCompression } from './compress.ts'
import { decodeIndexPart } from './index-record.ts'
import type { IndexRow } from './index-record.ts'
import { TarReader } from './tar/reader.ts'
import type { ByteSource } from './types.ts'

/** The index a stream carries (its files' recorded SHA-256), read by walking its headers; null: the stream has none. */
export async function streamIndex(source: ByteSource, sourceName: string, signal?: AbortSignal): Promise<IndexRow[] | null> {
  const { source: plain } = await detectCompression(source, sourceName)
  const reader = new TarReader(plain, sourceName)
  for (;;) {
    signal?.throwIfAborted()
    if ((await reader.next()) === null) break
  }
  let rows: IndexRow[] | null = null
  for (const c of reader.comments) {
    const part = decodeIndexPart(c)
    if (part !== null) rows = [...(rows ?? []), ...part]
  }
  return rows
}

export interface RestoredCheck {
  files: number
  bytes: bigint
  mismatches: Array<{ path: string; offset: bigint; size: bigint }>
  missing: string[]
}

const CHUNK = 1024 * 1024

async function hashFile(path: string): Promise<{ sha256: string; size: bigint }> {
  const fh = await open(path, 'r')
  try {
    const h = createHash('sha256')
    const buf = Buffer.allocUnsafe(CHUNK)
    let size = 0n
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null)
      if (bytesRead === 0) break
      h.update(buf.subarray(0, bytesRead))
      size += BigInt(bytesRead)
    }
    return { sha256: h.digest('hex'), size }
  } finally {
    await fh.close()
  }
}

/** Hashes each indexed file under `dir` (where the stream was restored) against its recorded SHA-256. */
export async function checkRestored(dir: string, rows: readonly IndexRow[], signal?: AbortSignal): Promise<RestoredCheck> {
  const out: RestoredCheck = { files: 0, bytes: 0n, mismatches: [], missing: [] }
  for (const r of rows) {
    signal?.throwIfAborted()
    const parts = r.path.split('/')
    // An index row naming a place outside the scratch directory is not followed: that file is missing.
    if (parts.some((c) => c === '' || c === '.' || c === '..')) {
      out.missing.push(r.path)
      continue
    }
    let got: { sha256: string; size: bigint }
    try {
      got = await hashFile(join(dir, ...parts))
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ENOENT') throw err
      out.missing.push(r.path)
      continue
    }
    out.files++
    out.bytes += got.size
    if (got.sha256 !== r.sha256 || got.size !== r.size) out.mismatches.push({ path: r.path, offset: r.offset, size: r.size })
  }
  return out
}
