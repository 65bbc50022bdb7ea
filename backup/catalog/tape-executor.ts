/*
 * A RestoreExecutor for tape files on this host (a pool directory as dma/pool lays it out, or
 * any label → file mapping): reads each step of a plan through the backup format. A full restore
 * reads each stream of the chain whole, deletions applied; a partial one reads, per object, only
 * the bytes from its offset to the next object's (plus an end-of-archive block), so one file from
 * a huge backup costs its own records. Offsets are those of the uncompressed stream: a compressed
 * backup cannot be read this way (its streams are read whole).
 */
import { open } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import type { BackupFormat, ByteSource, RestoreSummary, RestoreTarget } from '../types.ts'
import type { ExecuteOptions, RestoreExecutor, RestorePlan } from './plan.ts'
import type { TapeFile } from './rows.ts'
import { CatalogError } from './schema.ts'

/** tar's end of archive: what a range read ends with, so the reader ends cleanly after one object. */
const END_OF_ARCHIVE = Buffer.alloc(1024)

export interface TapeExecutorOptions {
  /** The host file holding tape `label`. */
  tapeFile: (label: string) => string
  format: BackupFormat
  /** Where `--to` (or the original place, null) restores to. */
  target: (to: string | null) => RestoreTarget
  name?: string
}

export class TapeFileExecutor implements RestoreExecutor {
  readonly name: string
  /** Stream bytes read from tape files so far (a direct-access restore reads few). */
  bytesRead = 0n
  readonly #o: TapeExecutorOptions

  constructor(o: TapeExecutorOptions) {
    this.#o = o
    this.name = o.name ?? 'local tape files'
  }

  async execute(plan: RestorePlan, opts: ExecuteOptions): Promise<RestoreSummary> {
    const target = this.#o.target(opts.to)
    const total: RestoreSummary = { files: 0, dirs: 0, bytes: 0n, skipped: [], deleted: [] }
    const log = opts.onLog
    for (const [i, step] of plan.steps.entries()) {
      const b = step.backup
      if (b.tapes.length === 0) throw new CatalogError('CATALOG_STATE', `backup ${b.id} has no tape recorded`)
      const name = `backup ${b.id} (${b.tapes.map(t => t.label).join(',')})`
      // Later levels replace what the earlier ones of this restore wrote.
      const overwrite = opts.overwrite || i > 0
      const ranges = step.whole ? [{ start: 0n, end: null, select: undefined }] : step.files.map(f => ({ start: f.streamOffset, end: f.endOffset, select: [{ path: f.path.slice(1) }] }))
      for (const r of ranges) {
        const source = new TapeRangeSource(this, b.tapes, this.#o.tapeFile, r.start, r.end)
        try {
          const s = await this.#o.format.readBackup(source, name, target, {
            ...(r.select === undefined ? {} : { select: r.select }),
            overwrite,
            applyDeletions: step.whole,
            ...(log === undefined ? {} : { onLog: log }),
            ...(opts.signal === undefined ? {} : { signal: opts.signal }),
          })
          total.files += s.files
          total.dirs += s.dirs
          total.bytes += s.bytes
          total.skipped.push(...s.skipped)
          total.deleted.push(...s.deleted)
        } finally {
          await source.close()
        }
      }
    }
    return total
  }

  count(n: number): void {
    this.bytesRead += BigInt(n)
  }
}

/** Stream bytes [start, end) of one backup across its tape files; with an end, an end-of-archive block after. */
class TapeRangeSource implements ByteSource {
  readonly #owner: TapeFileExecutor
  readonly #tapes: TapeFile[]
  readonly #file: (label: string) => string
  #pos: bigint
  readonly #end: bigint | null
  #fh: FileHandle | null = null
  #tape = -1
  #trailer: Buffer | null

  constructor(owner: TapeFileExecutor, tapes: TapeFile[], file: (label: string) => string, start: bigint, end: bigint | null) {
    this.#owner = owner
    this.#tapes = tapes
    this.#file = file
    this.#pos = start
    this.#end = end
    this.#trailer = end === null ? null : END_OF_ARCHIVE
  }

  async read(max: number): Promise<Buffer | null> {
    for (;;) {
      if (this.#end !== null && this.#pos >= this.#end) return this.#tail(max)
      const i = this.#tapeAt(this.#pos)
      if (i !== this.#tape) {
        await this.close()
        const t = this.#tapes[i] as TapeFile
        this.#fh = await open(this.#file(t.label), 'r')
        this.#tape = i
      }
      const t = this.#tapes[i] as TapeFile
      const next = this.#tapes[i + 1]
      let want = BigInt(max)
      if (this.#end !== null && this.#end - this.#pos < want) want = this.#end - this.#pos
      if (next !== undefined && next.streamOffset - this.#pos < want) want = next.streamOffset - this.#pos
      const buf = Buffer.allocUnsafe(Number(want))
      const { bytesRead } = await (this.#fh as FileHandle).read(buf, 0, buf.length, Number(this.#pos - t.streamOffset))
      if (bytesRead === 0) {
        // This tape file ends here: the stream goes on on the next one, or it ends.
        if (next === undefined) return this.#end === null ? null : this.#tail(max)
        this.#pos = next.streamOffset
        continue
      }
      this.#pos += BigInt(bytesRead)
      this.#owner.count(bytesRead)
      return buf.subarray(0, bytesRead)
    }
  }

  #tail(max: number): Buffer | null {
    const t = this.#trailer
    if (t === null || t.length === 0) return null
    this.#trailer = t.subarray(Math.min(max, t.length))
    return t.subarray(0, Math.min(max, t.length))
  }

  #tapeAt(pos: bigint): number {
    let found = 0
    for (const [i, t] of this.#tapes.entries()) if (t.streamOffset <= pos) found = i
    return found
  }

  async close(): Promise<void> {
    await this.#fh?.close()
    this.#fh = null
    this.#tape = -1
  }
}
