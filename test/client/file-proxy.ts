/*
 * A TCP relay that can rewrite NFS replies: it remembers each call's
 * procedure by xid, and may replace the write verifier of WRITE or COMMIT
 * replies (the last 8 bytes of WRITE3resok and COMMIT3resok), which is what
 * a client sees when the server restarted or lost unstable data
 * (RFC 1813 §3.3.7, §3.3.21).
 */
import type { Test } from 'tap'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import type { Socket } from 'node:net'
import { RecordReader, frameRecord } from '../../xdr/record.ts'

export const PROC_WRITE = 7
export const PROC_COMMIT = 21
const NFS_PROG = 100003

export interface VerfProxy {
  port: number
  /** Replies of these NFS procedures get a flipped verifier while their count is > 0 (decremented per reply). */
  flip: Map<number, number>
  /** NFS calls seen, by procedure number. */
  calls: Map<number, number>
  /** Replies of these NFS procedures are held back until release() (a server that is slow to answer). */
  hold: Set<number>
  release(): void
}

export async function startVerfProxy(t: Test, target: number): Promise<VerfProxy> {
  const sockets = new Set<Socket>()
  let held: (() => void)[] = []
  const proxy: VerfProxy = {
    port: 0, flip: new Map(), calls: new Map(), hold: new Set(),
    release() {
      const h = held
      held = []
      for (const send of h) send()
    },
  }
  const server = createServer(client => {
    const upstream = connect(target, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const procs = new Map<number, number>()
    const fromClient = new RecordReader(64 * 1024 * 1024)
    const fromServer = new RecordReader(64 * 1024 * 1024)
    client.on('data', (chunk: Buffer) => {
      for (const rec of fromClient.push(chunk)) {
        // RFC 5531 call header: xid, CALL, rpcvers, prog, vers, proc.
        if (rec.length >= 24 && rec.readUInt32BE(4) === 0 && rec.readUInt32BE(12) === NFS_PROG) {
          const proc = rec.readUInt32BE(20)
          procs.set(rec.readUInt32BE(0), proc)
          proxy.calls.set(proc, (proxy.calls.get(proc) ?? 0) + 1)
        }
        upstream.write(Buffer.concat([frameRecord([rec]), rec]))
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      for (const r of fromServer.push(chunk)) {
        const rec = Buffer.from(r)
        const xid = rec.readUInt32BE(0)
        const proc = procs.get(xid)
        procs.delete(xid)
        const left = proc === undefined ? 0 : (proxy.flip.get(proc) ?? 0)
        if (proc !== undefined && left > 0 && isOk(rec)) {
          proxy.flip.set(proc, left - 1)
          for (let i = rec.length - 8; i < rec.length; i++) rec[i] = (rec[i] ?? 0) ^ 0xff
        }
        const send = (): void => { client.write(Buffer.concat([frameRecord([rec]), rec])) }
        if (proc !== undefined && proxy.hold.has(proc)) held.push(send)
        else send()
      }
    })
    const end = (): void => {
      client.destroy()
      upstream.destroy()
    }
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

/** An accepted, successful reply whose NFS status is NFS3_OK (AUTH_NONE/SYS reply verifiers carry no body here). */
function isOk(rec: Buffer): boolean {
  if (rec.length < 28 || rec.readUInt32BE(4) !== 1 || rec.readUInt32BE(8) !== 0) return false
  const verfLen = rec.readUInt32BE(16)
  const at = 20 + verfLen
  return rec.readUInt32BE(at) === 0 && rec.readUInt32BE(at + 4) === 0
}
