/*
 * The schedule file: one job per line,
 *   MIN HOUR DOM MONTH DOW  NAME  EXPORT  POOL  level=N|levels=RULE  [exclude=GLOB]... [tape=HOST:PORT]
 *   [verify=restore|read] [compress=gzip|brotli]
 * `#` starts a comment; blank lines are skipped. NAME is the job's name (unique in the file);
 * EXPORT as in export-spec.ts; POOL a pool directory (relative to the schedule file's folder).
 * tape= names a separate NDMP tape agent (a three-way backup); without it the export's agent
 * writes the tape itself. verify=restore restores each backup that ends done into a scratch
 * directory and checks every file's recorded SHA-256 there; verify=read rereads its stream only.
 * A line that does not parse is an error naming its line number.
 */
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { DmaError } from '../errors.ts'
import type { CronTime } from './cron.ts'
import { CronSyntaxError, parseCron } from './cron.ts'
import type { ExportSpec } from './export-spec.ts'
import { parseExport } from './export-spec.ts'
import type { Compression } from '../../backup/compress.ts'
import type { VerifyMethod } from '../jobs/verify.ts'
import type { LevelRule } from './levels.ts'
import { parseLevelRule } from './levels.ts'

export interface ScheduleEntry {
  readonly name: string
  readonly time: CronTime
  readonly export: ExportSpec
  readonly pool: string
  readonly levels: LevelRule
  readonly exclude: readonly string[]
  /** A separate tape agent, HOST:PORT (three-way), or undefined for the export's own. */
  readonly tapeAgent?: string
  /** Verify each backup that ends done (dma/jobs/verify*.ts). */
  readonly verify?: VerifyMethod
  /** The data agent compresses the stream (env COMPRESS). */
  readonly compress?: Compression
  readonly line: number
}

/** A schedule file is ours to read, but still bounded. */
const MAX_SCHEDULE_BYTES = 1024 * 1024
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

function entryOf(fields: string[], line: number, base: string): ScheduleEntry {
  if (fields.length < 9) throw new Error(`${fields.length} fields; a job is MIN HOUR DOM MONTH DOW NAME EXPORT POOL level=N|levels=RULE`)
  const time = parseCron(fields.slice(0, 5))
  const [name = '', exportText = '', poolText = '', ...options] = fields.slice(5)
  if (!NAME.test(name)) throw new Error(`"${name}" is not a job name (1-64 of A-Z a-z 0-9 . _ -, not starting with . _ -)`)
  const exp = parseExport(exportText, base)
  const pool = isAbsolute(poolText) ? poolText : resolve(base, poolText)
  let levels: LevelRule | undefined
  const exclude: string[] = []
  let tapeAgent: string | undefined
  let verify: VerifyMethod | undefined
  let compress: Compression | undefined
  for (const opt of options) {
    const eq = opt.indexOf('=')
    const key = eq < 0 ? opt : opt.slice(0, eq)
    const val = eq < 0 ? '' : opt.slice(eq + 1)
    if (key === 'level' || key === 'levels') {
      if (levels !== undefined) throw new Error('two level rules')
      levels = parseLevelRule(key, val)
    } else if (key === 'exclude' && val !== '') {
      exclude.push(val)
    } else if (key === 'tape' && /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(val)) {
      tapeAgent = val
    } else if (key === 'verify' && (val === 'restore' || val === 'read')) {
      verify = val
    } else if (key === 'compress' && (val === 'gzip' || val === 'brotli')) {
      compress = val
    } else {
      throw new Error(`"${opt}" is not an option (level=, levels=, exclude=, tape=HOST:PORT, verify=restore|read, compress=gzip|brotli)`)
    }
  }
  if (levels === undefined) throw new Error('no level rule (level=N or levels=RULE)')
  return { name, time, export: exp, pool, levels, exclude, ...(tapeAgent === undefined ? {} : { tapeAgent }), ...(verify === undefined ? {} : { verify }), ...(compress === undefined ? {} : { compress }), line }
}

/** Parses schedule text; `base` is the folder relative pools and file: exports are taken from. */
export function parseSchedule(text: string, source: string, base: string): ScheduleEntry[] {
  const out: ScheduleEntry[] = []
  const names = new Map<string, number>()
  text.split('\n').forEach((raw, i) => {
    const line = i + 1
    const body = raw.replace(/#.*$/, '').trim()
    if (body === '') return
    let entry: ScheduleEntry
    try {
      entry = entryOf(body.split(/\s+/), line, base)
    } catch (err) {
      const why = err instanceof CronSyntaxError || err instanceof DmaError || err instanceof Error ? err.message : String(err)
      throw new DmaError('DMA_SCHEDULE_SYNTAX', `${source}:${line}: ${why}`)
    }
    const seen = names.get(entry.name)
    if (seen !== undefined) throw new DmaError('DMA_SCHEDULE_SYNTAX', `${source}:${line}: job ${entry.name} is also on line ${seen}`)
    names.set(entry.name, line)
    out.push(entry)
  })
  return out
}

export async function loadSchedule(path: string): Promise<ScheduleEntry[]> {
  const buf = await readFile(path)
  if (buf.length > MAX_SCHEDULE_BYTES) throw new DmaError('DMA_SCHEDULE_SYNTAX', `${path}: over ${MAX_SCHEDULE_BYTES} bytes`)
  return parseSchedule(buf.toString('utf8'), path, dirname(resolve(path)))
}
