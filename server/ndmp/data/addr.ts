/*
 * Data connection addresses between our DataAddr and the wire's: v4 ndmp4_addr (TCP is a list of
 * tcp_addr, each with an addr_env) and v3 ndmp3_addr (one tcp_addr). IPv4 travels as a u_long.
 * Before any connection GET_STATE answers LOCAL with no address, as the NDMP SDK does.
 */
import type * as v3 from '../../../xdr/generated/ndmp3.ts'
import type * as v4 from '../../../xdr/generated/ndmp4.ts'
import { ipv4ToU32, u32ToIpv4 } from '../mover/connection.ts'
import type { TcpAddr } from '../mover/connection.ts'
import type { DataAddr } from './state.ts'

export function addrToV4(a: DataAddr, all: readonly TcpAddr[] = []): v4.ndmp4_addr {
  if (a.type !== 'tcp') return { addr_type: 0 }
  const list = all.length > 0 ? all : [{ host: a.host, port: a.port }]
  return { addr_type: 1, tcp_addr: list.map((t) => ({ ip_addr: ipv4ToU32(t.host), port: t.port, addr_env: [] })) }
}

export function addrToV3(a: DataAddr): v3.ndmp3_addr {
  if (a.type !== 'tcp') return { addr_type: 0 }
  return { addr_type: 1, tcp_addr: { ip_addr: ipv4ToU32(a.host), port: a.port } }
}

/** What DATA_CONNECT was given: LOCAL, a list of TCP addresses, or something we cannot use. */
export type ConnectTarget = { type: 'local' } | { type: 'tcp'; addrs: TcpAddr[] } | { type: 'bad'; why: string }

export function connectTargetV4(a: v4.ndmp4_addr): ConnectTarget {
  if (a.addr_type === 0) return { type: 'local' }
  if (a.addr_type === 1) {
    if (a.tcp_addr.length === 0) return { type: 'bad', why: 'an empty TCP address list' }
    return { type: 'tcp', addrs: a.tcp_addr.slice(0, 16).map((t) => ({ host: u32ToIpv4(t.ip_addr), port: t.port })) }
  }
  return { type: 'bad', why: `address type ${String(a.addr_type)}` }
}

export function connectTargetV3(a: v3.ndmp3_addr): ConnectTarget {
  if (a.addr_type === 0) return { type: 'local' }
  if (a.addr_type === 1) return { type: 'tcp', addrs: [{ host: u32ToIpv4(a.tcp_addr.ip_addr), port: a.tcp_addr.port }] }
  return { type: 'bad', why: `address type ${String(a.addr_type)}` }
}
