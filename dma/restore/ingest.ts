/*
 * File history ingest (issue 16 §6): every completed job of our backup manager goes into the
 * catalog as a backup — its level, times, tapes (label, file number, where on the stream each
 * tape starts) and its file history (STATE/jobs/ID.fh, the FH posts as the job kept them) as
 * rows with their stream offsets — so `tsnfs restore` browses what the DMA backed up and
 * `tsnfs backup restore` plans from it. Ingest is idempotent: a job already in the catalog (by its
 * job id and export) is skipped; a job whose tapes the pool has recycled is skipped too.
 * The job service ingests each backup as it ends (so the first restore after it does not pay for
 * it); a restore ingests what is missing first, which covers a manager that died between a job's
 * end and its ingest. Both hold one lock file while they look and insert: a restore running as
 * a job ends must not add that job a second time.
 */
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Catalog } from '../../backup/catalog/catalog.ts'
import { ingestNdmpBackup } from '../../backup/catalog/ndmp-history.ts'
import type { NdmpHistoryLine } from '../../backup/catalog/ndmp-history.ts'
import type { TapeFile } from '../../backup/catalog/rows.ts'
import { isErrno } from '../errors.ts'
import { jobRecords } from '../jobs/log.ts'
import type { JobRecord } from '../jobs/record.ts'
import { jobsDir } from '../jobs/registry.ts'
import { readIndex } from '../pool/index-file.ts'
import { withLock } from '../pool/lock.ts'

/** The catalog our manager keeps beside its jobs. */
export function catalogPath(stateDir: string): string {
  return join(stateDir, 'catalog.db')
}

/** An ingest of a large backup (100,000 rows: seconds) may hold the lock that long. */
const INGEST_LOCK_WAIT_MS = 5 * 60_000

/** A history line longer than this is not ours: skipped, not parsed. */
const MAX_LINE = 1024 * 1024

function ns(iso: string | undefined): bigint {
  const ms = iso === undefined ? Number.NaN : Date.parse(iso)
  return Number.isFinite(ms) ? BigInt(ms) * 1_000_000n : 0n
}

async function* historyLines(file: string): AsyncGenerator<NdmpHistoryLine> {
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })
  try {
    for await (const line of rl) {
      if (line === '' || line.length > MAX_LINE) continue
      let v: unknown
      try {
        v = JSON.parse(line)
      } catch {
        continue
      }
      if (v !== null && typeof v === 'object' && typeof (v as { path?: unknown }).path === 'string') yield v as NdmpHistoryLine
    }
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err
  } finally {
    rl.close()
  }
}

/** Where each of a job's tapes starts on its stream: the pool's bytes written on the tapes before it. */
async function tapesOf(job: JobRecord): Promise<TapeFile[] | null> {
  const index = await readIndex(job.pool)
  const b = index.backups.find((x) => x.job === job.id)
  if (b === undefined || b.status !== 'done') return null
  const out: TapeFile[] = []
  let at = 0n
  for (const label of b.tapes) {
    const t = index.tapes.find((x) => x.label === label)
    if (t === undefined) return null
    // A backup starts on a tape of its own (dma/pool): its stream is tape file 0 of each tape.
    out.push({ label, fileNumber: 0, streamOffset: at })
    at += BigInt(t.used)
  }
  return out
}

export interface IngestResult {
  /** Catalog ids of the backups added, by job id. */
  added: Map<string, number>
  skipped: Array<{ job: string; why: string }>
}

/** Adds every completed job of `exportText` (all exports: undefined) the catalog does not hold yet. */
export async function ingestJobs(cat: Catalog, stateDir: string, exportText?: string): Promise<IngestResult> {
  return withLock(`${catalogPath(stateDir)}.ingest-lock`, () => ingestUnlocked(cat, stateDir, exportText), INGEST_LOCK_WAIT_MS)
}

async function ingestUnlocked(cat: Catalog, stateDir: string, exportText: string | undefined): Promise<IngestResult> {
  const res: IngestResult = { added: new Map(), skipped: [] }
  const held = new Set((cat.stmt('SELECT job_id FROM backups WHERE job_id IS NOT NULL').pluck().all() as string[]).map(String))
  // Restore jobs (name 'restore') hold no backup.
  const jobs = (await jobRecords(jobsDir(stateDir))).filter((j) => j.state === 'done' && j.name !== 'restore' && (exportText === undefined || j.export === exportText))
  jobs.sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt) || Number(a.id) - Number(b.id))
  for (const job of jobs) {
    if (held.has(job.id)) continue
    if (job.export.startsWith('file:')) {
      res.skipped.push({ job: job.id, why: 'a file: export has no file history' })
      continue
    }
    const tapes = await tapesOf(job).catch(() => null)
    if (tapes === null) {
      res.skipped.push({ job: job.id, why: `its tapes are no longer in pool ${job.pool}` })
      continue
    }
    const lines: NdmpHistoryLine[] = []
    for await (const l of historyLines(join(jobsDir(stateDir), `${job.id}.fh`))) lines.push(l)
    const id = ingestNdmpBackup(cat, {
      filesystem: job.export,
      level: job.level,
      startedNs: ns(job.createdAt),
      endedNs: ns(job.endedAt ?? job.createdAt),
      bytes: BigInt(job.bytes),
      tapes,
      agent: 'tsnfs backup',
      jobId: job.id,
    }, lines)
    res.added.set(job.id, id)
  }
  return res
}
