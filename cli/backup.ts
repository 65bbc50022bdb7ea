/*
 * tsnfs backup: our backup manager's commands (issue 16 §4). run, list, abort and continue talk
 * to the manager of the state directory (the server's scheduler, or a foreground run) over its
 * control socket; with none running, run runs the job here in the foreground (and answers the
 * socket itself, so abort and continue work from another terminal), and list reads the registry.
 */
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { controlRequest } from '../dma/control/client.ts'
import type { ControlReply, ControlRequest } from '../dma/control/protocol.ts'
import { DmaError } from '../dma/errors.ts'
import { jobRecords, queryLogs } from '../dma/jobs/log.ts'
import type { JobRecord } from '../dma/jobs/record.ts'
import { jobsDir } from '../dma/jobs/registry.ts'
import type { ScheduledJob } from '../dma/jobs/service.ts'
import { Pool } from '../dma/pool/pool.ts'
import { parseExport } from '../dma/schedule/export-spec.ts'
import { parseLevel } from '../dma/schedule/levels.ts'
import { defaultStateDir } from '../server/state.ts'
import { backupRestore, RESTORE_SUBUSAGE } from './backup-restore.ts'
import { runForeground } from './backup-run.ts'
import { verifyCommand } from './backup-verify.ts'
import { formatJobs, formatLog, formatPool } from './backup-print.ts'
import { wantsHelp } from './help.ts'

export const BACKUP_USAGE = `usage: tsnfs backup <command> [--state DIR] ...
  run EXPORT --level N --to POOL [--exclude GLOB]... [--tape HOST:PORT] [--verify read|restore]
        [--compress gzip|brotli] [--wait] [--json]
        back up EXPORT (HOST[:PORT]:/PATH of an NDMP agent, or file:PATH) to the pool in
        directory POOL now; a running manager runs it (--wait: until it ends), else it runs here;
        --verify: then reread it (read) or restore it into a scratch directory (restore) and
        check every file's SHA-256; --compress: the data agent compresses the stream (env COMPRESS)
  list [--json]                 jobs (running, paused, done, failed, aborted) and the schedule
  abort JOB                     stop a running or paused job
  continue JOB                  go on after a tape change (the job paused "needs next tape")
  log [JOB] [--level N] [--severity info|warn|error] [--json]
                                job logs, by job and by backup level
  label POOL LABEL [--capacity SIZE] [--keep N]
                                a new blank tape (makes the pool: capacity per tape, chains kept)
  pool POOL [--json]            a pool's tapes and backups
  verify JOB | --label LABEL --pool POOL [--tape HOST:PORT] [--json]
                                reread a backup from its tapes and check every file's SHA-256
                                recorded at backup time (exit 1 on any mismatch, naming the file)
${RESTORE_SUBUSAGE}  --state DIR   the manager's state directory (default $TSNFS_BACKUP_STATE, or STATE-DIR/backup
                of tsnfs serve)
`

/** A mistake in the command line: usage, exit 2. */
class UsageError extends Error {}

function stateDirOf(flag: string | undefined): string {
  return resolve(flag ?? process.env.TSNFS_BACKUP_STATE ?? join(defaultStateDir(), 'backup'))
}

function parseSizeText(text: string): number {
  const m = /^(\d{1,15})([KMGT]?)$/i.exec(text.trim())
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[(m?.[2] ?? '').toUpperCase()] ?? NaN
  const n = m === null ? NaN : Number(m[1]) * unit
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--capacity: not a size (digits, optionally K, M, G or T): ${text}`)
  return n
}

/** A manager's reply: its value, or its refusal as a DmaError (the code printed). */
function unwrap(reply: ControlReply): Record<string, unknown> {
  if (!reply.ok) throw new DmaError(reply.code as DmaError['code'], reply.message)
  return reply
}

async function ask(stateDir: string, req: ControlRequest): Promise<Record<string, unknown> | null> {
  const reply = await controlRequest(stateDir, req)
  return reply === null ? null : unwrap(reply)
}

/** Where the commands print: the process's streams, or a test's. */
export interface BackupIo {
  out(text: string): void
  err(text: string): void
}

const PROCESS_IO: BackupIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
}

async function run(argv: string[], io: BackupIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      state: { type: 'string' },
      level: { type: 'string' },
      to: { type: 'string' },
      exclude: { type: 'string', multiple: true },
      tape: { type: 'string' },
      verify: { type: 'string' },
      compress: { type: 'string' },
      wait: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
  })
  const [exportText] = positionals
  if (exportText === undefined || positionals.length > 1 || values.level === undefined || values.to === undefined) {
    throw new UsageError('run: EXPORT --level N --to POOL')
  }
  const verify = values.verify
  if (verify !== undefined && verify !== 'read' && verify !== 'restore') throw new UsageError(`--verify: read or restore, not ${verify}`)
  const compress = values.compress
  if (compress !== undefined && compress !== 'gzip' && compress !== 'brotli') throw new UsageError(`--compress: gzip or brotli, not ${compress}`)
  const spec = parseExport(exportText)
  const level = parseLevel(values.level)
  const pool = resolve(values.to)
  const stateDir = stateDirOf(values.state)
  const req: ControlRequest = { op: 'run', export: spec.text, pool, level, ...(values.exclude === undefined ? {} : { exclude: values.exclude }), ...(values.tape === undefined ? {} : { tape: values.tape }), ...(verify === undefined ? {} : { verify }), ...(compress === undefined ? {} : { compress }) }
  const started = await ask(stateDir, req)
  if (started === null) {
    const job = await runForeground(stateDir, io, { name: 'manual', spec, pool, level, ...(values.exclude === undefined ? {} : { exclude: values.exclude }), ...(values.tape === undefined ? {} : { tapeAgent: values.tape }), ...(verify === undefined ? {} : { verify }), ...(compress === undefined ? {} : { compress }) }, values.json === true)
    return job.state === 'done' ? 0 : 1
  }
  let job = started.job as JobRecord
  io.out(values.json === true && values.wait !== true ? `${JSON.stringify(job)}\n` : `job ${job.id} started by the manager of ${stateDir}\n`)
  if (values.wait !== true) return 0
  const ended = await ask(stateDir, { op: 'wait', id: job.id })
  job = (ended?.job ?? job) as JobRecord
  io.out(values.json === true ? `${JSON.stringify(job)}\n` : `job ${job.id} ${job.state}${job.error === undefined ? '' : `: ${job.error}`}\n`)
  return job.state === 'done' ? 0 : 1
}

async function list(argv: string[], io: BackupIo): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { state: { type: 'string' }, json: { type: 'boolean' } } })
  const stateDir = stateDirOf(values.state)
  const live = await ask(stateDir, { op: 'list' })
  const jobs = (live?.jobs as JobRecord[] | undefined) ?? (await jobRecords(jobsDir(stateDir)))
  const scheduled = (live?.scheduled as ScheduledJob[] | undefined) ?? []
  io.out(values.json === true ? `${JSON.stringify({ manager: live !== null, jobs, scheduled })}\n` : formatJobs(jobs, scheduled))
  return 0
}

async function control(op: 'abort' | 'continue', argv: string[], io: BackupIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { state: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true })
  const [id] = positionals
  if (id === undefined || positionals.length > 1) throw new UsageError(`${op}: JOB`)
  const stateDir = stateDirOf(values.state)
  const reply = await ask(stateDir, { op, id })
  if (reply === null) throw new DmaError('DMA_JOB_STATE', `no backup manager runs on ${stateDir}: job ${id} is not running`)
  const job = reply.job as JobRecord
  io.out(values.json === true ? `${JSON.stringify(job)}\n` : `job ${job.id} ${job.state}\n`)
  return 0
}

async function log(argv: string[], io: BackupIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { state: { type: 'string' }, level: { type: 'string' }, severity: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
  })
  if (positionals.length > 1) throw new UsageError('log: at most one JOB')
  const severity = values.severity
  if (severity !== undefined && severity !== 'info' && severity !== 'warn' && severity !== 'error') throw new UsageError(`--severity: info, warn or error, not ${severity}`)
  const lines = await queryLogs(jobsDir(stateDirOf(values.state)), {
    ...(positionals[0] === undefined ? {} : { job: positionals[0] }),
    ...(values.level === undefined ? {} : { backupLevel: parseLevel(values.level) }),
    ...(severity === undefined ? {} : { severity }),
  })
  io.out(values.json === true ? lines.map((l) => `${JSON.stringify(l)}\n`).join('') : formatLog(lines))
  return 0
}

async function label(argv: string[], io: BackupIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { capacity: { type: 'string' }, keep: { type: 'string' } }, allowPositionals: true })
  const [dir, name] = positionals
  if (dir === undefined || name === undefined || positionals.length > 2) throw new UsageError('label: POOL LABEL')
  const keep = values.keep === undefined ? undefined : Number(values.keep)
  if (keep !== undefined && (!Number.isInteger(keep) || keep < 1 || keep > 1000)) throw new UsageError(`--keep: 1 to 1000 chains, not ${values.keep ?? ''}`)
  const tape = await Pool.label(dir, name, { ...(values.capacity === undefined ? {} : { capacity: parseSizeText(values.capacity) }), ...(keep === undefined ? {} : { keepChains: keep }) })
  io.out(`labelled ${tape.label} in ${resolve(dir)} (${tape.capacity} bytes)\n`)
  return 0
}

async function pool(argv: string[], io: BackupIo): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { json: { type: 'boolean' } }, allowPositionals: true })
  const [dir] = positionals
  if (dir === undefined || positionals.length > 1) throw new UsageError('pool: POOL')
  const p = await Pool.open(dir)
  const index = await p.index()
  io.out(values.json === true ? `${JSON.stringify(index)}\n` : formatPool(p.dir, index))
  return 0
}

const SUBCOMMANDS: Readonly<Record<string, (argv: string[], io: BackupIo) => Promise<number>>> = {
  run,
  list,
  abort: (a, io) => control('abort', a, io),
  continue: (a, io) => control('continue', a, io),
  log,
  label,
  pool,
  verify: (a, io) => verifyCommand(a, io, { stateDirOf, ask, usage: (m) => new UsageError(m) }),
  restore: (a, io) => backupRestore(a, io, stateDirOf, (m) => new UsageError(m)),
}

export async function backup(argv: string[], io: BackupIo = PROCESS_IO): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || wantsHelp(argv)) {
    io.out(BACKUP_USAGE)
    return sub === undefined ? 2 : 0
  }
  const command = SUBCOMMANDS[sub]
  try {
    if (command === undefined) throw new UsageError(`unknown command "${sub}"`)
    return await command(rest, io)
  } catch (err) {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      io.err(`tsnfs backup: ${err.message}\n${BACKUP_USAGE}`)
      return 2
    }
    if (err instanceof DmaError) {
      io.err(`tsnfs backup: ${err.code}: ${err.message}\n`)
      return 1
    }
    throw err
  }
}
