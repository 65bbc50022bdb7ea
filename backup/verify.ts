/*
 * verify: rereads a stream and checks every regular file's SHA-256 against the one recorded at
 * backup time in the stream's own index (backup/index-record.ts). Holes of sparse files hash as
 * zeros, as they did when written. A corrupt stream ends the check with its BackupFormatError.
 */
import { createHash } from 'node:crypto'
import type { ByteSource } from './types.ts'
import { detectCompression } from './compress.ts'
import { decodeIndexPart } from './index-record.ts'
import type { IndexRow } from './index-record.ts'
import { TarReader } from './tar/reader.ts'

export interface VerifySummary {
  /** Regular files read and hashed. */
  files: number
  bytes: bigint
  /** Files whose data no longer matches the recorded SHA-256. */
  mismatched: string[]
  /** The same, with where each file's records start in the (uncompressed) stream and its size. */
  mismatches: VerifyMismatch[]
  /** Files the index lists that the stream does not hold, and the reverse. */
  missing: string[]
  unindexed: string[]
  /** Files recorded as changed while read (their copy may be torn, yet it must still match). */
  changedDuringBackup: string[]
  /** False when the stream carries no index of ours (nothing to compare with). */
  indexed: boolean
}

export interface VerifyMismatch {
  path: string
  /** Byte offset of the file's first header in the uncompressed stream. */
  offset: bigint
  size: bigint
}

const ZEROS = Buffer.alloc(1024 * 1024)

export async function verifyBackup(source: ByteSource, sourceName: string, opts: { signal?: AbortSignal } = {}): Promise<VerifySummary> {
  const { source: plain } = await detectCompression(source, sourceName)
  const reader = new TarReader(plain, sourceName)
  const seen = new Map<string, { offset: bigint; size: bigint; sha256: string }>()
  let bytes = 0n
  for (;;) {
    opts.signal?.throwIfAborted()
    const e = await reader.next()
    if (e === null) break
    if (e.type !== 'file') continue
    const h = createHash('sha256')
    let pos = 0n
    for await (const { offset, data } of reader.fileData(e)) {
      for (let gap = offset - pos; gap > 0n; ) {
        const n = gap > BigInt(ZEROS.length) ? ZEROS.length : Number(gap)
        h.update(ZEROS.subarray(0, n))
        gap -= BigInt(n)
      }
      h.update(data)
      pos = offset + BigInt(data.length)
      bytes += BigInt(data.length)
    }
    for (let gap = e.size - pos; gap > 0n; ) {
      const n = gap > BigInt(ZEROS.length) ? ZEROS.length : Number(gap)
      h.update(ZEROS.subarray(0, n))
      gap -= BigInt(n)
    }
    seen.set(e.path, { offset: e.offset, size: e.size, sha256: h.digest('hex') })
  }
  const rows: IndexRow[] = []
  let indexed = false
  for (const c of reader.comments) {
    const part = decodeIndexPart(c)
    if (part === null) continue
    indexed = true
    rows.push(...part)
  }
  const out: VerifySummary = { files: seen.size, bytes, mismatched: [], mismatches: [], missing: [], unindexed: [], changedDuringBackup: [], indexed }
  const listed = new Set<string>()
  for (const r of rows) {
    listed.add(r.path)
    if (r.changed) out.changedDuringBackup.push(r.path)
    const got = seen.get(r.path)
    if (got === undefined) out.missing.push(r.path)
    else if (got.sha256 !== r.sha256) {
      out.mismatched.push(r.path)
      out.mismatches.push({ path: r.path, offset: got.offset, size: got.size })
    }
  }
  if (indexed) for (const p of seen.keys()) if (!listed.has(p)) out.unindexed.push(p)
  return out
}
