/*
 * The replication flags `tsnfs serve` and `tsnfs standby` share: node and
 * cluster names, HOST:PORT addresses, the heartbeat interval and timeout.
 */
import { hostname } from 'node:os'
import { ServiceAddress, parseVip } from '../server/replication/address.ts'
import type { AutoTakeoverOptions } from '../server/replication/auto-takeover.ts'
import type { PrimaryOptions } from '../server/replication/primary.ts'
import { parseWitness } from '../server/replication/quorum-probe.ts'
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

/**
 * --auto-takeover with --primary, --witness..., --rank-after..., --heartbeat, --heartbeat-timeout (undefined: off).
 * The heartbeat flags also serve --standby (asPrimaryOf): with it they need no --auto-takeover.
 */
export function autoTakeoverOf(values: {
  'auto-takeover'?: boolean | undefined
  primary?: string | undefined
  witness?: string[] | undefined
  'rank-after'?: string[] | undefined
  heartbeat?: string | undefined
  'heartbeat-timeout'?: string | undefined
  standby?: string[] | undefined
}): Pick<AutoTakeoverOptions, 'primary' | 'witnesses' | 'rankedBefore' | 'intervalMs' | 'timeoutMs'> | undefined {
  if (values['auto-takeover'] !== true) {
    const alone = ['primary', 'witness', 'rank-after', ...((values.standby ?? []).length === 0 ? ['heartbeat', 'heartbeat-timeout'] as const : [])] as const
    for (const f of alone) if (values[f] !== undefined) throw new Error(`--${f} needs --auto-takeover`)
    return undefined
  }
  if (values.primary === undefined) throw new Error('--auto-takeover needs --primary NAME=HOST:PORT (the primary\'s node name and NFS port)')
  const witnesses = (values.witness ?? []).map(parseWitness)
  if (witnesses.length === 0) throw new Error('--auto-takeover needs at least one --witness NAME=HOST:PORT: without witnesses any partition would make two primaries')
  const intervalMs = parseMs('heartbeat', values.heartbeat)
  const timeoutMs = parseMs('heartbeat-timeout', values['heartbeat-timeout'])
  return {
    primary: parseWitness(values.primary),
    witnesses,
    rankedBefore: (values['rank-after'] ?? []).map(parseWitness),
    ...(intervalMs === undefined ? {} : { intervalMs }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  }
}

/**
 * `tsnfs standby`'s --standby HOST:PORT..., --sync | --async, --heartbeat, --heartbeat-timeout: how
 * the node replicates once it has taken over (undefined: without --standby it serves alone). The
 * heartbeat flags are the same a primary started by `tsnfs serve --standby` takes.
 */
export function asPrimaryOf(values: {
  standby?: string[] | undefined
  sync?: boolean | undefined
  async?: boolean | undefined
  heartbeat?: string | undefined
  'heartbeat-timeout'?: string | undefined
}): Pick<PrimaryOptions, 'standbys' | 'mode' | 'heartbeatMs' | 'timeoutMs'> | undefined {
  const standbys = (values.standby ?? []).map((x) => parseHostPort('standby', x))
  if (standbys.length === 0) {
    if (values.sync !== undefined || values.async !== undefined) throw new Error('--sync and --async need --standby')
    return undefined
  }
  if (values.sync === true && values.async === true) throw new Error('--sync and --async contradict each other')
  const heartbeatMs = parseMs('heartbeat', values.heartbeat)
  const timeoutMs = parseMs('heartbeat-timeout', values['heartbeat-timeout'])
  return {
    standbys,
    mode: values.async === true ? 'async' : 'sync',
    ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  }
}
