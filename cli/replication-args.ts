/*
 * The replication flags `tsnfs serve` and `tsnfs standby` share: node and
 * cluster names, HOST:PORT addresses, the heartbeat interval and timeout.
 */
import { hostname } from 'node:os'
import { ServiceAddress, parseVip } from '../server/replication/address.ts'
import type { Logger } from '../server/logger.ts'

/** HOST:PORT or [v6]:PORT; port 0 only where `allowAny` (listen on any free port). */
export function parseHostPort(flag: string, text: string, allowAny = false): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text)
  const port = Number(m?.[3])
  const host = m?.[1] ?? m?.[2]
  if (host === undefined || !Number.isInteger(port) || port < (allowAny ? 0 : 1) || port > 65535) throw new Error(`--${flag}: not a HOST:PORT: "${text}"`)
  return { host, port }
}

/** Milliseconds from a flag given in milliseconds (a positive integer). */
export function parseMs(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (text.trim() === '' || !Number.isInteger(n) || n < 1 || n > 3_600_000) throw new Error(`--${flag}: milliseconds from 1 to 3600000, not ${text}`)
  return n
}

/** --node (default: the host name) and --cluster (default tsnfs): 1 to 64 bytes each, as the protocol caps them. */
export function identityOf(values: { node?: string | undefined; cluster?: string | undefined }): { node: string; cluster: string } {
  const node = values.node ?? hostname()
  const cluster = values.cluster ?? 'tsnfs'
  for (const [flag, v] of [['node', node], ['cluster', cluster]] as const) {
    const n = Buffer.byteLength(v)
    if (n < 1 || n > 64) throw new Error(`--${flag}: 1 to 64 bytes, not ${JSON.stringify(v)}`)
  }
  return { node, cluster }
}

/** --vip ADDR/PREFIX with --vip-dev DEV, and the hooks: what a node runs when its role changes (undefined: nothing). */
export function serviceAddressOf(
  values: { vip?: string | undefined; 'vip-dev'?: string | undefined; 'on-takeover'?: string | undefined; 'on-fenced'?: string | undefined },
  node: string,
  log: Logger,
): ServiceAddress | undefined {
  if ((values.vip === undefined) !== (values['vip-dev'] === undefined)) throw new Error('--vip and --vip-dev go together')
  const vip = values.vip === undefined ? undefined : parseVip(values.vip, values['vip-dev'] ?? '')
  if (vip === undefined && values['on-takeover'] === undefined && values['on-fenced'] === undefined) return undefined
  return new ServiceAddress({
    node,
    log,
    ...(vip === undefined ? {} : { vip }),
    ...(values['on-takeover'] === undefined ? {} : { onTakeover: values['on-takeover'] }),
    ...(values['on-fenced'] === undefined ? {} : { onFenced: values['on-fenced'] }),
  })
}
