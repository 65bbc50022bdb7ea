/*
 * Finding a peer's program through its portmapper: a "host" on 127.0.0.2
 * runs the project's PORTMAP and a test program on one RpcServer. GETPORT
 * answers are cached; port 0 is CALL_NOT_REGISTERED; a failed call to a
 * cached port forgets it, so the next call finds the program's new port.
 */
import t from 'tap'
import type { Test } from 'tap'
import { silentLogger } from '../../../server/logger.ts'
import { createPortmapProgram } from '../../../server/portmap/program.ts'
import { PortRegistry } from '../../../server/portmap/registry.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import { PortCache, callRegistered, peerPort, sendOneWayRegistered } from '../../../server/callback/portmap.ts'
import { IPPROTO_TCP, IPPROTO_UDP } from '../../../xdr/generated/portmap.ts'
import { xdr_uint } from '../../../xdr/runtime/codec.ts'
import { P, TEST_PROG_NUMBER, newHooks, testProgram } from '../../helpers/rpc.ts'
import { closedPort } from '../../helpers/ports.ts'

const HOST = '127.0.0.2'

/** A host at HOST: its portmapper and the test program on one port; the registry is the test's to change. */
async function peerHost(t: Test): Promise<{ port: number; registry: PortRegistry; hooks: ReturnType<typeof newHooks> }> {
  const registry = new PortRegistry()
  const hooks = newHooks()
  const server = new RpcServer({ programs: [createPortmapProgram(registry), testProgram(hooks)], logger: silentLogger })
  const { port } = await server.listen({ port: 0, host: HOST })
  t.teardown(() => server.close())
  return { port, registry, hooks }
}

t.test('GETPORT, port 0, and the cache', async (t) => {
  const { port, registry } = await peerHost(t)
  const cache = new PortCache({ ttlMs: 60_000 })
  await t.rejects(peerPort(HOST, port, TEST_PROG_NUMBER, 1, 'tcp', { cache }), { code: 'CALL_NOT_REGISTERED', message: /program 200000 version 1 is not registered on tcp/ })
  t.equal(cache.size, 0, 'a refusal is not cached')
  registry.set({ prog: TEST_PROG_NUMBER, vers: 1, prot: IPPROTO_TCP, port: 4001 })
  registry.set({ prog: TEST_PROG_NUMBER, vers: 1, prot: IPPROTO_UDP, port: 4002 })
  t.equal(await peerPort(HOST, port, TEST_PROG_NUMBER, 1, 'tcp', { cache }), 4001)
  t.equal(await peerPort(HOST, port, TEST_PROG_NUMBER, 1, 'udp', { cache }), 4002, 'per transport')
  registry.unset(TEST_PROG_NUMBER, 1)
  t.equal(await peerPort(HOST, port, TEST_PROG_NUMBER, 1, 'tcp', { cache }), 4001, 'answered from the cache')
  t.equal(await peerPort(HOST, port, TEST_PROG_NUMBER, 1, 'tcp', { cache: null }).catch((e: unknown) => (e as { code: string }).code), 'CALL_NOT_REGISTERED', 'asked again without the cache')
})

t.test('the cache expires and stays bounded', async (t) => {
  let now = 0
  const cache = new PortCache({ ttlMs: 1000, maxEntries: 2, now: () => now })
  cache.set('a', 1)
  cache.set('b', 2)
  cache.set('c', 3)
  t.equal(cache.size, 2)
  t.equal(cache.get('a'), undefined, 'the oldest went first')
  t.equal(cache.get('c'), 3)
  now = 1000
  t.equal(cache.get('c'), undefined, 'expired')
  t.equal(cache.size, 1)
})

t.test('a failed call to a cached port forgets it', async (t) => {
  const { port, registry, hooks } = await peerHost(t)
  const cache = new PortCache()
  const dead = await closedPort()
  registry.set({ prog: TEST_PROG_NUMBER, vers: 1, prot: IPPROTO_TCP, port: dead })
  const target = { host: HOST, pmapPort: port, transport: 'tcp' as const, prog: TEST_PROG_NUMBER, vers: 1, proc: P.TESTPROC_ECHO.proc }
  await t.rejects(callRegistered(target, xdr_uint, 7, xdr_uint, { cache }), { code: 'CALL_UNREACHABLE' })
  t.equal(cache.size, 0, 'forgotten')
  // The program "restarted" on the host's real port.
  registry.unset(TEST_PROG_NUMBER, 1)
  registry.registerAll([{ prog: TEST_PROG_NUMBER, versions: new Map([[1, null]]) }], port)
  t.equal(await callRegistered(target, xdr_uint, 7, xdr_uint, { cache }), 7, 'found at its new port')
  t.equal(cache.size, 1)

  await sendOneWayRegistered({ ...target, transport: 'udp', proc: P.TESTPROC_INCR.proc }, xdr_uint, 1, { cache })
  for (let i = 0; i < 100 && hooks.executions === 0; i++) await new Promise((r) => setTimeout(r, 10))
  t.equal(hooks.executions, 1, 'the one-way call arrived')
  registry.unset(TEST_PROG_NUMBER, 1)
  registry.set({ prog: TEST_PROG_NUMBER, vers: 1, prot: IPPROTO_UDP, port: dead })
  cache.forget(PortCache.key(HOST, port, TEST_PROG_NUMBER, 1, 'udp'))
  // A datagram to a closed port leaves without error; the ICMP answer comes too late for the send.
  await sendOneWayRegistered({ ...target, transport: 'udp', proc: P.TESTPROC_INCR.proc }, xdr_uint, 1, { cache })
  cache.forget(PortCache.key(HOST, port, TEST_PROG_NUMBER, 1, 'tcp'))
  await t.rejects(sendOneWayRegistered({ ...target, transport: 'tcp' }, xdr_uint, 1, { cache }), { code: 'CALL_NOT_REGISTERED' })
  registry.set({ prog: TEST_PROG_NUMBER, vers: 1, prot: IPPROTO_TCP, port: dead })
  await t.rejects(sendOneWayRegistered({ ...target, transport: 'tcp' }, xdr_uint, 1, { cache }), { code: 'CALL_UNREACHABLE' })
  t.equal(cache.get(PortCache.key(HOST, port, TEST_PROG_NUMBER, 1, 'tcp')), undefined, 'the failed send forgot the port')
})
