/*
 * tsnfs backup run with no manager running: this process becomes the manager of the state
 * directory for the job's length (its control socket answers abort and continue from another
 * terminal), prints the job's pauses, and ends with the job.
 */
import { mkdir } from 'node:fs/promises'
import { startControlServer } from '../dma/control/server.ts'
import { driversFor } from '../dma/drivers/select.ts'
import type { JobRecord } from '../dma/jobs/record.ts'
import type { JobRequest } from '../dma/jobs/service.ts'
import { DmaService } from '../dma/jobs/service.ts'
import type { BackupIo } from './backup.ts'

export async function runForeground(stateDir: string, io: BackupIo, req: JobRequest, json: boolean): Promise<JobRecord> {
  await mkdir(stateDir, { recursive: true })
  const service = await DmaService.open(stateDir, driversFor(stateDir))
  const control = await startControlServer(service)
  let lastState = ''
  service.watch = (job) => {
    const key = `${job.state}:${job.needs?.label ?? ''}`
    if (key === lastState) return
    lastState = key
    if (job.state === 'paused' && job.needs !== undefined) {
      const how = job.needs.isNew ? `tsnfs backup label ${job.pool} ${job.needs.label}, then ` : ''
      io.err(`job ${job.id} needs next tape ${job.needs.label}: ${how}tsnfs backup continue ${job.id} --state ${stateDir}\n`)
    }
  }
  const stop = (): void => {
    void service.close()
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    const started = await service.start(req)
    io.err(`job ${started.id} running here (manager of ${stateDir})\n`)
    const job = await service.wait(started.id)
    io.out(json ? `${JSON.stringify(job)}\n` : `job ${job.id} ${job.state}: ${job.bytes} bytes on ${job.tapes.join(', ') || 'no tape'}${job.error === undefined ? '' : ` (${job.error})`}\n`)
    return job
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    await control.close()
  }
}
