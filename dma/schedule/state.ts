/*
 * The scheduler's memory of last runs: STATE/schedule-state.json, { "jobs": { NAME: { "lastSlot": ISO } } }.
 * A job is due when its latest slot at or before now is later than the last slot it ran for.
 * So a server that was down through several slots runs the job once at start (for the latest
 * missed slot), not once per slot; a job first seen starts counting from now (nothing missed).
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isErrno } from '../errors.ts'
import type { CronTime } from './cron.ts'
import { previousRun } from './cron.ts'

export const SCHEDULE_STATE_FILE = 'schedule-state.json'

export type LastRuns = Map<string, Date>

export async function loadLastRuns(stateDir: string): Promise<LastRuns> {
  let text: string
  try {
    text = await readFile(join(stateDir, SCHEDULE_STATE_FILE), 'utf8')
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return new Map()
    throw err
  }
  const out: LastRuns = new Map()
  try {
    const parsed = JSON.parse(text) as { jobs?: Record<string, { lastSlot?: unknown }> }
    for (const [name, v] of Object.entries(parsed.jobs ?? {})) {
      const at = typeof v.lastSlot === 'string' ? new Date(v.lastSlot) : null
      if (at !== null && !Number.isNaN(at.getTime())) out.set(name, at)
    }
  } catch {
    // A torn or foreign file: start afresh (nothing counts as missed) rather than refuse to schedule.
  }
  return out
}

export async function saveLastRuns(stateDir: string, runs: LastRuns): Promise<void> {
  const jobs = Object.fromEntries([...runs].map(([name, at]) => [name, { lastSlot: at.toISOString() }]))
  const path = join(stateDir, SCHEDULE_STATE_FILE)
  await writeFile(`${path}.tmp`, `${JSON.stringify({ jobs }, null, 1)}\n`)
  await rename(`${path}.tmp`, path)
}

/**
 * The slot a job is due for at `now`, or null. `last` undefined: never seen, nothing is due
 * (the caller records `now` as its last slot).
 */
export function dueSlot(time: CronTime, last: Date | undefined, now: Date): Date | null {
  if (last === undefined) return null
  const slot = previousRun(time, now)
  return slot !== null && slot.getTime() > last.getTime() ? slot : null
}
