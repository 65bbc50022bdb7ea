/*
 * The environment a DMA passes with DATA_START_BACKUP / DATA_START_RECOVER (draft-skardal-ndmpv4
 * §3.7.2: "env: parameters that may modify the backup"), read the way NDMP servers commonly read
 * them: FILESYSTEM, LEVEL, UPDATE, HIST, TYPE, DIRECT, EXCLUDE; for a recover also PREFIX
 * (ndmjob's -C) and OVERWRITE. COMPRESS=gzip|brotli (or COMPRESSION=) compresses the backup
 * stream (node:zlib; a recover recognises it by itself): NDMP names no such variable, and the
 * servers whose lists we read (NetApp, PowerScale, FluidFS) have none either (they leave it to the
 * tape drive's hardware compression), so the name is ours. Anything else is kept (DATA_GET_ENV hands it back) and named in a
 * log line, never an error: DMAs send vendor variables freely (ndmjob adds USER, FILES, RULES).
 */
import type { Compression } from '../../../backup/compress.ts'

/** One name=value pair as the wire carries it (ndmp4_pval / ndmp3_pval). */
export interface Pval {
  name: string
  value: string
}

/** A bad value: the handler answers NDMP_ILLEGAL_ARGS_ERR and posts `message` as a LOG_MESSAGE. */
export class DataEnvError extends Error {
  readonly code = 'NDMP_ILLEGAL_ARGS_ERR'
  constructor(message: string) {
    super(message)
    this.name = 'DataEnvError'
  }
}

/** How file history goes out: dump's node form (FH_ADD_DIR + FH_ADD_NODE) or tar's path form (FH_ADD_FILE). */
export type HistoryForm = 'node' | 'file'

export interface BackupEnv {
  filesystem: string
  level: number
  update: boolean
  hist: boolean
  histForm: HistoryForm
  direct: boolean
  exclude: string[]
  /** COMPRESS=gzip|brotli: the stream is compressed before it goes to the mover; null: plain tar. */
  compress: Compression | null
  /** Names we did not use, for one log line. */
  ignored: string[]
}

export interface RecoverEnv {
  /** Where a full restore goes (ndmjob -C), or null: FILESYSTEM (the original place). */
  prefix: string | null
  filesystem: string | null
  hist: boolean
  histForm: HistoryForm
  direct: boolean
  overwrite: boolean
  /**
   * COMPRESS as the DMA says the backup was made (our DMA from its job; ndmjob hands back the env
   * DATA_GET_ENV gave it, where our backups always put COMPRESS, `none` included). A recover
   * inflates by what it reads either way; this lets a direct access restore, whose offsets are the
   * plain stream's, be refused before any read. 'none': the DMA says plain tar; null: it did not
   * say, so a direct access restore first looks at the stream's first block (recover-run.ts).
   */
  compress: Compression | 'none' | null
  ignored: string[]
}

/** Caps from outside: the env list and each string (the codec caps the message as a whole). */
export const MAX_ENV_ENTRIES = 1024
export const MAX_ENV_VALUE = 4096

const KNOWN_BACKUP = new Set(['FILESYSTEM', 'LEVEL', 'UPDATE', 'HIST', 'HIST_TYPE', 'TYPE', 'DIRECT', 'EXCLUDE', 'COMPRESS', 'COMPRESSION'])
// A recover given the backup's env back (ndmjob's DE lines) carries COMPRESS too: the stream says it by itself.
const KNOWN_RECOVER = new Set(['PREFIX', 'FILESYSTEM', 'HIST', 'HIST_TYPE', 'TYPE', 'DIRECT', 'OVERWRITE', 'LEVEL', 'UPDATE', 'EXCLUDE', 'COMPRESS', 'COMPRESSION'])

function checkSizes(env: readonly Pval[]): void {
  if (env.length > MAX_ENV_ENTRIES) throw new DataEnvError(`env has ${env.length} entries, more than ${MAX_ENV_ENTRIES}`)
  for (const p of env) {
    if (p.name.length > MAX_ENV_VALUE || p.value.length > MAX_ENV_VALUE) {
      throw new DataEnvError(`env ${p.name.slice(0, 64)}: longer than ${MAX_ENV_VALUE} characters`)
    }
  }
}

/** The last value given for `name` (a DMA that repeats a variable means the later one), or undefined. */
function last(env: readonly Pval[], name: string): string | undefined {
  let found: string | undefined
  for (const p of env) if (p.name.toUpperCase() === name) found = p.value
  return found
}

/** y/yes/t/true/1 and n/no/f/false/0, any case; anything else is an error naming the variable. */
export function parseFlag(name: string, value: string | undefined, dflt: boolean): boolean {
  if (value === undefined || value === '') return dflt
  const v = value.trim().toLowerCase()
  if (v === 'y' || v === 'yes' || v === 't' || v === 'true' || v === '1') return true
  if (v === 'n' || v === 'no' || v === 'f' || v === 'false' || v === '0') return false
  throw new DataEnvError(`${name}=${value}: expected y or n`)
}

function parseHistForm(value: string | undefined): HistoryForm {
  if (value === undefined || value === '') return 'node'
  const v = value.trim().toLowerCase()
  if (v === 'node' || v === 'dir') return 'node'
  if (v === 'file' || v === 'path') return 'file'
  throw new DataEnvError(`HIST_TYPE=${value}: expected node or file`)
}

function ignoredNames(env: readonly Pval[], known: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (const p of env) if (!known.has(p.name.toUpperCase()) && !out.includes(p.name)) out.push(p.name)
  return out
}

/** gzip, brotli (br), or none (n, no, none, off, empty); y alone means gzip, the common default. */
function parseCompress(env: readonly Pval[]): Compression | null {
  const name = last(env, 'COMPRESS') !== undefined ? 'COMPRESS' : 'COMPRESSION'
  const value = last(env, name)
  if (value === undefined) return null
  const v = value.trim().toLowerCase()
  if (v === 'gzip' || v === 'gz' || v === 'y' || v === 'yes') return 'gzip'
  if (v === 'brotli' || v === 'br') return 'brotli'
  if (v === '' || v === 'n' || v === 'no' || v === 'none' || v === 'off') return null
  throw new DataEnvError(`${name}=${value}: expected gzip, brotli or none`)
}

/** EXCLUDE may repeat (ndmjob sends one per -e) and each may hold comma-separated globs. */
function excludes(env: readonly Pval[]): string[] {
  const out: string[] = []
  for (const p of env) {
    if (p.name.toUpperCase() !== 'EXCLUDE') continue
    for (const g of p.value.split(',')) {
      const glob = g.trim()
      if (glob !== '') out.push(glob)
    }
  }
  return out
}

export function parseBackupEnv(env: readonly Pval[]): BackupEnv {
  checkSizes(env)
  const filesystem = last(env, 'FILESYSTEM')
  if (filesystem === undefined || filesystem === '') throw new DataEnvError('FILESYSTEM is not set: name the export to back up')
  const levelText = last(env, 'LEVEL')
  let level = 0
  if (levelText !== undefined && levelText.trim() !== '') {
    if (!/^\s*[0-9]\s*$/.test(levelText)) throw new DataEnvError(`LEVEL=${levelText}: expected 0 to 9`)
    level = Number(levelText.trim())
  }
  return {
    filesystem,
    level,
    update: parseFlag('UPDATE', last(env, 'UPDATE'), false),
    hist: parseFlag('HIST', last(env, 'HIST'), false),
    histForm: parseHistForm(last(env, 'HIST_TYPE')),
    direct: parseFlag('DIRECT', last(env, 'DIRECT'), false),
    exclude: excludes(env),
    compress: parseCompress(env),
    ignored: ignoredNames(env, KNOWN_BACKUP),
  }
}

export function parseRecoverEnv(env: readonly Pval[]): RecoverEnv {
  checkSizes(env)
  const prefix = last(env, 'PREFIX')
  const filesystem = last(env, 'FILESYSTEM')
  return {
    prefix: prefix === undefined || prefix === '' ? null : prefix,
    filesystem: filesystem === undefined || filesystem === '' ? null : filesystem,
    hist: parseFlag('HIST', last(env, 'HIST'), false),
    histForm: parseHistForm(last(env, 'HIST_TYPE')),
    // Any DIRECT=y asks for direct access: a DMA that hands the backup's env back (ndmjob's DE
    // index lines, where DIRECT=n records what the backup was sent) must not cancel its own -E DIRECT=y.
    direct: env.some((p) => p.name.toUpperCase() === 'DIRECT' && parseFlag('DIRECT', p.value, false)),
    overwrite: parseFlag('OVERWRITE', last(env, 'OVERWRITE'), false),
    compress: parseCompress(env) ?? ((last(env, 'COMPRESS') ?? last(env, 'COMPRESSION')) === undefined ? null : 'none'),
    ignored: ignoredNames(env, KNOWN_RECOVER),
  }
}

/**
 * The env DATA_GET_ENV answers after a backup: what the DMA sent, with our values written over
 * theirs (the effective LEVEL, HIST, ...) and what we add (TYPE, BASE_LEVEL, SNAPSHOT, ...), so
 * a DMA that keeps it (ndmjob's "DE" index lines) can hand it back to a recover.
 */
export function resultEnv(sent: readonly Pval[], ours: Readonly<Record<string, string>>): Pval[] {
  const out: Pval[] = []
  const overridden = new Set(Object.keys(ours).map((k) => k.toUpperCase()))
  for (const p of sent) if (!overridden.has(p.name.toUpperCase())) out.push({ name: p.name, value: p.value })
  for (const [name, value] of Object.entries(ours)) out.push({ name, value })
  return out
}
