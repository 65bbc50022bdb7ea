/*
 * The job registry on disk: STATE/jobs/ID.json (the record), ID.log (its log), ID.fh (its file
 * history, JSON lines). Ids are 1, 2, 3...: short to type (tsnfs backup abort 7), taken with an
 * exclusive create so two writers never share one.
 */
import { appendFile, mkdir, open, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DmaError, isErrno } from '../errors.ts'
import type { JobRecord } from './record.ts'

export function jobsDir(stateDir: string): string {
  return join(stateDir, 'jobs')
}

/** Creates the record of a new job, giving it the next free id. */
export async function createJob(dir: string, fields: Omit<JobRecord, 'id'>): Promise<JobRecord> {
  await mkdir(dir, { recursive: true })
  const ids = (await readdir(dir)).flatMap((n) => (/^\d+\.json$/.test(n) ? [Number(n.slice(0, -5))] : []))
  for (let id = Math.max(0, ...ids) + 1; ; id++) {
    const job: JobRecord = { id: String(id), ...fields }
    try {
      const fh = await open(join(dir, `${id}.json`), 'wx', 0o600)
      await fh.writeFile(`${JSON.stringify(job)}\n`)
      await fh.close()
      return job
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err
    }
  }
}

export async function saveJob(dir: string, job: JobRecord): Promise<void> {
  const path = join(dir, `${job.id}.json`)
  await writeFile(`${path}.tmp`, `${JSON.stringify(job)}\n`)
  await rename(`${path}.tmp`, path)
}

export async function loadJob(dir: string, id: string): Promise<JobRecord> {
  if (!/^\d{1,12}$/.test(id)) throw new DmaError('DMA_NO_JOB', `"${id}" is not a job id`)
  try {
    return JSON.parse(await readFile(join(dir, `${id}.json`), 'utf8')) as JobRecord
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new DmaError('DMA_NO_JOB', `no job ${id}`)
    throw err
  }
}

export function appendHistory(dir: string, id: string, lines: string): Promise<void> {
  return appendFile(join(dir, `${id}.fh`), lines)
}
