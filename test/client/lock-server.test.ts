/*
 * The client's locks against our own server's NLM and NSM: two client
 * hosts in this process, each with its own caller name and loopback address
 * (127.0.0.2, 127.0.0.3), each answering PORTMAP for its lock service on the
 * one fixed port P that the server is told to ask (nsm.peerPortmapPort). A
 * blocking wait ends by the server's GRANTED callback (the poll interval is
 * made too long to be what ends it); an abandoned wait is cancelled; a
 * server restart makes the clients reclaim in its grace period; a client
 * host killed holding a lock is freed when it starts again (SM_NOTIFY).
 */
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NfsClient } from '../../client/nfs-client.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { createServer } from '../../server/index.ts'
import type { TsnfsServer } from '../../server/index.ts'
import { ROOT } from '../cli/cli.ts'
import { freePort } from '../helpers/ports.ts'
import { startServer } from '../helpers/server.ts'

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const base = t.testdir({ a: {}, b: {}, c: {} })
const P = await freePort()
const GRACE_MS = 3000
const locking = { nsm: { peerPortmapPort: P }, nlm: { graceMs: GRACE_MS } }
const warnings: string[] = []
const log = { warn: (m: string) => { warnings.push(m) } }

function query(name: string, addr: string, dir: string): string {
  return `callername=${name}&clientaddr=${addr}&lockportmapport=${String(P)}&lockstatedir=${join(base, dir)}`
}

/** A client host; blocking waits are never ended by the poll here (60 s), only by callbacks. */
async function host(t: Test, url: (q: string) => string, name: string, addr: string, dir: string): Promise<NfsClient> {
  const c = await NfsClient.mount(url(query(name, addr, dir)), { log, lockPollMs: 60_000, lockGraceWaitMs: 200 })
  t.teardown(() => c.umount())
  return c
}

function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return env
}

const server = await startServer(t, EXPORTS, { locking })
const url = (q: string): string => server.url('/export', '', q)

t.test('two hosts contend: denied, TEST names the holder, shared readers coexist', async t => {
  const a = await host(t, url, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, url, 'host-b', '127.0.0.3', 'b')
  await a.writeFile('/f1', Buffer.alloc(100))
  await a.lock('/f1', { start: 0, length: 50, exclusive: true, wait: false, owner: 1 })
  await t.rejects(b.lock('/f1', { start: 49, length: 1, exclusive: false, wait: false, owner: 2 }), { code: 'NLM_DENIED', errno: 'EAGAIN', status: 1 })
  t.match(await b.test('/f1', { start: 0, length: 0, exclusive: false, owner: 2 }), { exclusive: true, svid: 1, start: 0n, length: 50n })
  await b.lock('/f1', { start: 50, length: 0, exclusive: false, wait: false, owner: 2 })
  await a.lock('/f1', { start: 60, length: 10, exclusive: false, wait: false, owner: 1 })
  await t.rejects(a.lock('/f1', { start: 60, length: 10, exclusive: true, wait: false, owner: 1 }), { code: 'NLM_DENIED' }, 'no upgrade over the other reader')
  await a.unlock('/f1', { start: 0, length: 0, owner: 1 })
  await b.lock('/f1', { start: 0, length: 50, exclusive: true, wait: false, owner: 2 })
})

t.test('a blocking wait is released by the GRANTED callback, found through the portmapper on P', async t => {
  const a = await host(t, url, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, url, 'host-b', '127.0.0.3', 'b')
  await a.writeFile('/f2', Buffer.alloc(10))
  await a.lock('/f2', { start: 0, length: 0, exclusive: true, wait: false, owner: 3 })
  const svc = await (await b.locks()).service()
  const before = svc.answered()
  let got = false
  const waiting = b.lock('/f2', { start: 0, length: 10, exclusive: true, wait: true, owner: 4 }).then(() => { got = true })
  await new Promise(r => setTimeout(r, 500))
  t.notOk(got, 'waits while a holds it')
  const t0 = Date.now()
  await a.unlock('/f2', { start: 0, length: 0, owner: 3 })
  await waiting
  t.ok(Date.now() - t0 < 10_000, `granted ${String(Date.now() - t0)} ms after the unlock (the poll would take 60 s)`)
  const after = svc.answered()
  const callbacks = (after.NLMPROC4_GRANTED ?? 0) + (after.NLMPROC4_GRANTED_MSG ?? 0) - (before.NLMPROC4_GRANTED ?? 0) - (before.NLMPROC4_GRANTED_MSG ?? 0)
  t.equal(callbacks, 1, 'one GRANTED callback reached the waiter')
  await t.rejects(a.lock('/f2', { start: 5, length: 1, exclusive: false, wait: false, owner: 3 }), { code: 'NLM_DENIED' }, 'b holds it now')
})

t.test('aborting a wait sends CANCEL: the server forgets the request', async t => {
  const a = await host(t, url, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, url, 'host-b', '127.0.0.3', 'b')
  await a.writeFile('/f3', Buffer.alloc(10))
  await a.lock('/f3', { start: 0, length: 0, exclusive: true, wait: false, owner: 5 })
  const svc = await (await b.locks()).service()
  const ac = new AbortController()
  const waiting = b.lock('/f3', { start: 0, length: 1, exclusive: true, wait: true, owner: 6, signal: ac.signal })
  await new Promise(r => setTimeout(r, 300))
  ac.abort()
  await t.rejects(waiting, { code: 'NLM_CANCELLED', errno: 'EINTR' })
  const before = svc.answered()
  await a.unlock('/f3', { start: 0, length: 0, owner: 5 })
  await new Promise(r => setTimeout(r, 1000))
  t.same(svc.answered(), before, 'no GRANTED came for the cancelled request')
  await a.lock('/f3', { start: 0, length: 0, exclusive: true, wait: false, owner: 5 })
  t.pass('the range is free for a again: the cancelled request was never granted')
})

t.test('server restart: the clients reclaim in the grace period, newcomers wait for it', async t => {
  const port = await freePort()
  const stateDir = mkdtempSync(join(tmpdir(), 'tsnfs-lock-restart-'))
  t.teardown(() => { rmSync(stateDir, { recursive: true, force: true }) })
  // A host directory: the file, and its handle, outlive the server (a memory export would not).
  const exported = join(stateDir, 'export')
  mkdirSync(exported)
  const start = (): Promise<TsnfsServer> => createServer({ exports: parseExports(`${exported} *(rw,insecure,no_root_squash)\n`, 'exports'), stateDir, port, host: '127.0.0.1', locking })
  let s = await start()
  t.teardown(() => s.close())
  const u = (q: string): string => `nfs://127.0.0.1${exported}?nfsport=${String(port)}&mountport=${String(port)}&${q}`
  const a = await host(t, u, 'host-a', '127.0.0.2', 'a')
  const b = await host(t, u, 'host-b', '127.0.0.3', 'b')
  await a.writeFile('/r', Buffer.alloc(10))
  await a.lock('/r', { start: 0, length: 5, exclusive: true, wait: false, owner: 7 })
  await a.lock('/r', { start: 5, length: 5, exclusive: false, wait: false, owner: 8 })
  const svc = await (await a.locks()).service()
  const notified = svc.answered().SM_NOTIFY ?? 0
  await s.close()
  s = await start()
  for (let i = 0; i < 100 && (svc.answered().SM_NOTIFY ?? 0) === notified; i++) await new Promise(r => setTimeout(r, 50))
  t.equal((svc.answered().SM_NOTIFY ?? 0) - notified, 1, "the restarted server's NSM told host-a")
  await (await a.locks()).reclaiming
  t.same((await (await a.locks()).heldBy((await a.resolve('/r')).fh, 7)).map(r => [r.start, r.end]), [[0n, 5n]], 'host-a still holds what it reclaimed')
  await t.rejects(b.lock('/r', { start: 9, length: 1, exclusive: false, wait: false }), { code: 'NLM_GRACE', errno: 'ENOLCK' }, 'a new lock waits for the grace period')
  await new Promise(r => setTimeout(r, GRACE_MS + 500))
  await t.rejects(b.lock('/r', { start: 0, length: 1, exclusive: false, wait: false }), { code: 'NLM_DENIED' }, 'the reclaimed exclusive lock holds')
  await t.rejects(b.lock('/r', { start: 9, length: 1, exclusive: true, wait: false }), { code: 'NLM_DENIED' }, 'the reclaimed shared lock holds')
  await b.lock('/r', { start: 9, length: 1, exclusive: false, wait: false })
})

t.test('a client host killed holding a lock is freed when it starts again and notifies the server', async t => {
  const b = await host(t, url, 'host-b', '127.0.0.3', 'b')
  await b.writeFile('/k', Buffer.alloc(10))
  const q = query('host-c', '127.0.0.4', 'c')
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/lock-holder.ts'), url(q), '/k'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: childEnv() })
  const [line] = await once(child.stdout, 'data') as [Buffer]
  t.equal(line.toString().trim(), 'locked')
  await t.rejects(b.lock('/k', { start: 0, length: 1, exclusive: true, wait: false }), { code: 'NLM_DENIED' })
  child.kill('SIGKILL')
  await once(child, 'exit')
  await t.rejects(b.lock('/k', { start: 0, length: 1, exclusive: true, wait: false }), { code: 'NLM_DENIED' }, 'still held for the dead host')
  const c = await host(t, url, 'host-c', '127.0.0.4', 'c')
  await (await c.locks()).service()
  await b.lock('/k', { start: 0, length: 1, exclusive: true, wait: false })
  t.pass("host-c's SM_NOTIFY at its start freed the old instance's lock")
})

t.test('no warnings', async t => {
  t.same(warnings, [], warnings.join('\n'))
})
