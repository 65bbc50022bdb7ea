/*
 * A TCP relay for client tests: cut every connection, drop replies, refuse
 * new connections, answer chosen calls itself (to fake a server that lacks a
 * procedure), or change calls and replies on their way.
 */
import type { Test } from 'tap'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { RecordReader, frameRecord } from '../../xdr/record.ts'

export interface TcpProxy {
  port: number
  /** Replies from the server are thrown away while set. */
  dropReplies: boolean
  /** New connections are closed at once while set (the server looks gone). */
  refuse: boolean
  /** Calls (records) seen from clients. */
  calls: number
  /** Answer a call record instead of forwarding it: return the reply record, or null to forward. */
  intercept: ((record: Buffer) => Buffer | null) | null
  /** Change a call record before it is forwarded (e.g. ask a server for less than the client did). */
  rewrite: ((record: Buffer) => Buffer) | null
  /** Change a reply record before it reaches the client (a server that lies); set before the client connects. */
  rewriteReply: ((record: Buffer) => Buffer) | null
  /** Destroy every open connection, both sides. */
  cut(): void
}

export async function startProxy(t: Test, target: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  const proxy: TcpProxy = {
    port: 0,
    dropReplies: false,
    refuse: false,
    calls: 0,
    intercept: null,
    rewrite: null,
    rewriteReply: null,
    cut() {
      for (const s of sockets) s.destroy()
      sockets.clear()
    },
  }
  const server = createServer(client => {
    if (proxy.refuse) {
      client.destroy()
      return
    }
    const upstream = connect(target, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const reader = new RecordReader(8 * 1024 * 1024)
    client.on('data', (chunk: Buffer) => {
      for (const rec of reader.push(chunk)) {
        proxy.calls++
        const reply = proxy.intercept?.(rec) ?? null
        if (reply !== null) client.write(Buffer.concat([frameRecord([reply]), reply]))
        else {
          const out = proxy.rewrite?.(rec) ?? rec
          upstream.write(Buffer.concat([frameRecord([out]), out]))
        }
      }
    })
    const replies = new RecordReader(64 * 1024 * 1024)
    upstream.on('data', (chunk: Buffer) => {
      if (proxy.dropReplies) return
      const rewrite = proxy.rewriteReply
      if (rewrite === null) {
        client.write(chunk)
        return
      }
      for (const rec of replies.push(chunk)) {
        const out = rewrite(rec)
        client.write(Buffer.concat([frameRecord([out]), out]))
      }
    })
    const end = (): void => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  proxy.port = (server.address() as { port: number }).port
  t.teardown(() => {
    proxy.cut()
    server.close()
  })
  return proxy
}

/** RFC 5531 call header, then cred and verf: where the arguments of an NFS call of `proc` start (else -1). */
export function nfsArgsAt(call: Buffer, proc: number): number {
  if (call.readUInt32BE(12) !== 100003 || call.readUInt32BE(20) !== proc) return -1
  const credLen = call.readUInt32BE(28)
  const verfAt = 32 + Math.ceil(credLen / 4) * 4
  return verfAt + 8 + Math.ceil(call.readUInt32BE(verfAt + 4) / 4) * 4
}
