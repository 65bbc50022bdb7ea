/*
 * Where the cluster backend's metadata and data live, as an export line or
 * `tsnfs cluster --meta URL --data URL` gives it:
 *
 *   meta=postgres://user@host:port/db?sslmode=verify-full
 *   data=postgres | data=s3://bucket[/prefix]?endpoint=http://host:port&region=r&path_style=1
 *   credentials=/etc/tsnfs/cluster.cred
 *
 * Secrets never travel in these values: they show in `ps`, in logs and in
 * /etc/exports, readable by anyone. A password in the meta URL or keys in the
 * data URL are refused; they come from the credentials file (lines
 * `meta_password=…`, `s3_access_key=…`, `s3_secret_key=…`, `#` comments) or
 * the environment (PGPASSWORD, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
 * the file first.
 */
import { readFile, stat } from 'node:fs/promises'

export class ClusterConfigError extends Error {
  readonly code = 'CLUSTER_CONFIG'
  constructor(message: string) {
    super(message)
    this.name = 'ClusterConfigError'
  }
}

export interface S3Location {
  kind: 's3'
  bucket: string
  /** Key prefix inside the bucket ("" or ending in "/"). */
  prefix: string
  endpoint?: string
  region: string
  pathStyle: boolean
}

export type DataLocation = { kind: 'postgres' } | S3Location

export interface ClusterConfig {
  /** The metadata database's URL, without a password. */
  meta: string
  data: DataLocation
  /** The credentials file, when one was named. */
  credentials?: string
}

export interface ClusterSecrets {
  metaPassword?: string
  s3AccessKey?: string
  s3SecretKey?: string
}

/** Longest option value we take (a URL with a few query parameters). */
const MAX_VALUE = 4096
/** A credentials file holds three short lines; anything bigger is not one. */
const MAX_CREDENTIALS_FILE = 64 * 1024
/** S3 bucket names: 3..63 lowercase letters, digits, dots, hyphens (S3 bucket naming rules). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

export function parseClusterConfig(input: { meta: string | undefined; data: string | undefined; credentials?: string | undefined }): ClusterConfig {
  if (input.meta === undefined || input.meta === '') throw new ClusterConfigError('cluster backend: meta=postgres://user@host:port/db is required')
  if (input.data === undefined || input.data === '') throw new ClusterConfigError('cluster backend: data=postgres or data=s3://bucket?endpoint=… is required')
  const out: ClusterConfig = { meta: parseMeta(input.meta), data: parseData(input.data) }
  if (input.credentials !== undefined && input.credentials !== '') {
    if (!input.credentials.startsWith('/')) throw new ClusterConfigError(`credentials=${input.credentials}: the credentials file must be an absolute path`)
    out.credentials = input.credentials
  }
  return out
}

function parseMeta(value: string): string {
  if (value.length > MAX_VALUE) throw new ClusterConfigError(`meta: URL of ${value.length} characters (at most ${MAX_VALUE})`)
  let u: URL
  try {
    u = new URL(value)
  } catch {
    throw new ClusterConfigError(`meta=${value}: not a URL (postgres://user@host:port/db)`)
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new ClusterConfigError(`meta=${value}: the scheme must be postgres:// (PostgreSQL, CockroachDB, YugabyteDB)`)
  if (u.password !== '' || u.searchParams.has('password')) {
    throw new ClusterConfigError('meta: the URL holds a password; put the password in the credentials file or PGPASSWORD')
  }
  if (u.pathname === '' || u.pathname === '/') throw new ClusterConfigError(`meta=${value}: name the database (postgres://user@host:port/db)`)
  return value
}

function parseData(value: string): DataLocation {
  if (value === 'postgres') return { kind: 'postgres' }
  if (value.length > MAX_VALUE) throw new ClusterConfigError(`data: URL of ${value.length} characters (at most ${MAX_VALUE})`)
  let u: URL
  try {
    u = new URL(value)
  } catch {
    throw new ClusterConfigError(`data=${value}: not postgres or an s3://bucket URL`)
  }
  if (u.protocol !== 's3:') throw new ClusterConfigError(`data=${value}: not postgres or an s3://bucket URL`)
  if (u.username !== '' || u.password !== '') {
    throw new ClusterConfigError('data: the URL holds keys; put them in the credentials file or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY')
  }
  const bucket = u.hostname
  if (!BUCKET.test(bucket)) throw new ClusterConfigError(`data=${value}: "${bucket}" is not an S3 bucket name (3..63 of a-z 0-9 . -)`)
  let prefix = decodeURIComponent(u.pathname.replace(/^\/+/, ''))
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/'
  const out: S3Location = { kind: 's3', bucket, prefix, region: 'us-east-1', pathStyle: false }
  let pathStyle: boolean | undefined
  for (const [k, v] of u.searchParams) {
    switch (k) {
      case 'endpoint': {
        let e: URL
        try {
          e = new URL(v)
        } catch {
          throw new ClusterConfigError(`data: endpoint=${v} is not a URL (http://host:port)`)
        }
        if (e.protocol !== 'http:' && e.protocol !== 'https:') throw new ClusterConfigError(`data: endpoint=${v} must be http:// or https://`)
        if (e.username !== '' || e.password !== '') throw new ClusterConfigError('data: the endpoint holds keys; put them in the credentials file or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY')
        out.endpoint = v
        break
      }
      case 'region':
        if (!/^[a-z0-9-]{1,64}$/.test(v)) throw new ClusterConfigError(`data: region=${v} is not a region name`)
        out.region = v
        break
      case 'path_style':
        if (v !== '0' && v !== '1') throw new ClusterConfigError(`data: path_style=${v} (0 or 1)`)
        pathStyle = v === '1'
        break
      case 'access_key':
      case 'secret_key':
      case 'access_key_id':
      case 'secret_access_key':
        throw new ClusterConfigError('data: the URL holds keys; put them in the credentials file or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY')
      default:
        throw new ClusterConfigError(`data: unknown parameter ${k} (endpoint, region, path_style)`)
    }
  }
  // A gateway of our own (radosgw, MinIO) rarely has wildcard DNS for virtual-host buckets.
  out.pathStyle = pathStyle ?? out.endpoint !== undefined
  return out
}

const SECRET_KEYS: Record<string, keyof ClusterSecrets> = {
  meta_password: 'metaPassword',
  s3_access_key: 's3AccessKey',
  s3_secret_key: 's3SecretKey',
}

/** The credentials file's lines; `name=value`, `#` comments and blank lines. Exact errors name the line. */
export function parseCredentials(text: string, file: string): ClusterSecrets {
  const out: ClusterSecrets = {}
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '')
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq < 0) throw new ClusterConfigError(`${file}:${i + 1}: expected name=value`)
    const name = line.slice(0, eq).trim()
    const field = SECRET_KEYS[name]
    if (field === undefined) throw new ClusterConfigError(`${file}:${i + 1}: unknown name ${name} (meta_password, s3_access_key, s3_secret_key)`)
    if (out[field] !== undefined) throw new ClusterConfigError(`${file}:${i + 1}: ${name} given twice`)
    // The value is everything after "=" (a password may hold "=", "#" or spaces inside, not at its ends).
    out[field] = line.slice(eq + 1).trim()
  }
  return out
}

/**
 * The secrets for `cfg`: the credentials file's values, then the
 * environment's for what the file does not give. A file that others can
 * read gets a warning (it is still used: refusing would take a server down
 * over a chmod).
 */
export async function loadSecrets(cfg: ClusterConfig, env: Readonly<Record<string, string | undefined>>, warn: (msg: string) => void = () => {}): Promise<ClusterSecrets> {
  let fromFile: ClusterSecrets = {}
  if (cfg.credentials !== undefined) {
    const file = cfg.credentials
    let st
    try {
      st = await stat(file)
    } catch (err) {
      throw new ClusterConfigError(`credentials=${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    if (!st.isFile()) throw new ClusterConfigError(`credentials=${file}: not a regular file`)
    if (st.size > MAX_CREDENTIALS_FILE) throw new ClusterConfigError(`credentials=${file}: ${st.size} bytes (at most ${MAX_CREDENTIALS_FILE})`)
    if ((st.mode & 0o077) !== 0) warn(`credentials=${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`)
    const buf = await readFile(file)
    if (buf.length > MAX_CREDENTIALS_FILE) throw new ClusterConfigError(`credentials=${file}: over ${MAX_CREDENTIALS_FILE} bytes`)
    fromFile = parseCredentials(buf.toString('utf8'), file)
  }
  const out: ClusterSecrets = { ...fromFile }
  const pick = (field: keyof ClusterSecrets, name: string): void => {
    const v = env[name]
    if (out[field] === undefined && v !== undefined && v !== '') out[field] = v
  }
  pick('metaPassword', 'PGPASSWORD')
  pick('s3AccessKey', 'AWS_ACCESS_KEY_ID')
  pick('s3SecretKey', 'AWS_SECRET_ACCESS_KEY')
  if ((out.s3AccessKey === undefined) !== (out.s3SecretKey === undefined)) {
    throw new ClusterConfigError('cluster backend: an S3 access key without its secret key (or the reverse); give both')
  }
  return out
}

/** The configuration for logs and `tsnfs cluster status`: no secrets, since none are in it. */
export function describeConfig(cfg: ClusterConfig): string {
  const d = cfg.data
  const data = d.kind === 'postgres' ? 'postgres' : `s3://${d.bucket}/${d.prefix}${d.endpoint === undefined ? '' : ` at ${d.endpoint}`}`
  return `meta ${cfg.meta}, data ${data}`
}
