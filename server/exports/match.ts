import { parseIp, prefixMatch } from './address.ts'
import { wildcardToRegExp } from './client-spec.ts'
import type { HostResolver } from './resolver.ts'
import type { ClientSpec, ExportClientOptions } from './schema.ts'

/** The peer of a request, as the RPC layer reports it. */
export interface Peer {
  address: string
  port: number
  family?: string
}

export type ClientCheck =
  | { ok: true; options: ExportClientOptions; /** the client spec that matched, as written */ client: string }
  | { ok: false; reason: 'not-allowed' | 'insecure-port' }

interface Compiled {
  spec: ClientSpec
  bytes?: Uint8Array
  prefix?: number
  regexp?: RegExp
}

/**
 * The client specs of one export, grouped for matching by the exports(5)
 * precedence rule (Linux mountd): "the first match from the above list takes
 * precedence, regardless of the order they appear on the export line": single
 * hosts (addresses and names), then networks, then wildcards, then `*`. Among
 * specs of the same kind the first one on the line wins.
 */
export class ClientMatcher {
  private readonly hosts: Compiled[] = []
  private readonly networks: Compiled[] = []
  private readonly wildcards: Compiled[] = []
  private readonly anyone: ClientSpec | undefined

  constructor(specs: readonly ClientSpec[]) {
    let anyone: ClientSpec | undefined
    for (const spec of specs) {
      const m = spec.match
      switch (m.kind) {
        case 'any':
          anyone ??= spec
          break
        case 'address':
          this.hosts.push({ spec, bytes: ipOrThrow(m.address) })
          break
        case 'hostname':
          this.hosts.push({ spec })
          break
        case 'network':
          this.networks.push({ spec, bytes: ipOrThrow(m.address), prefix: m.prefix })
          break
        case 'wildcard':
          this.wildcards.push({ spec, regexp: wildcardToRegExp(m.pattern) })
          break
      }
    }
    this.anyone = anyone
  }

  /** The client spec that applies to `address`, or null when none does. */
  async match(address: string, resolver: HostResolver): Promise<ClientSpec | null> {
    const peer = parseIp(address)
    if (peer === null) return null
    for (const c of this.hosts) {
      if (c.bytes !== undefined) {
        if (prefixMatch(c.bytes, peer, c.bytes.length * 8)) return c.spec
      } else if (c.spec.match.kind === 'hostname' && (await resolvesTo(c.spec.match.name, peer, resolver))) {
        return c.spec
      }
    }
    for (const c of this.networks) {
      if (c.bytes !== undefined && prefixMatch(c.bytes, peer, c.prefix ?? 0)) return c.spec
    }
    if (this.wildcards.length > 0) {
      const names = await confirmedNames(address, peer, resolver)
      for (const c of this.wildcards) {
        if (names.some((n) => c.regexp?.test(n) === true)) return c.spec
      }
    }
    return this.anyone ?? null
  }

  /** Matches the peer and applies `secure` (source port below 1024). */
  async check(peer: Peer, resolver: HostResolver): Promise<ClientCheck> {
    const spec = await this.match(peer.address, resolver)
    if (spec === null) return { ok: false, reason: 'not-allowed' }
    // exports(5) `secure`: only privileged source ports (a weak check that root on the client made the request).
    if (spec.options.secure && peer.port >= 1024) return { ok: false, reason: 'insecure-port' }
    return { ok: true, options: spec.options, client: spec.name }
  }
}

function ipOrThrow(text: string): Uint8Array {
  const b = parseIp(text)
  /* c8 ignore next -- the parser stores only valid canonical addresses */
  if (b === null) throw new Error(`bad canonical address ${text}`)
  return b
}

async function resolvesTo(name: string, peer: Uint8Array, resolver: HostResolver): Promise<boolean> {
  const addrs = await resolver.lookup(name)
  return addrs.some((a) => {
    const b = parseIp(a)
    return b !== null && prefixMatch(b, peer, b.length * 8)
  })
}

/**
 * The peer's reverse names that also resolve forward to the peer: a PTR
 * record alone is controlled by whoever owns the address block, so a name
 * that does not point back is not trusted (as mountd does).
 */
async function confirmedNames(address: string, peer: Uint8Array, resolver: HostResolver): Promise<string[]> {
  const out: string[] = []
  for (const raw of await resolver.reverse(address)) {
    const name = raw.toLowerCase().replace(/\.$/, '')
    if (await resolvesTo(name, peer, resolver)) out.push(name)
  }
  return out
}
