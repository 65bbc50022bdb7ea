import type { CallCredential } from './auth.ts'
import type { BufferPool } from './buffer-pool.ts'
import { RpcTcpTransport } from './tcp-transport.ts'
import { DEFAULT_TCP_POLICY, DEFAULT_UDP_POLICY } from './transport.ts'
import type { RetryPolicy, RpcLog, RpcTransport } from './transport.ts'

export type Protocol = 'tcp' | 'udp'

export interface TransportOptions {
  protocol: Protocol
  /** Unset fields take the protocol's defaults (DEFAULT_TCP_POLICY / DEFAULT_UDP_POLICY). */
  policy?: Partial<RetryPolicy>
  cred?: CallCredential
  maxRecordSize?: number
  /** Where a hard mount's "server not responding" and "OK" go (TCP; default stderr). */
  log?: RpcLog
  /** Buffers for large TCP replies (READ records), given back by whoever consumes them. */
  pool?: BufferPool
  /** Bind the socket to this local address (the client's clientAddress): the server sees calls come from it. */
  localAddress?: string
}

/** Open an RpcTransport of either kind under one retry policy. */
export async function connectTransport(host: string, port: number, opts: TransportOptions): Promise<RpcTransport> {
  if (opts.protocol === 'tcp') {
    return RpcTcpTransport.connect(host, port, {
      ...(opts.policy === undefined ? {} : { policy: opts.policy }),
      ...(opts.cred === undefined ? {} : { cred: opts.cred }),
      ...(opts.maxRecordSize === undefined ? {} : { maxRecordSize: opts.maxRecordSize }),
      ...(opts.log === undefined ? {} : { log: opts.log }),
      ...(opts.pool === undefined ? {} : { pool: opts.pool }),
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
    })
  }
  const p = { ...DEFAULT_UDP_POLICY, ...opts.policy }
  // Loaded only for UDP: dgram and its wrapper cost every TCP client's start-up.
  const { RpcUdpClient } = await import('./udp-client.ts')
  return RpcUdpClient.connect(host, port, {
    timeoutMs: p.timeoutMs,
    retries: p.retrans,
    maxTimeoutMs: p.maxTimeoutMs,
    hard: p.hard,
    ...(opts.cred === undefined ? {} : { cred: opts.cred }),
    ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
  })
}

export function defaultPolicy(protocol: Protocol): RetryPolicy {
  return protocol === 'tcp' ? { ...DEFAULT_TCP_POLICY } : { ...DEFAULT_UDP_POLICY }
}
