/*
 * Registration with the host's own rpcbind (RFC 1833), for hosts where one
 * already owns port 111: every version of MOUNT and NFS on tcp and udp at
 * our port, and removal on close. Several servers share one rpcbind, so:
 *
 * - a mapping of our programs at another port whose server still answers
 *   there (a NULL call gets a reply) belongs to that server: we refuse to
 *   replace it (RPCBIND_IN_USE) unless told to (`replace`, with a warning);
 *   one whose port answers nothing is left from a server that died, and is
 *   replaced (SET refuses to overwrite, so it is unset first);
 * - on close we remove only mappings that still point at our port: a server
 *   that replaced ours keeps its own.
 *
 * Like libtirpc's rpcb_set, we speak rpcbind v3 over its local socket
 * (/run/rpcbind.sock): rpcbind learns our uid from the socket, root may
 * replace mappings any owner made, and UNSET can name one transport. Over
 * 127.0.0.1:111 (PMAP v2, the fallback) rpcbind only lets the owner of a
 * mapping remove it, and UNSET removes every transport of a version. The
 * current mappings are read with PMAP v2 DUMP over TCP in both cases.
 * Calls go through server/callback's stream caller (server/ may not import client/).
 */
import { IPPROTO_TCP, IPPROTO_UDP, PMAP_PORT, PMAP_PROG } from '../xdr/generated/portmap.ts'
import type { Codec } from '../xdr/runtime/codec.ts'
import { xdr_bool, xdr_void } from '../xdr/runtime/codec.ts'
import { PeerCallError } from './callback/errors.ts'
import { StreamCaller, describeEndpoint } from './callback/stream.ts'
import type { StreamEndpoint } from './callback/stream.ts'
import type { Logger } from './logger.ts'

const PMAP2 = PMAP_PROG.versions.PMAP_VERS
const DEFAULT_TIMEOUT_MS = 2000
/** A DUMP of a busy host's rpcbind can be long; 1 MiB as before the shared caller. */
const MAX_REPLY_BYTES = 1024 * 1024
export const RPCBIND_SOCKET = '/run/rpcbind.sock'

/** RFC 1833 §2.1: struct rpcb (rpcbind versions 3 and 4). */
interface Rpcb {
  prog: number
  vers: number
  netid: string
  /** Universal address: "h1.h2.h3.h4.p1.p2" for IPv4. */
  addr: string
  owner: string
}
const rpcb: Codec<Rpcb> = {
  encode(w, v) {
    w.u32(v.prog)
    w.u32(v.vers)
    w.string(v.netid)
    w.string(v.addr)
    w.string(v.owner)
  },
  decode(r) {
    return { prog: r.u32(), vers: r.u32(), netid: r.string(), addr: r.string(), owner: r.string() }
  },
}
const RPCBVERS3 = 3
const RPCBPROC_SET = { proc: 1, args: rpcb, res: xdr_bool }
const RPCBPROC_UNSET = { proc: 2, args: rpcb, res: xdr_bool }

export interface RpcbindTarget {
  /** The local socket tried first; '' skips it. */
  socketPath?: string
  host?: string
  port?: number
  timeoutMs?: number
}

export class RpcbindError extends Error {
  readonly code: 'RPCBIND_UNREACHABLE' | 'RPCBIND_REFUSED' | 'RPCBIND_BAD_REPLY' | 'RPCBIND_IN_USE'
  constructor(code: RpcbindError['code'], message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'RpcbindError'
    this.code = code
  }
}

type Endpoint = StreamEndpoint

/** One stream connection to rpcbind (server/callback's caller), its failures as RpcbindErrors. */
class RpcbindConnection {
  private readonly caller: StreamCaller

  private constructor(caller: StreamCaller) {
    this.caller = caller
  }

  static async open(at: Endpoint, timeoutMs: number): Promise<RpcbindConnection> {
    try {
      return new RpcbindConnection(await StreamCaller.open(at, { timeoutMs, maxReplyBytes: MAX_REPLY_BYTES }))
    } catch (err) {
      if (err instanceof PeerCallError && err.code === 'CALL_TIMEOUT') {
        throw new RpcbindError('RPCBIND_UNREACHABLE', `no rpcbind answers at ${describeEndpoint(at)} (timeout)`)
      }
      const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err
      throw new RpcbindError('RPCBIND_UNREACHABLE', `no rpcbind at ${describeEndpoint(at)}: ${(cause as Error).message}`, { cause })
    }
  }

  async call<A, R>(vers: number, p: { proc: number; args: Codec<A>; res: Codec<R> }, args: A, prog: number = PMAP_PROG.prog): Promise<R> {
    try {
      return await this.caller.call({ prog, vers, proc: p.proc }, p.args, args, p.res)
    } catch (err) {
      if (!(err instanceof PeerCallError)) throw err
      switch (err.code) {
        case 'CALL_RPC_ERROR':
          throw new RpcbindError('RPCBIND_REFUSED', `the call was answered ${String(err.status)}`, { cause: err })
        case 'CALL_BAD_REPLY':
        case 'CALL_REPLY_TOO_LARGE':
          throw new RpcbindError('RPCBIND_BAD_REPLY', `bad rpcbind reply: ${err.message}`, { cause: err })
        case 'CALL_TIMEOUT':
          throw new RpcbindError('RPCBIND_UNREACHABLE', `rpcbind did not answer within ${String(this.caller.timeoutMs)} ms`, { cause: err })
        default:
          throw new RpcbindError('RPCBIND_UNREACHABLE', 'connection to rpcbind closed', { cause: err })
      }
    }
  }

  close(): void {
    this.caller.close()
  }
}

/** The operations registration needs, over either protocol. */
interface Registrar {
  /** Whether UNSET can name one transport (rpcbind v3); PMAP v2 removes every transport of (prog, vers). */
  readonly perTransport: boolean
  unset(prog: number, vers: number, proto?: 'tcp' | 'udp'): Promise<boolean>
  set(prog: number, vers: number, proto: 'tcp' | 'udp', port: number): Promise<boolean>
}

function rpcbRegistrar(c: RpcbindConnection): Registrar {
  return {
    perTransport: true,
    // An empty netid removes the mapping on every transport (rpcbind map_unset).
    unset: (prog, vers, proto) => c.call(RPCBVERS3, RPCBPROC_UNSET, { prog, vers, netid: proto ?? '', addr: '', owner: '' }),
    set: (prog, vers, proto, port) =>
      c.call(RPCBVERS3, RPCBPROC_SET, { prog, vers, netid: proto, addr: `0.0.0.0.${String(port >> 8)}.${String(port & 0xff)}`, owner: '' }),
  }
}

function pmapRegistrar(c: RpcbindConnection): Registrar {
  return {
    perTransport: false,
    unset: (prog, vers) => c.call(PMAP2.vers, PMAP2.procs.PMAPPROC_UNSET, { prog, vers, prot: 0, port: 0 }),
    set: (prog, vers, proto, port) => c.call(PMAP2.vers, PMAP2.procs.PMAPPROC_SET, { prog, vers, prot: proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP, port }),
  }
}

/** The TCP endpoint of the portmapper (PMAP v2): DUMP, and the fallback registrar. */
function tcpEndpoint(t: RpcbindTarget): { host: string; port: number } {
  return { host: t.host ?? '127.0.0.1', port: t.port ?? PMAP_PORT }
}

/** The local socket with rpcbind v3 when it accepts us, else PMAP v2 over TCP. */
async function withRegistrar<T>(t: RpcbindTarget, fn: (r: Registrar) => Promise<T>): Promise<T> {
  const timeoutMs = t.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const socketPath = t.socketPath ?? RPCBIND_SOCKET
  let c: RpcbindConnection | null = null
  if (socketPath !== '') c = await RpcbindConnection.open({ path: socketPath }, timeoutMs).catch(() => null)
  const registrar = c === null ? null : rpcbRegistrar(c)
  if (c === null) c = await RpcbindConnection.open(tcpEndpoint(t), timeoutMs)
  try {
    return await fn(registrar ?? pmapRegistrar(c))
  } finally {
    c.close()
  }
}

/** Whether a portmapper answers PMAPPROC_NULL over TCP (127.0.0.1:111 by default). */
export async function rpcbindAnswers(t: RpcbindTarget = {}): Promise<boolean> {
  try {
    const c = await RpcbindConnection.open(tcpEndpoint(t), t.timeoutMs ?? DEFAULT_TIMEOUT_MS)
    try {
      await c.call(PMAP2.vers, { proc: 0, args: xdr_void, res: xdr_void }, undefined)
      return true
    } finally {
      c.close()
    }
  } catch {
    return false
  }
}

interface Mapping {
  prog: number
  vers: number
  proto: 'tcp' | 'udp'
  port: number
}

/** The portmapper's tcp and udp mappings of these programs (PMAP v2 DUMP). */
async function currentMappings(t: RpcbindTarget, progs: ReadonlySet<number>): Promise<Mapping[]> {
  const c = await RpcbindConnection.open(tcpEndpoint(t), t.timeoutMs ?? DEFAULT_TIMEOUT_MS)
  try {
    const list = await c.call(PMAP2.vers, PMAP2.procs.PMAPPROC_DUMP, undefined)
    const out: Mapping[] = []
    for (const { map: m } of list) {
      if (!progs.has(m.prog) || (m.prot !== IPPROTO_TCP && m.prot !== IPPROTO_UDP)) continue
      out.push({ prog: m.prog, vers: m.vers, proto: m.prot === IPPROTO_TCP ? 'tcp' : 'udp', port: m.port })
    }
    return out
  } finally {
    c.close()
  }
}

/**
 * Whether a server answers a NULL call of (prog, vers) over TCP at host:port.
 * Any reply counts (PROG_UNAVAIL too: something serves RPC there); a refused
 * connection, a close or silence until the timeout does not.
 */
export async function serverAnswers(host: string, port: number, prog: number, vers: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
  let c: RpcbindConnection
  try {
    c = await RpcbindConnection.open({ host, port }, timeoutMs)
  } catch {
    return false
  }
  try {
    await c.call(vers, { proc: 0, args: xdr_void, res: xdr_void }, undefined, prog)
    return true
  } catch (err) {
    return err instanceof RpcbindError && err.code === 'RPCBIND_REFUSED'
  } finally {
    c.close()
  }
}

export interface RpcbindRegistration {
  /** (prog, vers) pairs registered on tcp and udp. */
  readonly programs: readonly (readonly [number, number])[]
  readonly port: number
  /** Unset the mappings that still point at our port; errors are logged, not thrown. */
  unregister(): Promise<void>
}

export interface RegisterOptions {
  /** Take over mappings of a server that still answers at another port (default: refuse with RPCBIND_IN_USE). */
  replace?: boolean
}

export async function registerWithRpcbind(
  programs: Iterable<{ prog: number; versions: ReadonlyMap<number, unknown> }>,
  port: number,
  log: Logger,
  t: RpcbindTarget = {},
  opts: RegisterOptions = {},
): Promise<RpcbindRegistration> {
  const pairs: [number, number][] = []
  for (const p of programs) for (const vers of p.versions.keys()) pairs.push([p.prog, vers])
  const progs = new Set(pairs.map(([p]) => p))
  const ours = (m: Mapping): boolean => pairs.some(([p, v]) => p === m.prog && v === m.vers)
  const before = (await currentMappings(t, progs)).filter(ours)
  // Another port that answers belongs to a live server; one that does not is a dead server's leftover.
  const probeHost = t.host ?? '127.0.0.1'
  const live = new Map<number, boolean>()
  for (const m of before) {
    if (m.port === port || live.has(m.port)) continue
    live.set(m.port, await serverAnswers(probeHost, m.port, m.prog, m.vers, t.timeoutMs ?? DEFAULT_TIMEOUT_MS))
  }
  const taken = before.filter((m) => live.get(m.port) === true)
  if (taken.length > 0) {
    const where = [...new Set(taken.map((m) => m.port))].map(String).join(', ')
    const what = [...new Set(taken.map((m) => `${String(m.prog)}/${String(m.vers)}`))].join(', ')
    if (opts.replace !== true) {
      throw new RpcbindError(
        'RPCBIND_IN_USE',
        `the system rpcbind maps ${what} to port ${where}, where another server answers; not replacing its registration (--rpcbind-replace takes it over)`,
      )
    }
    log.warn({ programs: what, port: where }, 'replacing the rpcbind registration of another server that still answers')
  }
  const stale = before.filter((m) => m.port !== port && live.get(m.port) === false)
  if (stale.length > 0) log.info({ ports: [...new Set(stale.map((m) => m.port))] }, 'removing rpcbind mappings whose server no longer answers')
  // One call at a time: a connection matches replies to its single waiting call.
  const unsetAll = async (r: Registrar): Promise<void> => {
    for (const [prog, vers] of pairs) await r.unset(prog, vers)
  }
  await withRegistrar(t, async (r) => {
    for (const [prog, vers] of pairs) if (before.some((m) => m.prog === prog && m.vers === vers)) await r.unset(prog, vers)
    for (const [prog, vers] of pairs) {
      for (const proto of ['tcp', 'udp'] as const) {
        if (await r.set(prog, vers, proto, port)) continue
        await unsetAll(r).catch(() => undefined)
        throw new RpcbindError('RPCBIND_REFUSED', `rpcbind refused to register program ${String(prog)} version ${String(vers)} on ${proto} port ${String(port)} (a mapping owned by another user?)`)
      }
    }
  })
  log.info({ port, programs: pairs.map(([p, v]) => `${String(p)}/${String(v)}`) }, 'registered with the system rpcbind')
  return {
    programs: pairs,
    port,
    async unregister() {
      try {
        const now = (await currentMappings(t, progs)).filter(ours)
        await withRegistrar(t, async (r) => {
          for (const [prog, vers] of pairs) {
            const maps = now.filter((m) => m.prog === prog && m.vers === vers)
            const mine = maps.filter((m) => m.port === port)
            if (mine.length === 0) continue
            if (r.perTransport) {
              for (const m of mine) await r.unset(prog, vers, m.proto)
            } else if (mine.length === maps.length) {
              await r.unset(prog, vers)
            } else {
              log.warn({ prog, vers }, 'another server shares this version\'s rpcbind mappings; leaving them (PMAP v2 cannot remove one transport)')
            }
          }
        })
        log.info({ port }, 'unregistered from the system rpcbind')
      } catch (err) {
        log.warn({ err }, 'could not unregister from the system rpcbind')
      }
    },
  }
}
