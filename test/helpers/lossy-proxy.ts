/*
 * Faulty networks on loopback, for the duplicate request cache's tests
 * (issue 7 §4). A UDP relay that drops, duplicates and delays datagrams both
 * ways (delays reorder them), and a TCP relay that cuts connections
 * mid-request: half a call record forwarded then the cut, or the whole call
 * forwarded and the connection cut before its reply. Seeded, so a failing run
 * can be repeated.
 */
import type { Test } from 'tap'
import { createSocket } from 'node:dgram'
import type { Socket as DgramSocket } from 'node:dgram'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { RecordReader, frameRecord } from '../../xdr/record.ts'
import { prng } from './prng.ts'

/** The shared seeded generator (mulberry32), under the name this file's tests use. */
export { prng as seeded }

export interface UdpFaults {
  /** Probability that a datagram is dropped (each way). */
  drop: number
  /** Probability that a datagram is sent twice. */
  duplicate: number
  /** Probability that a datagram is held back, for up to maxDelayMs (this reorders). */
  delay: number
  maxDelayMs: number
  seed: number
}

export interface UdpProxyCounters {
  forwarded: number
  dropped: number
  duplicated: number
  delayed: number
}

export interface LossyUdpProxy {
  port: number
  faults: UdpFaults
  readonly counters: UdpProxyCounters
}

/** Clients send to `port`; each client address gets its own upstream socket to the server. */
export async function startLossyUdpProxy(t: Test, target: number, faults: UdpFaults): Promise<LossyUdpProxy> {
  const random = prng(faults.seed)
  const counters: UdpProxyCounters = { forwarded: 0, dropped: 0, duplicated: 0, delayed: 0 }
  const front = createSocket('udp4')
  const upstreams = new Map<string, DgramSocket>()
  const timers = new Set<NodeJS.Timeout>()
  let closed = false
  const proxy: LossyUdpProxy = { port: 0, faults, counters }

  const relay = (msg: Buffer, send: (m: Buffer) => void): void => {
    const f = proxy.faults
    if (random() < f.drop) {
      counters.dropped++
      return
    }
    const copies = random() < f.duplicate ? 2 : 1
    if (copies === 2) counters.duplicated++
    for (let i = 0; i < copies; i++) {
      if (random() < f.delay) {
        counters.delayed++
        const timer = setTimeout(() => {
          timers.delete(timer)
          if (!closed) send(msg)
        }, Math.floor(random() * f.maxDelayMs))
        timers.add(timer)
      } else {
        send(msg)
      }
    }
    counters.forwarded++
  }

  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${String(rinfo.port)}`
    let up = upstreams.get(key)
    if (up === undefined) {
      const u = createSocket('udp4')
      u.bind(0, '127.0.0.1')
      u.on('message', (reply: Buffer) => {
        relay(reply, m => {
          front.send(m, rinfo.port, rinfo.address)
        })
      })
      upstreams.set(key, u)
      up = u
    }
    const upstream = up
    relay(msg, m => {
      upstream.send(m, target, '127.0.0.1')
    })
  })
  await new Promise<void>(resolve => front.bind(0, '127.0.0.1', resolve))
  proxy.port = front.address().port
  t.teardown(() => {
    closed = true
    for (const timer of timers) clearTimeout(timer)
    for (const u of upstreams.values()) u.close()
    front.close()
  })
  return proxy
}

export interface TcpCutCounters {
  calls: number
  /** Connections cut after half a call record. */
  cutMidRecord: number
  /** Connections cut after a whole call, before its reply. */
  cutBeforeReply: number
}

export interface CuttingTcpProxy {
  port: number
  /** Probability, per call record, that the connection is cut there (half of these mid-record). */
  cut: number
  readonly counters: TcpCutCounters
}

export async function startCuttingTcpProxy(t: Test, target: number, opts: { cut: number; seed: number }): Promise<CuttingTcpProxy> {
  const random = prng(opts.seed)
  const sockets = new Set<Socket>()
  const proxy: CuttingTcpProxy = { port: 0, cut: opts.cut, counters: { calls: 0, cutMidRecord: 0, cutBeforeReply: 0 } }
  // No Nagle on either leg (as our client and server set): a forwarded small record must not wait for a delayed ACK.
  const server = createServer({ noDelay: true }, client => {
    const upstream = connect({ port: target, host: '127.0.0.1', noDelay: true })
    sockets.add(client)
    sockets.add(upstream)
    const reader = new RecordReader(8 * 1024 * 1024)
    const end = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('data', (chunk: Buffer) => {
      for (const rec of reader.push(chunk)) {
        proxy.counters.calls++
        const framed = Buffer.concat([frameRecord([rec]), rec])
        const r = random()
        if (r < proxy.cut / 2) {
          proxy.counters.cutMidRecord++
          upstream.write(framed.subarray(0, Math.max(1, framed.length >> 1)), end)
          return
        }
        if (r < proxy.cut) {
          proxy.counters.cutBeforeReply++
          // The server gets the whole call (it runs); the reply has nowhere to go.
          upstream.write(framed, end)
          client.destroy()
          return
        }
        upstream.write(framed)
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!client.destroyed) client.write(chunk)
    })
    for (const s of [client, upstream]) {
      s.on('error', end)
      s.on('close', end)
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  proxy.port = (server.address() as { port: number }).port
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return proxy
}
