/*
 * The types RPC programs are written against. A program version is defined
 * from a generated procedure table (xdr/runtime/program.ts) plus one handler
 * per procedure; the handler types come from the table, so a missing or
 * misspelled procedure, or a wrong argument or result type, is a compile error.
 */
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { ArgsOf, ProgramDef, ResOf, VersionDef } from '../../xdr/runtime/program.ts'
import type { Logger } from '../logger.ts'
import type { Credentials } from './auth.ts'

export interface Peer {
  address: string
  port: number
  family: 'IPv4' | 'IPv6'
}

export type Transport = 'tcp' | 'udp'

export interface CallContext {
  xid: number
  prog: number
  vers: number
  proc: number
  cred: Credentials
  peer: Peer
  transport: Transport
  log: Logger
  /** Fires when the connection closes (TCP) or the server closes (UDP). */
  signal: AbortSignal
}

export type Handler<P> = (args: ArgsOf<P>, call: CallContext) => ResOf<P> | Promise<ResOf<P>>

export type HandlersOf<V extends VersionDef> = { readonly [K in keyof V['procs']]: Handler<V['procs'][K]> }

export interface DefineOptions<V extends VersionDef> {
  /** Procedures whose replies the duplicate request cache keeps and replays (RFC 1813 §4.5). */
  nonIdempotent?: readonly (keyof V['procs'] & string)[]
}

/** One procedure after type erasure, as the dispatcher sees it. */
export interface RegisteredProc {
  readonly name: string
  readonly proc: number
  readonly args: Codec<unknown>
  readonly res: Codec<unknown>
  readonly nonIdempotent: boolean
  readonly handler: (args: unknown, call: CallContext) => unknown
  /**
   * RpcStats.calls' key, `${prog}/${vers}/${proc}`, made once here: a string built per call had
   * to be hashed and looked up in the string table each time (the hottest line of dispatch in
   * the server's profile, bench/README.md session 38).
   */
  readonly statsKey: string
}

export interface RegisteredVersion {
  readonly prog: number
  readonly programName: string
  readonly vers: number
  readonly name: string
  readonly procs: ReadonlyMap<number, RegisteredProc>
}

export interface RpcProgram {
  readonly prog: number
  readonly name: string
  readonly versions: ReadonlyMap<number, RegisteredVersion>
  /** Lowest and highest registered version, for PROG_MISMATCH. */
  readonly low: number
  readonly high: number
}

/** One version of a program: the table's procedures bound to their handlers. */
export function defineVersion<P extends ProgramDef, K extends keyof P['versions'] & string>(
  program: P,
  versionName: K,
  handlers: HandlersOf<P['versions'][K]>,
  opts: DefineOptions<P['versions'][K]> = {},
): RegisteredVersion {
  const version: VersionDef | undefined = program.versions[versionName]
  if (version === undefined) throw new TypeError(`${program.name} has no version ${versionName}`)
  const nonIdempotent = new Set<string>(opts.nonIdempotent ?? [])
  const byName = handlers as unknown as Readonly<Record<string, (args: unknown, call: CallContext) => unknown>>
  const procs = new Map<number, RegisteredProc>()
  for (const [name, def] of Object.entries(version.procs)) {
    const handler = byName[name]
    if (typeof handler !== 'function') throw new TypeError(`${program.name}.${versionName}: no handler for ${name}`)
    procs.set(def.proc, {
      name,
      proc: def.proc,
      args: def.args as Codec<unknown>,
      res: def.res as Codec<unknown>,
      nonIdempotent: nonIdempotent.has(name),
      handler,
      statsKey: `${program.prog}/${version.vers}/${def.proc}`,
    })
  }
  return { prog: program.prog, programName: program.name, vers: version.vers, name: versionName, procs }
}

/** A program with one version (the common case). */
export function defineProgram<P extends ProgramDef, K extends keyof P['versions'] & string>(
  program: P,
  versionName: K,
  handlers: HandlersOf<P['versions'][K]>,
  opts: DefineOptions<P['versions'][K]> = {},
): RpcProgram {
  return combineVersions(defineVersion(program, versionName, handlers, opts))
}

/** A program serving several versions (MOUNT v1 and v3), all of the same program number. */
export function combineVersions(...versions: RegisteredVersion[]): RpcProgram {
  const first = versions[0]
  if (first === undefined) throw new TypeError('combineVersions: no versions')
  const map = new Map<number, RegisteredVersion>()
  for (const v of versions) {
    if (v.prog !== first.prog) throw new TypeError(`combineVersions: program ${v.prog} mixed with ${first.prog}`)
    if (map.has(v.vers)) throw new TypeError(`combineVersions: version ${v.vers} registered twice`)
    map.set(v.vers, v)
  }
  const numbers = [...map.keys()]
  return { prog: first.prog, name: first.programName, versions: map, low: Math.min(...numbers), high: Math.max(...numbers) }
}
