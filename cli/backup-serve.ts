/*
 * tsnfs serve --backup-schedule FILE [--backup-state DIR]: the server runs the scheduled backups.
 * The manager lives in the serve process (cli/ wires it; server/ knows nothing of dma/): it
 * answers tsnfs backup on DIR/backup.sock and stops with the server.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { ControlServer } from '../dma/control/server.ts'
import { startControlServer } from '../dma/control/server.ts'
import { driversFor } from '../dma/drivers/select.ts'
import { DmaService } from '../dma/jobs/service.ts'
import type { ScheduleEntry } from '../dma/schedule/file.ts'
import { loadSchedule } from '../dma/schedule/file.ts'
import { Scheduler } from '../dma/schedule/scheduler.ts'

export interface BackupManager {
  readonly stateDir: string
  readonly jobs: number
  close(): Promise<void>
}

interface Log {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

/** Reads the schedule before the server starts: a bad line stops serve before it serves. */
export function readBackupSchedule(path: string): Promise<ScheduleEntry[]> {
  return loadSchedule(path)
}

/** Starts the manager with the schedule's entries. */
export async function startBackupManager(entries: readonly ScheduleEntry[], stateDir: string | undefined, serverStateDir: string, log: Log): Promise<BackupManager> {
  const dir = stateDir ?? join(serverStateDir, 'backup')
  await mkdir(dir, { recursive: true })
  const service = await DmaService.open(dir, driversFor(dir))
  const control: ControlServer = await startControlServer(service)
  const scheduler = await Scheduler.start(service, entries, {
    onError: (err, e) => {
      log.warn({ err, job: e.name }, 'scheduled backup did not start')
    },
    onTick: (started) => {
      for (const s of started) log.info({ job: s.name, id: s.id, level: s.level, slot: s.slot.toISOString() }, 'scheduled backup started')
    },
  })
  return {
    stateDir: dir,
    jobs: entries.length,
    close: async () => {
      await scheduler.stop()
      await service.close()
      await control.close()
    },
  }
}
