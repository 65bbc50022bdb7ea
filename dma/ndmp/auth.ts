/*
 * The DMA's NDMP credentials: STATE/ndmp-auth, one agent a line,
 *   HOST[:PORT]|*  USER  PASSWORD  [text|md5]  [v3|v4]
 * (`#` comments). The first line that matches an agent is used; MD5 (draft-skardal-ndmpv4-04
 * §3.3) is the default, since text sends the password in clear. No file or no line: the agent is
 * asked without credentials, and its refusal (NOT_AUTHORIZED) fails the job. v3 or v4 opens that
 * protocol version with the agent; without it, the version the agent offers (4 at most).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { NdmpAuth } from '../../client/ndmp/connection.ts'
import { DmaError, isErrno } from '../errors.ts'
import type { NdmpVersion } from './v3.ts'

export const NDMP_AUTH_FILE = 'ndmp-auth'

export interface NdmpCredential {
  host: string
  port: number | null
  auth: NdmpAuth
  version?: NdmpVersion
}

export function parseNdmpAuth(text: string, source: string): NdmpCredential[] {
  const out: NdmpCredential[] = []
  text.split('\n').forEach((raw, i) => {
    const body = raw.replace(/#.*$/, '').trim()
    if (body === '') return
    const [agent = '', user, password, ...more] = body.split(/\s+/)
    const type = more[0] === 'text' || more[0] === 'md5' ? more.shift() : 'md5'
    const v = more[0] === 'v3' || more[0] === 'v4' ? more.shift() : undefined
    const m = /^(\*|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(agent)
    if (m === null || user === undefined || password === undefined || (type !== 'text' && type !== 'md5') || more.length > 0) {
      throw new DmaError('DMA_SCHEDULE_SYNTAX', `${source}:${i + 1}: a line is HOST[:PORT]|* USER PASSWORD [text|md5] [v3|v4]`)
    }
    out.push({ host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port: m[2] === undefined ? null : Number(m[2]), auth: { type, user, password }, ...(v === undefined ? {} : { version: v === 'v3' ? 3 : 4 }) })
  })
  return out
}

/** The credentials for the agent at host:port, or null. */
export async function ndmpAuthFor(stateDir: string, host: string, port: number): Promise<NdmpAuth | null> {
  return (await ndmpLoginFor(stateDir, host, port)).auth
}

/** The credentials and the protocol version (if its line names one) for the agent at host:port. */
export async function ndmpLoginFor(stateDir: string, host: string, port: number): Promise<{ auth: NdmpAuth | null; version?: NdmpVersion }> {
  let text: string
  try {
    text = await readFile(join(stateDir, NDMP_AUTH_FILE), 'utf8')
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return { auth: null }
    throw err
  }
  const hit = parseNdmpAuth(text, join(stateDir, NDMP_AUTH_FILE)).find((c) => (c.host === '*' || c.host === host) && (c.port === null || c.port === port))
  if (hit === undefined) return { auth: null }
  return { auth: hit.auth, ...(hit.version === undefined ? {} : { version: hit.version }) }
}
