/*
 * The scrape endpoint: `GET /metrics` on its own HTTP listener (never on the
 * NFS port), answering the text rendered at request time.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { Logger } from '../logger.ts'
import { PROMETHEUS_CONTENT_TYPE } from './prometheus.ts'

export interface MetricsAddress {
  host: string
  port: number
}

export interface MetricsEndpoint {
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

export async function startMetricsEndpoint(at: MetricsAddress, render: () => string, log: Logger): Promise<MetricsEndpoint> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n')
      return
    }
    let body: string
    try {
      body = render()
    } catch (err) {
      log.error({ err }, 'metrics rendering failed')
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics rendering failed\n')
      return
    }
    res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) })
    res.end(req.method === 'HEAD' ? undefined : body)
  })
  // Scrapers keep connections alive; close() must not wait for them.
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: at.host, port: at.port }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', (err) => {
    log.error({ err }, 'metrics listener error')
  })
  const addr = server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : at.port
  log.info({ host: at.host, port }, 'metrics endpoint listening')
  return {
    host: at.host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve()
        })
        server.closeAllConnections()
      }),
  }
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces) / bare `port` (loopback). */
export function parseMetricsAddress(text: string): MetricsAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text)
  const port = Number(m?.[3])
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`not a host:port: "${text}"`)
  const host = m[1] ?? m[2] ?? ''
  return { host: host === '' ? (text.startsWith(':') ? '0.0.0.0' : '127.0.0.1') : host, port }
}
