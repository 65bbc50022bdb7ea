/*
 * The client's NLM locks against an independent lock manager: NFS-Ganesha's
 * NLM v4 (with rpc.statd, which it asks to monitor each client). Two
 * clients in this process act as two hosts: each goes by its own caller
 * name and calls from its own loopback address. Ganesha alone decides
 * who conflicts with whom; our side only asks and keeps its record.
 *
 * Ganesha finds a client's NLM for GRANTED callbacks through the portmapper
 * on 111, where Ganesha itself holds NLM: its callbacks cannot reach us on
 * one machine, so the blocking waits here end through the client's poll
 * (the LOCK re-sent, answered NLM4_GRANTED), with a short poll interval.
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { LOCK_EOF } from '../../locks/types.ts'
import { startGanesha } from '../helpers/ganesha.ts'
import { ROOT } from '../cli/cli.ts'

/** The child runs as a user would run it: not under tap's loaders. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return env
}

const base = t.testdir({ export: {}, state: {}, a: {}, b: {} })
mkdirSync(join(base, 'export'), { recursive: true })
const g = await startGanesha(t, join(base, 'export'), join(base, 'state'), '/vfs', { nlm: true })
t.comment(`ganesha pid ${String(g.pid)}, NLM on ${String(g.nlmPort)}`)

const warnings: string[] = []
const log = { warn: (m: string) => { warnings.push(m) } }

/** A client as host `name` calling from `addr`; locks through Ganesha's NLM (nlmport), callbacks on our own port only. */
async function host(t: Test, name: string, addr: string, dir: string): Promise<NfsClient> {
  const q = `nlmport=${String(g.nlmPort)}&callername=${name}&clientaddr=${addr}&lockstatedir=${join(base, dir)}&lockportmapport=0`
  const c = await NfsClient.mount(g.url('', q), { log, lockPollMs: 300, lockGraceWaitMs: 200 })
  t.teardown(() => c.umount())
  return c
}

function file(name: string): string {
  writeFileSync(join(base, 'export', name), Buffer.alloc(4096))
  return `/${name}`
}

t.test('exclusive: the other host is denied, TEST names the holder, UNLOCK frees it', async t => {
  const a = await host(t, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, 'host-b', '127.0.0.3', 'b')
  const f = file('x1')
  await a.lock(f, { start: 0, length: 100, exclusive: true, wait: false, owner: 11 })
  await t.rejects(b.lock(f, { start: 50, length: 10, exclusive: true, wait: false, owner: 21 }), { code: 'NLM_DENIED', errno: 'EAGAIN', status: 1 })
  await t.rejects(b.lock(f, { start: 99, length: 1, exclusive: false, wait: false, owner: 21 }), { code: 'NLM_DENIED' }, 'shared is denied too')
  const h = await b.test(f, { start: 10, length: 5, exclusive: false, owner: 21 })
  t.match(h, { exclusive: true, svid: 11, start: 0n, length: 100n })
  t.ok(h?.oh.includes(Buffer.from('host-a')), 'the owner handle names the holder host')
  t.equal(await b.test(f, { start: 100, length: 0, exclusive: true, owner: 21 }), null, 'past the range is free')
  await b.lock(f, { start: 100, length: 0, exclusive: true, wait: false, owner: 21 })
  await a.unlock(f, { start: 0, length: 100, owner: 11 })
  await b.lock(f, { start: 0, length: 100, exclusive: true, wait: false, owner: 21 })
  t.same((await (await b.locks()).heldBy(Buffer.from((await b.resolve(f)).fh), 21)).map(r => [r.start, r.end, r.exclusive]), [[0n, LOCK_EOF, true]], 'held record merged to one range')
})

t.test('shared: both hosts read-lock, an exclusive request is denied until both let go', async t => {
  const a = await host(t, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, 'host-b', '127.0.0.3', 'b')
  const f = file('x2')
  await a.lock(f, { start: 0, length: 0, exclusive: false, wait: false, owner: 12 })
  await b.lock(f, { start: 1000, length: 10, exclusive: false, wait: false, owner: 22 })
  await t.rejects(b.lock(f, { start: 0, length: 1, exclusive: true, wait: false, owner: 23 }), { code: 'NLM_DENIED' })
  t.match(await b.test(f, { start: 5, length: 1, exclusive: true, owner: 23 }), { exclusive: false, svid: 12 })
  t.equal(await b.test(f, { start: 5, length: 1, exclusive: false, owner: 23 }), null, 'another reader is no conflict')
  await a.unlock(f, { start: 0, length: 0, owner: 12 })
  await t.rejects(b.lock(f, { start: 1000, length: 1, exclusive: true, wait: false, owner: 23 }), { code: 'NLM_DENIED' }, "b's own other owner still reads there")
  await b.lock(f, { start: 0, length: 1000, exclusive: true, wait: false, owner: 23 })
})

t.test('unlock of a middle part splits the lock; an upgrade in place', async t => {
  const a = await host(t, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, 'host-b', '127.0.0.3', 'b')
  const f = file('x3')
  const fh = (await a.resolve(f)).fh
  await a.lock(fh, { start: 0, length: 100, exclusive: false, wait: false, owner: 13 })
  await a.lock(fh, { start: 0, length: 100, exclusive: true, wait: false, owner: 13 })
  await t.rejects(b.lock(f, { start: 0, length: 1, exclusive: false, wait: false, owner: 24 }), { code: 'NLM_DENIED' }, 'upgraded to exclusive')
  await a.unlock(fh, { start: 40, length: 20, owner: 13 })
  await b.lock(f, { start: 45, length: 10, exclusive: true, wait: false, owner: 24 })
  await t.rejects(b.lock(f, { start: 39, length: 1, exclusive: false, wait: false, owner: 24 }), { code: 'NLM_DENIED' })
  await t.rejects(b.lock(f, { start: 60, length: 1, exclusive: false, wait: false, owner: 24 }), { code: 'NLM_DENIED' })
  t.same((await (await a.locks()).heldBy(fh, 13)).map(r => [r.start, r.end]), [[0n, 40n], [60n, 100n]])
})

t.test('a blocking wait ends when the holder unlocks; an aborted one is cancelled', async t => {
  const a = await host(t, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, 'host-b', '127.0.0.3', 'b')
  const f = file('x4')
  await a.lock(f, { start: 0, length: 10, exclusive: true, wait: false, owner: 14 })
  let done = false
  const waiting = b.lock(f, { start: 0, length: 10, exclusive: true, wait: true, owner: 25 }).then(() => { done = true })
  await new Promise(r => setTimeout(r, 500))
  t.notOk(done, 'still waiting while a holds it')
  await a.unlock(f, { start: 0, length: 10, owner: 14 })
  await waiting
  t.ok(done, 'granted once a let go')
  await t.rejects(a.lock(f, { start: 0, length: 1, exclusive: false, wait: false, owner: 14 }), { code: 'NLM_DENIED' }, 'b holds it now')

  const ac = new AbortController()
  const aborted = a.lock(f, { start: 0, length: 10, exclusive: true, wait: true, owner: 15, signal: ac.signal })
  await new Promise(r => setTimeout(r, 400))
  ac.abort()
  await t.rejects(aborted, { code: 'NLM_CANCELLED', errno: 'EINTR' })
  await b.unlock(f, { start: 0, length: 10, owner: 25 })
  await new Promise(r => setTimeout(r, 300))
  t.equal(await b.test(f, { start: 0, length: 10, exclusive: true, owner: 26 }), null, 'the cancelled request was never granted')
})

t.test('unmount lets go of what the mount held', async t => {
  const a = await NfsClient.mount(g.url('', `nlmport=${String(g.nlmPort)}&callername=host-a&clientaddr=127.0.0.2&lockstatedir=${join(base, 'a')}&lockportmapport=0`), { log })
  const b = await host(t, 'host-b', '127.0.0.3', 'b')
  const f = file('x5')
  await a.lock(f, { start: 0, length: 0, exclusive: true, wait: false })
  await t.rejects(b.lock(f, { start: 0, length: 1, exclusive: true, wait: false }), { code: 'NLM_DENIED' })
  await a.umount()
  await b.lock(f, { start: 0, length: 0, exclusive: true, wait: false })
})

t.test('bad ranges and nolock fail before any call', async t => {
  const a = await host(t, 'host-a', '127.0.0.2', 'a')
  const f = file('x6')
  await t.rejects(a.lock(f, { start: -1, length: 1, exclusive: true, wait: false }), { code: 'NLM_BAD_RANGE', errno: 'EINVAL' })
  await t.rejects(a.lock(f, { start: LOCK_EOF - 1n, length: 2, exclusive: true, wait: false }), { code: 'NLM_BAD_RANGE' })
  const off = await NfsClient.mount(g.url('', 'nolock'), { log })
  t.teardown(() => off.umount())
  await t.rejects(off.lock(f, { start: 0, length: 1, exclusive: true, wait: false }), { code: 'NLM_DISABLED', errno: 'ENOLCK' })
})

t.test('a client host killed holding a lock: its next start notifies (SM_NOTIFY via statd) and Ganesha frees the lock', async t => {
  const b = await host(t, 'host-b', '127.0.0.3', 'b')
  const f = file('x7')
  // statd checks that a notification comes from the address the name resolves to: the name is the address.
  const q = `nlmport=${String(g.nlmPort)}&callername=127.0.0.2&clientaddr=127.0.0.2&lockstatedir=${join(base, 'crash')}&lockportmapport=0`
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/lock-holder.ts'), g.url('', q), f], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: childEnv() })
  const [line] = await once(child.stdout, 'data') as [Buffer]
  t.equal(line.toString().trim(), 'locked')
  await t.rejects(b.lock(f, { start: 0, length: 1, exclusive: true, wait: false }), { code: 'NLM_DENIED' })
  child.kill('SIGKILL')
  await once(child, 'exit')
  await t.rejects(b.lock(f, { start: 0, length: 1, exclusive: true, wait: false }), { code: 'NLM_DENIED' }, 'Ganesha holds it for the dead client')
  const again = await NfsClient.mount(g.url('', q), { log })
  t.teardown(() => again.umount())
  await (await again.locks()).service()
  let freed = false
  for (let i = 0; i < 50 && !freed; i++) {
    freed = await b.lock(f, { start: 0, length: 1, exclusive: true, wait: false }).then(() => true, () => false)
    if (!freed) await new Promise(r => setTimeout(r, 100))
  }
  t.ok(freed, "the restarted host's notification freed the dead instance's lock")
})

t.test('no warnings beyond the expected', async t => {
  t.same(warnings, [])
})
