/*
 * A node's takeover and fencing steps (server/replication/address.ts): the
 * hooks in this process (environment, exit status, failure, timeout with the
 * process group killed, a hook leaving a daemon behind), then the built-in
 * --vip in a lab of network namespaces (test/helpers/netns.ts): the address
 * moves from host a to host b, answers from b over TCP, and the gratuitous ARP
 * is what moves a client that had a's MAC cached.
 */
import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join, dirname, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import type { LogFn, Logger } from '../../../server/logger.ts'
import { AddressError, ServiceAddress, findCommand, parseVip } from '../../../server/replication/address.ts'
import type { StepResult } from '../../../server/replication/address.ts'
import type { AddressRequest, LogEntry } from '../../helpers/address-node.ts'
import { createLab, labSkipReason } from '../../helpers/netns.ts'
import type { Lab } from '../../helpers/netns.ts'
import { startAgents } from '../../helpers/lab-tcp.ts'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')

function logger(into: LogEntry[]): Logger {
  const at =
    (level: string): LogFn =>
    (a: object | string, msg?: string) => {
      into.push(typeof a === 'string' ? { level, msg: a, obj: {} } : { level, msg: msg ?? '', obj: a as Record<string, unknown> })
    }
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log }
  return log
}

/** Running, not exited (a reparented child may linger as a zombie until someone reaps it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8')
    return !/^\d+ \(.*\) [ZX] /.test(stat)
  } catch {
    return false
  }
}

t.test('--on-takeover and --on-fenced run with the role, the epoch and the node in their environment', async (t) => {
  const dir = t.testdir()
  const out = join(dir, 'env')
  const logs: LogEntry[] = []
  const cmd = `printf '%s %s %s %s' "$TSNFS_ROLE" "$TSNFS_EPOCH" "$TSNFS_NODE" "\${TSNFS_VIP-none}" > ${out}; echo said-hello`
  const node = new ServiceAddress({ node: 'n1', onTakeover: cmd, onFenced: cmd, log: logger(logs) })
  const up = await node.takeover(7n)
  t.match(up, [{ step: 'on-takeover', ok: true, detail: 'exit 0' }])
  t.equal(up.length, 1, 'no VIP steps without --vip')
  t.equal(readFileSync(out, 'utf8'), 'primary 7 n1 none')
  t.match(logs, [{ level: 'info', msg: 'on-takeover: exit 0', obj: { step: 'on-takeover', output: 'said-hello', command: cmd } }], 'logged with its output')
  t.match(await node.fenced(8n), [{ step: 'on-fenced', ok: true, detail: 'exit 0' }])
  t.equal(readFileSync(out, 'utf8'), 'fenced 8 n1 none')
  t.strictSame(await new ServiceAddress({ node: 'n1', log: logger([]) }).takeover(1n), [], 'nothing configured, nothing run')
})

t.test('a failing hook is logged as an error with its exit status and output; the takeover goes on', async (t) => {
  const logs: LogEntry[] = []
  const node = new ServiceAddress({ node: 'n1', onTakeover: 'echo oops >&2; exit 3', onFenced: '/nonexistent/hook', log: logger(logs) })
  t.match(await node.takeover(2n), [{ step: 'on-takeover', ok: false, detail: 'exit 3' }])
  t.match(logs[0], { level: 'error', msg: 'on-takeover failed: exit 3; the role change goes on', obj: { output: 'oops' } })
  t.match(await node.fenced(3n), [{ step: 'on-fenced', ok: false, detail: 'exit 127' }], "sh's status for a command not found")
})

t.test('a hook past its timeout is killed with its whole process group', async (t) => {
  const dir = t.testdir()
  const pidFile = join(dir, 'pid')
  const logs: LogEntry[] = []
  const node = new ServiceAddress({ node: 'n1', onTakeover: `sleep 30 & echo $! > ${pidFile}; wait`, timeoutMs: 300, log: logger(logs) })
  const start = performance.now()
  const [r] = await node.takeover(1n)
  t.match(r, { step: 'on-takeover', ok: false, detail: 'timeout after 300 ms (killed)' })
  t.ok(performance.now() - start < 3000, 'returns soon after the timeout')
  const pid = Number(readFileSync(pidFile, 'utf8'))
  await sleep(50)
  t.notOk(alive(pid), "the hook's own child was killed too")
  t.equal(logs[0]?.level, 'error')
})

t.test('a hook that leaves a daemon running is done when it exits', async (t) => {
  const dir = t.testdir()
  const pidFile = join(dir, 'pid')
  // The background sleep keeps the hook's stdout open.
  const node = new ServiceAddress({ node: 'n1', onTakeover: `sleep 20 & echo $! > ${pidFile}; exit 0`, timeoutMs: 5000, log: logger([]) })
  const [r] = await node.takeover(1n)
  const pid = Number(readFileSync(pidFile, 'utf8'))
  t.teardown(() => {
    if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  t.match(r, { ok: true, detail: 'exit 0' })
  t.ok((r?.ms ?? Infinity) < 2000, `not held by the daemon's open output (${String(r?.ms)} ms)`)
  t.ok(alive(pid), 'and the daemon is left alone')
})

t.test('without ip the VIP step fails, is logged, and the hook still runs', async (t) => {
  const logs: LogEntry[] = []
  const node = new ServiceAddress({ node: 'n1', vip: parseVip('10.9.9.9/24', 'eth0'), ip: '/nonexistent/ip', arping: null, onTakeover: 'exit 0', log: logger(logs) })
  const r = await node.takeover(1n)
  t.match(r, [{ step: 'vip-add', ok: false, detail: /^ip addr add 10\.9\.9\.9\/24 dev eth0: failed to start: .*ENOENT/ }, { step: 'arping', ok: true }, { step: 'on-takeover', ok: true }])
  t.match(logs, [{ level: 'error' }], 'the failure is an error in the log')
})

t.test('--vip is parsed strictly', async (t) => {
  t.strictSame(parseVip('192.168.7.10/24', 'eth0'), { address: '192.168.7.10', prefix: 24, dev: 'eth0' })
  t.strictSame(parseVip('fd00::10/64', 'bond0.12'), { address: 'fd00::10', prefix: 64, dev: 'bond0.12' })
  for (const bad of ['192.168.7.10', '192.168.7.10/33', '192.168.7.10/0', '192.168.7/24', 'host/24', '10.0.0.1/2x', 'fd00::1/129', '/24']) {
    t.throws(() => parseVip(bad, 'eth0'), { code: 'ADDR_BAD_VIP' }, bad)
  }
  t.throws(() => parseVip('10.0.0.1/24', 'eth0 label x'), { code: 'ADDR_BAD_VIP' })
  t.throws(() => parseVip('10.0.0.1/24', 'a-very-long-interface-name'), { code: 'ADDR_BAD_VIP' })
  t.ok(new AddressError('ADDR_BAD_VIP', 'x') instanceof Error)
  t.match(findCommand('sh', ''), /^\/(usr\/)?s?bin\/sh$/, 'found in the sbin and bin folders without PATH')
  t.not(findCommand('sh'), null)
  t.equal(findCommand('tsnfs-no-such-command'), null)
})

interface Reply {
  results: StepResult[]
  logs: LogEntry[]
}

/** address-node.ts running in a lab host; one request at a time. */
async function addressNode(lab: Lab, host: string): Promise<(req: AddressRequest) => Promise<Reply>> {
  const child = lab.spawn(host, [process.execPath, '--import', 'tsx', join(ROOT, 'test/helpers/address-node.ts')], { stdio: ['pipe', 'pipe', 'inherit'], cwd: ROOT })
  if (child.stdout === null || child.stdin === null) throw new Error('no pipes')
  const lines = createInterface({ input: child.stdout })
  const pending: ((line: string) => void)[] = []
  lines.on('line', (l) => pending.shift()?.(l))
  const ready = new Promise<string>((r) => pending.push(r))
  const exited = once(child, 'exit').then(() => {
    throw new Error(`address node in ${host} exited`)
  })
  await Promise.race([ready, exited])
  const stdin = child.stdin
  return async (req) => {
    const line = new Promise<string>((r) => pending.push(r))
    stdin.write(`${JSON.stringify(req)}\n`)
    return JSON.parse(await line) as Reply
  }
}

async function neighbourMac(lab: Lab, host: string, addr: string): Promise<string> {
  const { stdout } = await lab.exec(host, ['ip', 'neigh', 'show', addr, 'dev', 'eth0'])
  return /lladdr (\S+)/.exec(stdout)?.[1] ?? `none (${stdout.trim()})`
}

async function hasAddress(lab: Lab, host: string, addr: string): Promise<boolean> {
  const { stdout } = await lab.exec(host, ['ip', '-o', 'addr', 'show', 'dev', 'eth0'])
  return stdout.includes(` ${addr}/`)
}

const skip = labSkipReason() ?? (findCommand('arping') === null ? 'needs arping (Debian iputils-arping)' : null)

t.test('--vip moves the service address between hosts and announces it', { skip: skip ?? false }, async (t: Test) => {
  const lab = await createLab({ hosts: ['a', 'b', 'client'], subnet: '10.232.0.0/24' })
  t.teardown(() => lab.destroy())
  const vip = lab.spareAddress(0)
  const dir = t.testdir()
  const hook = `echo "$TSNFS_NODE $TSNFS_ROLE $TSNFS_EPOCH $TSNFS_VIP $TSNFS_VIP_DEV" >> ${join(dir, 'hooks')}`
  const options = (node: string, arping?: null) => ({ node, vip: { address: vip, prefix: lab.prefix, dev: 'eth0' }, onTakeover: hook, onFenced: hook, ...(arping === null ? { arping } : {}) })
  const [agents, a, b] = await Promise.all([startAgents(lab, 7070), addressNode(lab, 'a'), addressNode(lab, 'b')])
  const client = agents.client
  if (client === undefined) throw new Error('no client agent')
  const [macA, macB] = await Promise.all([lab.mac('a'), lab.mac('b')])

  const first = await a({ op: 'takeover', epoch: '1', options: options('a') })
  t.match(first.results, [
    { step: 'vip-add', ok: true, detail: `added ${vip}/24 on eth0` },
    { step: 'arping', ok: true, detail: /-U -c 3 -I eth0 .*: exit 0$/ },
    { step: 'on-takeover', ok: true },
  ])
  t.equal(await client.ask(vip, 7070), 'a', 'the address answers from a')
  t.equal(await neighbourMac(lab, 'client', vip), macA, "the client has a's MAC for it")
  t.match((await a({ op: 'takeover', epoch: '1', options: options('a', null) })).results[0], { ok: true, detail: `${vip}/24 already present on eth0` }, 'taking over twice is fine')

  t.match((await a({ op: 'fenced', epoch: '1', options: options('a') })).results, [{ step: 'vip-del', ok: true, detail: `removed ${vip}/24 on eth0` }, { step: 'on-fenced', ok: true }])
  t.notOk(await hasAddress(lab, 'a', vip), 'a no longer holds it')
  t.match((await a({ op: 'fenced', epoch: '1', options: options('a') })).results[0], { ok: true, detail: `${vip}/24 not present on eth0` }, 'fencing twice is fine')

  const second = await b({ op: 'takeover', epoch: '2', options: options('b') })
  t.match(second.results, [{ step: 'vip-add', ok: true }, { step: 'arping', ok: true }, { step: 'on-takeover', ok: true }])
  t.equal(await neighbourMac(lab, 'client', vip), macB, "the gratuitous ARP moved the client's entry to b's MAC")
  t.equal(await client.ask(vip, 7070), 'b', 'the address answers from b, no flush needed')

  // Back to a without arping: the client keeps sending to b's MAC, and b drops it.
  await b({ op: 'fenced', epoch: '2', options: options('b') })
  const quiet = await a({ op: 'takeover', epoch: '3', options: options('a', null) })
  t.match(quiet.results[1], { step: 'arping', ok: true, detail: /^no arping/ })
  t.match(quiet.logs, [{ level: 'info' }, { level: 'warn', msg: /^arping: no arping/ }], 'the missing announcement is a warning')
  t.equal(await neighbourMac(lab, 'client', vip), macB, 'unannounced, the client still has b for it')
  t.match(await client.ask(vip, 7070, 800), /^error /, 'so it cannot reach the address until its entry expires')
  await lab.exec('client', ['ip', 'neigh', 'flush', 'dev', 'eth0'])
  t.equal(await client.ask(vip, 7070), 'a', 'once it re-learns, a answers')

  // IPv6: added and removed the same way; the kernel announces it (no arping).
  const v6 = { node: 'a', vip: { address: 'fd00:232::10', prefix: 64, dev: 'eth0' } }
  t.match((await a({ op: 'takeover', epoch: '4', options: v6 })).results, [{ step: 'vip-add', ok: true, detail: 'added fd00:232::10/64 on eth0' }])
  t.ok(await hasAddress(lab, 'a', 'fd00:232::10'), 'a holds the IPv6 address')
  t.match((await a({ op: 'fenced', epoch: '4', options: v6 })).results, [{ step: 'vip-del', ok: true, detail: 'removed fd00:232::10/64 on eth0' }])
  t.notOk(await hasAddress(lab, 'a', 'fd00:232::10'), 'and no longer after fencing')

  t.strictSame(readFileSync(join(dir, 'hooks'), 'utf8').trim().split('\n'), [
    `a primary 1 ${vip}/24 eth0`,
    `a primary 1 ${vip}/24 eth0`,
    `a fenced 1 ${vip}/24 eth0`,
    `a fenced 1 ${vip}/24 eth0`,
    `b primary 2 ${vip}/24 eth0`,
    `b fenced 2 ${vip}/24 eth0`,
    `a primary 3 ${vip}/24 eth0`,
  ], 'every hook ran in its host with its environment')
})
