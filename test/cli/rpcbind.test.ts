/*
 * Registration with the system rpcbind (Debian's), checked with rpcinfo -p:
 * `tsnfs serve --rpcbind` registers NFS 3 and MOUNT 1+3 on tcp and udp at its
 * port and removes them on SIGTERM. Two servers on one host (issue 11 point
 * 7): the second neither replaces (unless --rpcbind-replace) nor removes the
 * first one's mappings, and cannot share its state directory. Mappings of
 * those programs that existed before the test are put back afterwards. Uses
 * a running rpcbind, or starts `rpcbind -f -w` for the test, or skips saying
 * why.
 */
import t from 'tap'
import type { Test } from 'tap'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import type { mapping } from '../../xdr/generated/portmap.ts'
import { rpcbindAnswers } from '../../server/rpcbind.ts'
import { freePort } from '../helpers/ports.ts'
import { serveProcess, tsnfs } from './cli.ts'

const run = promisify(execFile)
const P = PMAP_PROG.versions.PMAP_VERS.procs
const OURS = new Set([100003, 100005])

async function rpcinfo(): Promise<string[]> {
  const { stdout } = await run('rpcinfo', ['-p', '127.0.0.1'])
  return stdout
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(\w+)\s+(\d+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && OURS.has(Number(m[1])))
    .map((m) => `${m[1] ?? ''} ${m[2] ?? ''} ${m[3] ?? ''} ${m[4] ?? ''}`)
    .sort()
}

async function ensureRpcbind(): Promise<string | null> {
  if (await rpcbindAnswers()) return null
  let child
  try {
    child = spawn('rpcbind', ['-f', '-w'], { stdio: 'ignore' })
  } catch (err) {
    return `cannot start rpcbind: ${String(err)}`
  }
  const failed = new Promise<string>((resolve) => child.once('error', (err) => {
    resolve(`cannot start rpcbind: ${err.message}`)
  }))
  t.teardown(() => {
    child.kill('SIGTERM')
  })
  for (let i = 0; i < 30; i++) {
    const r = await Promise.race([failed, sleep(100).then(() => null)])
    if (r !== null) return r
    if (await rpcbindAnswers()) return null
  }
  return 'rpcbind started but does not answer on 127.0.0.1:111'
}

/**
 * A running system rpcbind for t, with whatever it had registered for NFS and MOUNT put back at
 * the end (a registration replaces it); false, with t planned as skipped and why, when there is none.
 */
async function withSystemRpcbind(t: Test): Promise<boolean> {
  const why = await ensureRpcbind()
  if (why !== null) {
    // A plan of 0 with a reason: tap reports the test as skipped, with the reason.
    t.plan(0, `no system rpcbind: ${why}`)
    return false
  }
  const pm = await RpcTcpClient.connect('127.0.0.1', 111, { cred: 'none' })
  t.teardown(() => pm.close())
  const before: mapping[] = (await pm.call(100000, 2, P.PMAPPROC_DUMP, undefined)).map((n) => n.map).filter((m) => OURS.has(m.prog))
  t.teardown(async () => {
    for (const m of before) await pm.call(100000, 2, P.PMAPPROC_SET, m)
  })
  return true
}

t.test('serve --rpcbind registers on start and unregisters on SIGTERM', async (t) => {
  if (!(await withSystemRpcbind(t))) return

  const dir = t.testdir({})
  // --rpcbind-replace: a server of another test running now may hold the registration (it is put back above).
  const s = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--state-dir', dir, '--rpcbind-replace', '--log-level', 'warn'])
  t.match(s.banner, `registered with the system rpcbind (MOUNT 1+3, NFS 3 on tcp and udp port ${String(s.port)})`)
  const p = String(s.port)
  t.same(
    await rpcinfo(),
    [`100003 3 tcp ${p}`, `100003 3 udp ${p}`, `100005 1 tcp ${p}`, `100005 1 udp ${p}`, `100005 3 tcp ${p}`, `100005 3 udp ${p}`],
    'rpcinfo -p lists exactly our mappings (stale ones were unset first)',
  )
  const { stdout } = await run('rpcinfo', ['-t', '127.0.0.1', 'nfs', '3'])
  t.match(stdout, /program 100003 version 3 ready and waiting/, 'rpcinfo reaches NFS through rpcbind')
  s.child.kill('SIGTERM')
  t.equal(await s.exit, 0)
  t.same(await rpcinfo(), [], 'nothing of ours is left after exit')
})

t.test("two servers on one host: the second neither takes nor removes the first one's registrations", async (t) => {
  if (!(await withSystemRpcbind(t))) return
  const dirA = t.testdir({ a: {}, b: {} })
  const a = await serveProcess(t, ['--port', '0', '--host', '127.0.0.1', '--state-dir', `${dirA}/a`, '--rpcbind-replace', '--log-level', 'warn'])
  const pa = String(a.port)
  const mapsOfA = [`100003 3 tcp ${pa}`, `100003 3 udp ${pa}`, `100005 1 tcp ${pa}`, `100005 1 udp ${pa}`, `100005 3 tcp ${pa}`, `100005 3 udp ${pa}`]
  t.same(await rpcinfo(), mapsOfA, 'the first server is registered')

  const required = await tsnfs(['serve', '--port', '0', '--host', '127.0.0.1', '--state-dir', `${dirA}/b`, '--rpcbind'])
  t.equal(required.code, 1, '--rpcbind: the second server refuses to start')
  t.match(required.stderr, new RegExp(`maps .* to port ${pa}, where another server answers; not replacing its registration \\(--rpcbind-replace takes it over\\)`))
  t.same(await rpcinfo(), mapsOfA, "and the first one's mappings are intact")

  // The default (a fixed port, rpcbind answering): serve without registering, saying why.
  const b = await serveProcess(t, ['--port', String(await freePort()), '--host', '127.0.0.1', '--state-dir', `${dirA}/b`])
  t.notMatch(b.banner, /registered with the system rpcbind/, 'the second server does not register')
  await b.waitForLog(/not replacing its registration/)
  t.same(await rpcinfo(), mapsOfA, "the first one's mappings are intact while it runs")
  b.child.kill('SIGTERM')
  t.equal(await b.exit, 0)
  t.same(await rpcinfo(), mapsOfA, 'and after it stopped: it removed nothing it had not registered')

  const shared = await tsnfs(['serve', '--port', '0', '--host', '127.0.0.1', '--state-dir', `${dirA}/a`, '--no-rpcbind'])
  t.equal(shared.code, 1, 'a state directory a live server holds is refused')
  t.match(shared.stderr, `${dirA}/a is in use by the tsnfs server with pid ${String(a.child.pid)} (port 0); give each server its own --state-dir`)

  a.child.kill('SIGTERM')
  t.equal(await a.exit, 0)
  t.same(await rpcinfo(), [], 'the first server removes its own mappings')
})
