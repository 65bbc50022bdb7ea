/*
 * The catalog (issue 16 §6): one SQLite file (better-sqlite3, WAL) holding every backup's file
 * history, tapes and directory listings. This file holds the backup lifecycle and the ingest;
 * the queries are in queries.ts, chains in chain.ts, restore plans in plan.ts. Each statement is
 * prepared once per open catalog (stmt() keeps them by their text).
 */
import type { Database as Db, Statement } from 'better-sqlite3'
import type { DirListing, FileHistoryEntry } from '../types.ts'
import { fromHistoryPath, normalizePath } from './paths.ts'
import type { BackupInfo, BackupStatus, Row, TapeFile } from './rows.ts'
import { backupOf, tapeOf, toNs } from './rows.ts'
import { CatalogError, openDatabase } from './schema.ts'

export interface BeginBackup {
  filesystem: string
  level: number
  /** The lower-level backup this one is relative to; null or absent: the backup is full. */
  baseId?: number | null
  startedNs: bigint
  host?: string
  agent?: string
  jobId?: string
}

export interface BackupFilter {
  filesystem?: string
  level?: number
  status?: BackupStatus
  /** Started at or after. */
  fromNs?: bigint
  /** Started at or before. */
  toNs?: bigint
}

/** Rows per ingest transaction: large enough that commits cost little, small enough to bound memory. */
export const INGEST_BATCH = 10_000

export class Catalog {
  readonly file: string
  readonly db: Db
  private readonly statements = new Map<string, Statement>()

  private constructor(file: string, db: Db) {
    this.file = file
    this.db = db
  }

  static open(file: string, opts: { create?: boolean; readonly?: boolean } = {}): Catalog {
    return new Catalog(file, openDatabase(file, { create: opts.create ?? true, ...(opts.readonly === true ? { readonly: true } : {}) }))
  }

  close(): void {
    this.db.close()
  }

  /** The prepared statement for `sql`, prepared on first use and kept. */
  stmt(sql: string): Statement {
    let s = this.statements.get(sql)
    if (s === undefined) {
      s = this.db.prepare(sql)
      this.statements.set(sql, s)
    }
    return s
  }

  beginBackup(b: BeginBackup): number {
    if (!Number.isInteger(b.level) || b.level < 0 || b.level > 9) throw new CatalogError('CATALOG_BAD_INPUT', `level ${b.level}: levels are 0 to 9`)
    const baseId = b.level === 0 ? null : (b.baseId ?? null)
    if (baseId !== null) {
      const base = this.backup(baseId)
      if (base.filesystem !== b.filesystem || base.level >= b.level) throw new CatalogError('CATALOG_BAD_INPUT', `backup ${baseId} (level ${base.level} of ${base.filesystem}) cannot be the base of a level ${b.level} of ${b.filesystem}`)
    }
    const r = this.stmt(`INSERT INTO backups (filesystem, level, base_id, full, started_ns, status, host, agent, job_id)
      VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)`).run(normalizePath(b.filesystem), b.level, baseId, baseId === null ? 1 : 0, b.startedNs, b.host ?? '', b.agent ?? '', b.jobId ?? null)
    return Number(r.lastInsertRowid)
  }

  /** The next tape file of a running backup: its stream from streamOffset on is there. */
  addTape(backupId: number, tape: TapeFile): void {
    this.running(backupId)
    this.stmt(`INSERT INTO backup_tapes (backup_id, seq, label, file_number, stream_offset)
      VALUES (?, (SELECT coalesce(max(seq), -1) + 1 FROM backup_tapes WHERE backup_id = ?), ?, ?, ?)`).run(backupId, backupId, tape.label, tape.fileNumber, tape.streamOffset)
  }

  finishBackup(backupId: number, done: { endedNs: bigint; bytes: bigint; files?: number }): void {
    this.running(backupId)
    const files = done.files ?? Number(this.stmt('SELECT count(*) FROM files WHERE backup_id = ?').pluck().get(backupId))
    this.stmt("UPDATE backups SET status = 'done', ended_ns = ?, bytes = ?, files = ? WHERE id = ?").run(done.endedNs, done.bytes, files, backupId)
  }

  failBackup(backupId: number, endedNs: bigint, message: string): void {
    this.end(backupId, 'failed', endedNs, message)
  }

  abortBackup(backupId: number, endedNs: bigint, message = 'aborted'): void {
    this.end(backupId, 'aborted', endedNs, message)
  }

  private end(backupId: number, status: BackupStatus, endedNs: bigint, message: string): void {
    this.running(backupId)
    this.stmt('UPDATE backups SET status = ?, ended_ns = ?, message = ? WHERE id = ?').run(status, endedNs, message, backupId)
  }

  private running(backupId: number): BackupInfo {
    const b = this.backup(backupId)
    if (b.status !== 'running') throw new CatalogError('CATALOG_STATE', `backup ${backupId} is ${b.status}, not running`)
    return b
  }

  backup(id: number): BackupInfo {
    const r = this.stmt('SELECT * FROM backups WHERE id = ?').get(id) as Row | undefined
    if (r === undefined) throw new CatalogError('CATALOG_NOT_FOUND', `no backup ${id} in the catalog`)
    return backupOf(r, this.tapes(id))
  }

  tapes(backupId: number): TapeFile[] {
    return (this.stmt('SELECT * FROM backup_tapes WHERE backup_id = ? ORDER BY seq').all(backupId) as Row[]).map(tapeOf)
  }

  listBackups(f: BackupFilter = {}): BackupInfo[] {
    const rows = this.stmt(`SELECT * FROM backups WHERE (@fs IS NULL OR filesystem = @fs) AND (@level IS NULL OR level = @level)
      AND (@status IS NULL OR status = @status) AND (@from IS NULL OR started_ns >= @from) AND (@to IS NULL OR started_ns <= @to)
      ORDER BY started_ns, id`).all({
      fs: f.filesystem === undefined ? null : normalizePath(f.filesystem),
      level: f.level ?? null,
      status: f.status ?? null,
      from: f.fromNs ?? null,
      to: f.toNs ?? null,
    }) as Row[]
    return rows.map(r => backupOf(r, this.tapes(Number(r.id as bigint))))
  }

  /** Removes a backup with its files, listings and tapes (its tape was recycled). */
  deleteBackup(id: number): void {
    this.backup(id)
    this.stmt('DELETE FROM backups WHERE id = ?').run(id)
  }

  /** Removes every backup with a file on tape `label`; returns their ids. */
  deleteByTape(label: string): number[] {
    const ids = (this.stmt('SELECT DISTINCT backup_id FROM backup_tapes WHERE label = ? ORDER BY backup_id').pluck().all(label) as bigint[]).map(Number)
    this.db.transaction(() => {
      for (const id of ids) this.stmt('DELETE FROM backups WHERE id = ?').run(id)
    })()
    return ids
  }

  /** An ingest for a running backup: add() as file history arrives, close() at the end. */
  ingest(backupId: number): Ingest {
    this.running(backupId)
    return new Ingest(this, backupId)
  }

  /** Ingests all of `entries` (batched in transactions). */
  ingestAll(backupId: number, entries: Iterable<FileHistoryEntry>): number {
    const ing = this.ingest(backupId)
    for (const e of entries) ing.add(e)
    ing.close()
    return ing.count
  }

  /** Records what each directory held when the backup ran (BackupSummary.listing). */
  addListing(backupId: number, listing: DirListing): void {
    this.running(backupId)
    const ins = this.stmt('INSERT OR REPLACE INTO listings (backup_id, dir, names) VALUES (?, ?, ?)')
    this.db.transaction(() => {
      for (const [dir, entries] of listing) {
        for (const e of entries) if (e.name === '' || e.name.includes('/')) throw new CatalogError('CATALOG_BAD_INPUT', `listing of ${dir}: bad name ${JSON.stringify(e.name)}`)
        ins.run(backupId, normalizePath(`/${dir}`), entries.map(e => e.name).join('/'))
      }
    })()
  }
}

/** Buffers file history and writes it INGEST_BATCH rows per transaction. */
export class Ingest {
  count = 0
  private readonly cat: Catalog
  private readonly backupId: number
  private batch: FileHistoryEntry[] = []
  private readonly insert: Statement
  private readonly write: (rows: FileHistoryEntry[], tapes: TapeFile[]) => void

  constructor(cat: Catalog, backupId: number) {
    this.cat = cat
    this.backupId = backupId
    this.insert = cat.stmt(`INSERT INTO files (backup_id, dir, name, type, size, mode, uid, gid, atime_ns, mtime_ns, ctime_ns, fileid,
      sha256, link_target, hard_link_of, tape_label, tape_file, stream_offset, changed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.write = cat.db.transaction((rows: FileHistoryEntry[], tapes: TapeFile[]) => {
      for (const e of rows) {
        const { dir, name } = fromHistoryPath(e.path)
        const tape = tapeAt(tapes, e.offset)
        this.insert.run(this.backupId, dir, name, e.type, e.size, e.mode, e.uid, e.gid, toNs(e.atime), toNs(e.mtime), toNs(e.ctime), e.fileid,
          e.sha256 ?? null, e.linkTarget ?? null, e.hardLinkOf ?? null, tape?.label ?? null, tape?.fileNumber ?? null, e.offset, e.changedDuringBackup === true ? 1 : 0)
      }
    })
  }

  add(e: FileHistoryEntry): void {
    this.batch.push(e)
    if (this.batch.length >= INGEST_BATCH) this.flush()
  }

  flush(): void {
    if (this.batch.length === 0) return
    const rows = this.batch
    this.batch = []
    // The tapes known now: file history trails the stream, so a row's tape was registered before it.
    this.write(rows, this.cat.tapes(this.backupId))
    this.count += rows.length
  }

  close(): void {
    this.flush()
  }
}

/** The tape file holding stream byte `offset`: the last one starting at or before it. */
function tapeAt(tapes: TapeFile[], offset: bigint): TapeFile | undefined {
  let found: TapeFile | undefined
  for (const t of tapes) if (t.streamOffset <= offset) found = t
  return found
}
