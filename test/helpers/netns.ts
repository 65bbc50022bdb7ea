/*
 * A lab of "hosts" for tests that need separate machines (issue 15: primary,
 * standbys and clients): one network namespace per host, each with loopback
 * up and one veth link to a bridge that lives in a namespace of its own (never
 * the root namespace: nothing in a lab can reach or disturb the machine's own
 * network, and two labs may use the same subnet). Needs root and iproute2's
 * `ip netns`; labSkipReason() says when a test should skip.
 *
 * Names are `tsnfs-lab-PID-N-HOST` (the bridge `tsnfs-lab-PID-N.br`), so test
 * files running in parallel never clash. A lab is removed by destroy(), by a
 * process 'exit' hook, by a detached watchdog shell once the test process is
 * gone (tap kills a timed-out test without running exit hooks), and by the
 * next createLab() in any process, which removes every lab of a dead pid.
 */
import { execFile, execFileSync, spawn } from 'node:child_process'
import type { ChildProcess, SpawnOptions } from 'node:child_process'
import { readdirSync } from 'node:fs'

const PREFIX = 'tsnfs-lab-'
const STALE = /^tsnfs-lab-(\d+)-\d+[-.]/
const HOST_NAME = /^[a-z][a-z0-9]{0,15}$/
const NETNS_DIR = '/run/netns'

export interface LabOptions {
  hosts: readonly string[]
  /** An IPv4 /8 to /30 network, e.g. '10.231.0.0/24'; host i gets the address i + 1. */
  subnet?: string
}

export interface ExecOptions {
  timeoutMs?: number
  /** Resolve with the exit code instead of throwing on a non-zero one. */
  allowFail?: boolean
  env?: NodeJS.ProcessEnv
}

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

export class LabError extends Error {
  readonly code: 'LAB_EXEC_FAILED' | 'LAB_BAD_OPTIONS' | 'LAB_NO_HOST' | 'LAB_DESTROYED'
  constructor(code: LabError['code'], message: string) {
    super(message)
    this.name = 'LabError'
    this.code = code
  }
}

/** Why a lab cannot be built here (a reason for t.skip), or null when it can. */
export function labSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' })
  } catch {
    return '`ip netns` is unavailable (Debian package iproute2)'
  }
  return null
}

/** Every namespace of every lab that exists now, of any process. */
export function labNamespaces(): string[] {
  try {
    return readdirSync(NETNS_DIR).filter((n) => n.startsWith(PREFIX))
  } catch {
    return []
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Kill whatever runs in a namespace, then delete it (a namespace with processes left outlives its name). */
function removeNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter((p) => p !== '')
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL')
      } catch {
        /* gone already */
      }
    }
  } catch {
    /* no such namespace */
  }
  try {
    execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' })
  } catch {
    /* deleted already */
  }
}

/** Remove the labs of processes that died without cleaning up; returns the namespaces removed. */
export function removeStaleLabs(): string[] {
  const removed: string[] = []
  for (const ns of labNamespaces()) {
    const m = STALE.exec(ns)
    if (m === null || alive(Number(m[1]))) continue
    removeNamespaceSync(ns)
    removed.push(ns)
  }
  return removed
}

function parseSubnet(subnet: string, count: number): { base: number; prefix: number } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(subnet)
  const octets = m?.slice(1, 5).map(Number) ?? []
  const prefix = Number(m?.[5])
  if (m === null || octets.some((o) => o > 255) || prefix < 8 || prefix > 30) {
    throw new LabError('LAB_BAD_OPTIONS', `subnet ${subnet}: want an IPv4 network a.b.c.d/8..30`)
  }
  const [a = 0, b = 0, c = 0, d = 0] = octets
  const mask = (~0 << (32 - prefix)) >>> 0
  const base = (((a << 24) | (b << 16) | (c << 8) | d) & mask) >>> 0
  // Room for the hosts, a few service addresses (VIPs) and the broadcast address.
  if (2 ** (32 - prefix) < count + 16) throw new LabError('LAB_BAD_OPTIONS', `subnet ${subnet} is too small for ${String(count)} hosts`)
  return { base, prefix }
}

function ipString(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd = '', ...args] = argv
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 20_000, env: opts.env ?? process.env, maxBuffer: 4 << 20, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      if (code !== 0 && opts.allowFail !== true) {
        reject(new LabError('LAB_EXEC_FAILED', `${argv.join(' ')} exited ${err?.killed === true ? 'on timeout' : String(code)}: ${stderr.trim()}`))
      } else {
        resolve({ code, stdout, stderr })
      }
    })
  })
}

let labCounter = 0
const liveLabs = new Set<Lab>()
process.on('exit', () => {
  for (const lab of liveLabs) lab.destroySync()
})

/*
 * Deletes the lab's namespaces once the test process is gone, unless they are
 * gone already; detached, so it outlives a SIGKILLed test.
 */
const WATCHDOG = 'pid=$1; shift; while kill -0 "$pid" 2>/dev/null && [ -e "/run/netns/$1" ]; do sleep 1; done; for ns; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns delete "$ns" 2>/dev/null; done; exit 0'

export class Lab {
  readonly name: string
  readonly hosts: readonly string[]
  readonly prefix: number
  private readonly base: number
  private readonly bridgeNs: string
  private readonly children = new Set<ChildProcess>()
  private destroyed = false

  constructor(name: string, hosts: readonly string[], base: number, prefix: number) {
    this.name = name
    this.hosts = hosts
    this.base = base
    this.prefix = prefix
    this.bridgeNs = `${name}.br`
  }

  /** The namespace a host lives in (for `ip netns exec` by hand). */
  ns(host: string): string {
    if (!this.hosts.includes(host)) throw new LabError('LAB_NO_HOST', `lab ${this.name} has no host ${host}`)
    return `${this.name}-${host}`
  }

  /** A host's own address (its veth is eth0). */
  address(host: string): string {
    this.ns(host)
    return ipString(this.base + this.hosts.indexOf(host) + 1)
  }

  /** An address of the subnet that no host owns: service addresses (VIPs) to move around; i from 0. */
  spareAddress(i: number): string {
    return ipString(this.base + this.hosts.length + 10 + i)
  }

  /** The bridge's port for a host, in the bridge's namespace. */
  private port(host: string): string {
    return `p${String(this.hosts.indexOf(host))}`
  }

  namespaces(): string[] {
    return [this.bridgeNs, ...this.hosts.map((h) => `${this.name}-${h}`)]
  }

  async build(): Promise<void> {
    const br = this.bridgeNs
    for (const ns of this.namespaces()) await run(['ip', 'netns', 'add', ns])
    // The watchdog first: a crash in the middle of building still cleans up.
    spawn('sh', ['-c', WATCHDOG, 'tsnfs-lab-watchdog', String(process.pid), ...this.namespaces()], { detached: true, stdio: 'ignore' }).unref()
    // No STP: ports forward as soon as they are up, so linkUp() restores traffic at once.
    await run(['ip', '-n', br, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0'])
    await run(['ip', '-n', br, 'link', 'set', 'br0', 'up'])
    for (const host of this.hosts) {
      const ns = this.ns(host)
      await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
      await run(['ip', '-n', br, 'link', 'add', this.port(host), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      await run(['ip', '-n', br, 'link', 'set', this.port(host), 'master', 'br0', 'up'])
      await run(['ip', '-n', ns, 'addr', 'add', `${this.address(host)}/${String(this.prefix)}`, 'dev', 'eth0'])
      await run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    }
  }

  private check(): void {
    if (this.destroyed) throw new LabError('LAB_DESTROYED', `lab ${this.name} is destroyed`)
  }

  /** Run a command in a host and wait for it; throws LabError('LAB_EXEC_FAILED') on a non-zero exit unless allowFail. */
  async exec(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.check()
    return await run(['ip', 'netns', 'exec', this.ns(host), ...argv], opts)
  }

  /** Start a command in a host; destroy() kills it. `ip netns exec` execs the command, so child.pid is its pid. */
  spawn(host: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    this.check()
    const child = spawn('ip', ['netns', 'exec', this.ns(host), ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    this.children.add(child)
    child.once('exit', () => this.children.delete(child))
    return child
  }

  /** Partition a host: its bridge port goes down, so nothing passes either way. */
  async linkDown(host: string): Promise<void> {
    this.check()
    await run(['ip', '-n', this.bridgeNs, 'link', 'set', this.port(host), 'down'])
  }

  async linkUp(host: string): Promise<void> {
    this.check()
    await run(['ip', '-n', this.bridgeNs, 'link', 'set', this.port(host), 'up'])
  }

  /** Give a host a service address, as keepalived does on the node that becomes master. */
  async addAddress(host: string, vip: string): Promise<void> {
    this.check()
    await run(['ip', '-n', this.ns(host), 'addr', 'add', `${vip}/${String(this.prefix)}`, 'dev', 'eth0'])
  }

  async removeAddress(host: string, vip: string): Promise<void> {
    this.check()
    await run(['ip', '-n', this.ns(host), 'addr', 'del', `${vip}/${String(this.prefix)}`, 'dev', 'eth0'])
  }

  /** A host's eth0 MAC address (to check whom a neighbour table points at). */
  async mac(host: string): Promise<string> {
    const { stdout } = await this.exec(host, ['cat', '/sys/class/net/eth0/address'])
    return stdout.trim()
  }

  /** Idempotent: kills every process spawned here and deletes the namespaces. */
  destroy(): Promise<void> {
    this.destroySync()
    return Promise.resolve()
  }

  /** destroy() for the process 'exit' hook, where nothing asynchronous runs. */
  destroySync(): void {
    if (this.destroyed) return
    this.destroyed = true
    liveLabs.delete(this)
    for (const c of this.children) c.kill('SIGKILL')
    this.children.clear()
    for (const ns of this.namespaces()) removeNamespaceSync(ns)
  }
}

/** Build a lab (removing labs of dead processes first). Call lab.destroy() in t.teardown. */
export async function createLab(opts: LabOptions): Promise<Lab> {
  const hosts = [...opts.hosts]
  if (hosts.length === 0 || hosts.length > 64) throw new LabError('LAB_BAD_OPTIONS', 'a lab has 1 to 64 hosts')
  for (const h of hosts) {
    if (!HOST_NAME.test(h)) throw new LabError('LAB_BAD_OPTIONS', `host name ${h}: want [a-z][a-z0-9]{0,15}`)
  }
  if (new Set(hosts).size !== hosts.length) throw new LabError('LAB_BAD_OPTIONS', 'host names repeat')
  const { base, prefix } = parseSubnet(opts.subnet ?? '10.231.0.0/24', hosts.length)
  removeStaleLabs()
  const lab = new Lab(`${PREFIX}${String(process.pid)}-${String(labCounter++)}`, hosts, base, prefix)
  liveLabs.add(lab)
  try {
    await lab.build()
  } catch (err) {
    lab.destroySync()
    throw err
  }
  return lab
}
