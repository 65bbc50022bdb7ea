/*
 * Each TCP call keeps its own deadline (client/rpc/tcp-transport.ts). Against
 * a server that accepts and never answers: a call started later with an
 * earlier deadline (its own timeoutMs) times out on its own while a longer
 * one waits, and several calls due together are each retried and each fail
 * after their own tries. (A guard for how the transport times calls out: one
 * timer for all of them since session 38, bench/README.md.)
 */
import t from 'tap'
import type { Test } from 'tap'
import { createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import { RpcTcpTransport } from '../../client/rpc/tcp-transport.ts'
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'

const NULL = NFS_PROGRAM.versions.NFS_V3.procs.NFSPROC3_NULL

/** A TCP server that reads every call and answers none. */
async function silentServer(t: Test): Promise<number> {
  const sockets: Socket[] = []
  const server: Server = createServer((s) => {
    sockets.push(s)
    s.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => {
          resolve()
        })
      }),
  )
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no port')
  return addr.port
}

t.test('a later call with an earlier deadline times out while a longer one waits', { timeout: 30_000 }, async (t) => {
  const port = await silentServer(t)
  const tr = await RpcTcpTransport.connect('127.0.0.1', port, { policy: { timeoutMs: 120_000, retrans: 0, hard: false } })
  const long = tr.call(NFS_PROGRAM.prog, 3, NULL, undefined)
  const longDone = long.then(() => 'replied', (err: unknown) => (err as { code?: string }).code)
  const short = tr.call(NFS_PROGRAM.prog, 3, NULL, undefined, { timeoutMs: 50 })
  await t.rejects(short, { code: 'RPC_TIMEOUT' })
  t.equal(tr.inFlight, 1, 'the call with two minutes to go is still out')
  t.equal(tr.counters().timeouts, 1)
  await tr.close()
  t.equal(await longDone, 'RPC_CONNECTION_CLOSED', 'closing fails it')
})

t.test('calls due together: each is retried and fails after its own tries', { timeout: 30_000 }, async (t) => {
  const port = await silentServer(t)
  const tr = await RpcTcpTransport.connect('127.0.0.1', port, { policy: { timeoutMs: 30, retrans: 2, hard: false } })
  t.teardown(() => tr.close())
  const calls = [0, 1, 2, 3].map(() => tr.call(NFS_PROGRAM.prog, 3, NULL, undefined))
  const codes = await Promise.all(calls.map((c) => c.then(() => 'replied', (err: unknown) => (err as { code?: string }).code)))
  t.strictSame(codes, ['RPC_TIMEOUT', 'RPC_TIMEOUT', 'RPC_TIMEOUT', 'RPC_TIMEOUT'])
  t.equal(tr.counters().timeouts, 12, 'three tries each (one and two retransmissions)')
  t.equal(tr.counters().retransmits, 8)
  t.equal(tr.inFlight, 0)
})
