/*
 * tsnfs backup verify JOB | --label LABEL --pool POOL: rereads a backup from its pool's tape files
 * and checks every file against the SHA-256 recorded at backup time (dma/jobs/verify.ts). A running
 * manager does it (and records it in the job); with none, it runs here. `--tape HOST:PORT` reads
 * the tapes through that NDMP tape agent (without it: the tape files on this host, or the job's
 * recorded tape agent when they are not here). Exit 0 when every file matches, 1 on any mismatch, missing file, damaged record or unreadable stream.
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { ControlRequest } from '../dma/control/protocol.ts'
import type { VerifyReport } from '../dma/jobs/verify.ts'
import { verifyAndRecord, verifyLine } from '../dma/jobs/verify.ts'
import type { BackupIo } from './backup.ts'

export interface VerifyCommandDeps {
  stateDirOf(flag: string | undefined): string
  ask(stateDir: string, req: ControlRequest): Promise<Record<string, unknown> | null>
  usage(message: string): Error
}

export function formatVerify(r: VerifyReport): string {
  const lines = [`verify of job ${r.job} (pool ${r.pool}, tapes ${r.tapes.join(', ')}): ${r.files} files, ${r.bytes} bytes checked, ${r.streamBytes} stream bytes read`]
  for (const m of r.mismatches) lines.push(`MISMATCH ${m.path}: at stream offset ${m.offset} (${m.size} bytes): its data differs from the SHA-256 recorded at backup time`)
  for (const p of r.missing) lines.push(`MISSING ${p}: indexed at backup time, not in the stream`)
  for (const d of r.damage) lines.push(`DAMAGE ${d.message}`)
  for (const p of r.changedDuringBackup) lines.push(`note ${p}: changed while it was backed up (its copy may be torn, yet matches what was recorded)`)
  lines.push(verifyLine(r))
  return `${lines.join('\n')}\n`
}

export async function verifyCommand(argv: string[], io: BackupIo, deps: VerifyCommandDeps): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { state: { type: 'string' }, label: { type: 'string' }, pool: { type: 'string' }, tape: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
  })
  const [job] = positionals
  if (positionals.length > 1 || (job === undefined) === (values.label === undefined)) throw deps.usage('verify: JOB, or --label LABEL --pool POOL')
  if (values.label !== undefined && values.pool === undefined) throw deps.usage('verify --label LABEL: needs --pool POOL')
  const stateDir = deps.stateDirOf(values.state)
  const pool = values.pool === undefined ? undefined : resolve(values.pool)
  const target = { ...(job === undefined ? {} : { job }), ...(values.label === undefined ? {} : { label: values.label }), ...(pool === undefined ? {} : { pool }), ...(values.tape === undefined ? {} : { tapeAgent: values.tape }) }
  const reply = await deps.ask(stateDir, { op: 'verify', ...(job === undefined ? {} : { id: job }), ...(values.label === undefined ? {} : { label: values.label }), ...(pool === undefined ? {} : { pool }), ...(values.tape === undefined ? {} : { tape: values.tape }) })
  const report = (reply?.report as VerifyReport | undefined) ?? (await verifyAndRecord(stateDir, target))
  io.out(values.json === true ? `${JSON.stringify(report)}\n` : formatVerify(report))
  return report.ok ? 0 : 1
}
