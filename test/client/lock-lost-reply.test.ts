/*
 * A LOCK whose reply does not arrive whole (damaged on the way, or a soft mount's timeout): the
 * server may have granted it, and the caller is told it failed, so nobody would ever release it;
 * every other host would be denied the range until this one's NSM state changed. The client
 * undoes it as Linux's nlmclnt_lock does on a fatal error ("ensure that we remove the lock
 * altogether"): an UNLOCK of what the request added (the parts of the range this owner did not
 * hold before), and the original error.
 */
import t from 'tap'
import type { Test } from 'tap'
import { join } from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { NLM_PROG } from '../../xdr/generated/nlm.ts'
import { freePort } from '../helpers/ports.ts'
import { startServer } from '../helpers/server.ts'
import { startProxy } from './proxy.ts'

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const base = t.testdir({ a: {}, b: {} })
const P = await freePort()
const server = await startServer(t, EXPORTS, { locking: { nsm: { peerPortmapPort: P } } })
const LOCK = NLM_PROG.versions.NLM4_VERS.procs.NLMPROC4_LOCK.proc

function query(name: string, addr: string, dir: string, nlmport?: number): string {
  return `callername=${name}&clientaddr=${addr}&lockportmapport=${String(P)}&lockstatedir=${join(base, dir)}${nlmport === undefined ? '' : `&nlmport=${String(nlmport)}`}`
}

async function host(t: Test, q: string): Promise<NfsClient> {
  const c = await NfsClient.mount(server.url('/export', '', q), { lockPollMs: 60_000, timeoutMs: 300, retrans: 1 })
  t.teardown(() => c.umount())
  return c
}

t.test('a LOCK granted whose reply is damaged is undone: another host gets the range', async (t) => {
  const proxy = await startProxy(t, server.port)
  let damage = false
  const lockXids = new Set<number>()
  proxy.rewrite = (call) => {
    if (call.readUInt32BE(12) === NLM_PROG.prog && call.readUInt32BE(20) === LOCK) lockXids.add(call.readUInt32BE(0))
    return call
  }
  // Cut after the reply header: the server answered, the client cannot read what.
  proxy.rewriteReply = (reply) => (damage && lockXids.has(reply.readUInt32BE(0)) ? reply.subarray(0, 28) : reply)
  const a = await host(t, query('host-a', '127.0.0.2', 'a', proxy.port))
  const b = await host(t, query('host-b', '127.0.0.3', 'b'))
  await a.writeFile('/f', Buffer.alloc(100))
  // A lock held before: what the failed request overlaps of it stays held.
  await a.lock('/f', { start: 0, length: 10, exclusive: true, wait: false, owner: 1 })
  damage = true
  await t.rejects(a.lock('/f', { start: 0, length: 50, exclusive: true, wait: false, owner: 1 }), { code: 'RPC_BAD_REPLY' })
  damage = false
  await b.lock('/f', { start: 10, length: 40, exclusive: true, wait: false, owner: 2 })
  t.pass('host b locked what the failed request would have added')
  await t.rejects(b.lock('/f', { start: 5, length: 1, exclusive: false, wait: false, owner: 2 }), { code: 'NLM_DENIED' }, 'what host a held before is still held')
})
