import type { Peer } from './program.ts'

/**
 * The caller's address as handlers and the duplicate cache see it. An
 * IPv4-mapped IPv6 address (a dual-stack listener) becomes plain IPv4, so the
 * same client has one identity over TCP and UDP and in export host matching.
 */
export function peerOf(address: string | undefined, port: number | undefined, family: string | undefined): Peer {
  const addr = address ?? ''
  if (addr.startsWith('::ffff:') && addr.includes('.')) return { address: addr.slice(7), port: port ?? 0, family: 'IPv4' }
  return { address: addr, port: port ?? 0, family: family === 'IPv6' ? 'IPv6' : 'IPv4' }
}
