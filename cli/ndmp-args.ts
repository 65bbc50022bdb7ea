/*
 * `tsnfs serve --ndmp [PORT] --ndmp-auth FILE [--ndmp-tape PATH]...`: the NDMP service's options
 * (server/ndmp). --ndmp without --ndmp-auth refuses to start: NDMP without credentials would
 * hand every export to anyone who connects.
 */
import { resolve } from 'node:path'
import type { NdmpOptions } from '../server/index.ts'
import { loadNdmpAuth } from '../server/ndmp/auth-file.ts'
import { NDMP_DEFAULT_PORT } from '../server/ndmp/server.ts'
import { packageVersion } from './help.ts'

export const NDMP_USAGE = `  --ndmp [PORT]         serve NDMP v4 and v3 (backups of the exports, tape devices) on PORT
                        (default ${NDMP_DEFAULT_PORT}); needs --ndmp-auth
  --ndmp-auth FILE      NDMP credentials: user:password lines (# comments); keep it 0600
  --ndmp-tape PATH      a tape device DMAs may open: a file, or a directory of tape files
                        (repeat for several)
`

export const NDMP_FLAGS = {
  ndmp: { type: 'string' },
  'ndmp-auth': { type: 'string' },
  'ndmp-tape': { type: 'string', multiple: true },
} as const

export interface NdmpFlagValues {
  ndmp?: string | undefined
  'ndmp-auth'?: string | undefined
  'ndmp-tape'?: string[] | undefined
}

/** The NDMP options, or undefined without --ndmp. Throws on a bad port, a missing or bad auth file. */
export function ndmpOf(values: NdmpFlagValues): NdmpOptions | undefined {
  if (values.ndmp === undefined) {
    if (values['ndmp-auth'] !== undefined || values['ndmp-tape'] !== undefined) throw new Error('--ndmp-auth and --ndmp-tape need --ndmp')
    return undefined
  }
  const port = Number(values.ndmp)
  if (values.ndmp.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--ndmp: not a port number: ${values.ndmp}`)
  const authFile = values['ndmp-auth']
  if (authFile === undefined) throw new Error('--ndmp needs --ndmp-auth FILE (user:password lines): NDMP is not served without credentials')
  const credentials = loadNdmpAuth(authFile)
  const tapes = (values['ndmp-tape'] ?? []).map((t) => {
    if (t === '') throw new Error('--ndmp-tape: an empty path')
    const path = resolve(t)
    return { name: path, path }
  })
  return { port, credentials, tapes, revision: packageVersion() }
}

/** `--ndmp` without a port means the default port (parseArgs has no optional values): supply it. */
export function withNdmpDefault(argv: readonly string[]): string[] {
  const out: string[] = []
  argv.forEach((a, i) => {
    out.push(a)
    const next = argv[i + 1]
    if (a === '--ndmp' && (next === undefined || next.startsWith('-'))) out.push(String(NDMP_DEFAULT_PORT))
  })
  return out
}
