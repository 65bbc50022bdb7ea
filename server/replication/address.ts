/*
 * What a node runs when it becomes primary (takeover) or stops serving
 * (fenced), so clients follow the service to it (issue 15 §5):
 *
 *   --vip ADDR/PREFIX --vip-dev DEV   the built-in way: on takeover `ip addr
 *       add ADDR/PREFIX dev DEV`, then a gratuitous ARP (`arping -U -c 3 -I
 *       DEV ADDR`) so neighbours that cached the old primary's MAC for the
 *       address switch at once instead of after their entry goes stale (tens
 *       of seconds); on fencing `ip addr del`. Without arping the step is
 *       logged and neighbours re-learn on their own. IPv6 addresses are added
 *       and removed the same way; the kernel announces them itself (unsolicited
 *       neighbour advertisements after DAD), so no arping.
 *   --on-takeover CMD / --on-fenced CMD   anything else (keepalived, a cloud
 *       API moving an elastic address, DNS): run by /bin/sh -c with TSNFS_ROLE
 *       (primary | fenced), TSNFS_EPOCH, TSNFS_NODE, and TSNFS_VIP / TSNFS_VIP_DEV
 *       when a VIP is configured.
 *
 * The order: takeover adds the address first, then announces it and runs the
 * hook together; fencing removes the address first (a fenced node must stop
 * answering on it before anything else), then runs the hook.
 *
 * Failures never stop the role change. By the time these run the epoch has
 * been raised (takeover) or a higher one seen (fenced): refusing to serve
 * after a takeover would leave the cluster with no primary at all, and a
 * fenced node stops serving writes whatever its hooks do. So each step's
 * outcome is logged (exit status, time, the tail of its output; an error for
 * a failure or a timeout) and returned, for `replication status` to show.
 * A hook is killed with its whole process group after its timeout (10 s by
 * default: the takeover target is under 10 s end to end).
 * Adding an address that is already there, or removing one that is not, is
 * success: takeover and fencing may be repeated.
 */
import { spawn } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { isIP } from 'node:net'
import { delimiter, join } from 'node:path'
import type { Logger } from '../logger.ts'

export interface Vip {
  address: string
  prefix: number
  dev: string
}

export class AddressError extends Error {
  readonly code: 'ADDR_BAD_VIP'
  constructor(code: AddressError['code'], message: string) {
    super(message)
    this.name = 'AddressError'
    this.code = code
  }
}

/** `--vip ADDR/PREFIX --vip-dev DEV`; throws AddressError('ADDR_BAD_VIP'). */
export function parseVip(text: string, dev: string): Vip {
  const slash = text.lastIndexOf('/')
  const address = slash < 0 ? '' : text.slice(0, slash)
  const family = isIP(address)
  const prefixText = text.slice(slash + 1)
  const prefix = Number(prefixText)
  const max = family === 6 ? 128 : 32
  if (family === 0 || !/^\d{1,3}$/.test(prefixText) || prefix < 1 || prefix > max) {
    throw new AddressError('ADDR_BAD_VIP', `--vip ${text}: want ADDRESS/PREFIX (an IPv4 or IPv6 address, prefix 1-32 or 1-128)`)
  }
  // An interface name: IFNAMSIZ - 1 bytes, no slash or space (ip(8) would take anything else as a keyword).
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(dev)) throw new AddressError('ADDR_BAD_VIP', `--vip-dev ${dev}: want an interface name`)
  return { address, prefix, dev }
}

export interface ServiceAddressOptions {
  /** This node's name (TSNFS_NODE). */
  node: string
  vip?: Vip
  onTakeover?: string
  onFenced?: string
  /** For each hook and each command (default 10 000 ms). */
  timeoutMs?: number
  log: Logger
  /** The ip command (default `ip`, from PATH). */
  ip?: string
  /** The arping command; null: none. Default: found on PATH or in the sbin folders. */
  arping?: string | null
}

export type StepName = 'vip-add' | 'arping' | 'on-takeover' | 'vip-del' | 'on-fenced'

export interface StepResult {
  step: StepName
  ok: boolean
  /** 'exit 0', 'exit 3', 'timeout after 300 ms', 'not found', 'already present', ... */
  detail: string
  ms: number
}

export const DEFAULT_HOOK_TIMEOUT_MS = 10_000
const OUTPUT_TAIL = 4096
const SEARCH = ['/usr/sbin', '/usr/bin', '/sbin', '/bin']

/** A command's path on PATH or in the sbin folders, or null. */
export function findCommand(name: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of [...path.split(delimiter).filter((d) => d !== ''), ...SEARCH]) {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {
      /* not here */
    }
  }
  return null
}

interface Ran {
  code: number | null
  signal: string | null
  timedOut: boolean
  output: string
  error: string | null
  ms: number
}

/** Run argv in a process group of its own, killed whole on timeout; never throws. */
function run(argv: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Ran> {
  const start = performance.now()
  return new Promise((resolve) => {
    const [cmd = '', ...args] = argv
    let output = ''
    let timedOut = false
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-OUTPUT_TAIL)
    }
    const child = spawn(cmd, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    let exited = false
    const timer = setTimeout(() => {
      if (exited) return
      timedOut = true
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      } catch {
        /* gone */
      }
    }, timeoutMs)
    let settled = false
    const done = (code: number | null, signal: string | null, error: string | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve({ code, signal, timedOut, output: output.trim(), error, ms: Math.round(performance.now() - start) })
    }
    child.once('error', (err) => {
      done(null, null, err.message)
    })
    // Done when the command exits, not when its pipes close: a hook may leave a daemon of its
    // own running with them open (it gets EPIPE once we stop reading: such a daemon should
    // redirect its output). Output still in flight gets a moment to arrive.
    child.once('exit', (code, signal) => {
      exited = true
      const settle = (): void => {
        child.stdout.destroy()
        child.stderr.destroy()
        done(code, signal, null)
      }
      const grace = setTimeout(settle, 100)
      child.once('close', () => {
        clearTimeout(grace)
        settle()
      })
    })
  })
}

function describe(r: Ran, timeoutMs: number): string {
  if (r.error !== null) return `failed to start: ${r.error}`
  if (r.timedOut) return `timeout after ${String(timeoutMs)} ms (killed)`
  if (r.signal !== null) return `killed by ${r.signal}`
  return `exit ${String(r.code)}`
}

export class ServiceAddress {
  private readonly o: ServiceAddressOptions
  private readonly timeoutMs: number
  private readonly log: Logger

  constructor(o: ServiceAddressOptions) {
    this.o = o
    this.timeoutMs = o.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS
    this.log = o.log.child({ component: 'replication-address' })
  }

  /** This node became primary at `epoch`: add and announce the address, run --on-takeover. */
  async takeover(epoch: bigint): Promise<StepResult[]> {
    const results: StepResult[] = []
    const vip = this.o.vip
    if (vip !== undefined) results.push(await this.ipAddr('vip-add', vip))
    const parallel: Promise<StepResult>[] = []
    if (vip !== undefined && isIP(vip.address) === 4) parallel.push(this.announce(vip))
    if (this.o.onTakeover !== undefined) parallel.push(this.hook('on-takeover', this.o.onTakeover, 'primary', epoch))
    results.push(...(await Promise.all(parallel)))
    return results
  }

  /** This node saw a higher epoch than `epoch`, its own: drop the address, run --on-fenced. */
  async fenced(epoch: bigint): Promise<StepResult[]> {
    const results: StepResult[] = []
    if (this.o.vip !== undefined) results.push(await this.ipAddr('vip-del', this.o.vip))
    if (this.o.onFenced !== undefined) results.push(await this.hook('on-fenced', this.o.onFenced, 'fenced', epoch))
    return results
  }

  private report(step: StepName, r: Ran, ok: boolean, detail: string, extra: object = {}): StepResult {
    const entry = { step, detail, ms: r.ms, ...(r.output === '' ? {} : { output: r.output }), ...extra }
    if (ok) this.log.info(entry, `${step}: ${detail}`)
    else this.log.error(entry, `${step} failed: ${detail}; the role change goes on`)
    return { step, ok, detail, ms: r.ms }
  }

  private async ipAddr(step: 'vip-add' | 'vip-del', vip: Vip): Promise<StepResult> {
    const cidr = `${vip.address}/${String(vip.prefix)}`
    const r = await run([this.o.ip ?? 'ip', 'addr', step === 'vip-add' ? 'add' : 'del', cidr, 'dev', vip.dev], process.env, this.timeoutMs)
    // EEXIST on add, EADDRNOTAVAIL on del (older iproute2 prints the errno, newer the kernel's
    // extended ack): already as wanted.
    const settled = step === 'vip-add' ? /File exists|address already assigned/i.test(r.output) : /Cannot assign requested address|address not found/i.test(r.output)
    if (r.code === 0) return this.report(step, r, true, `${step === 'vip-add' ? 'added' : 'removed'} ${cidr} on ${vip.dev}`)
    if (settled) return this.report(step, r, true, `${cidr} ${step === 'vip-add' ? 'already present' : 'not present'} on ${vip.dev}`)
    return this.report(step, r, false, `ip addr ${step === 'vip-add' ? 'add' : 'del'} ${cidr} dev ${vip.dev}: ${describe(r, this.timeoutMs)}`)
  }

  private async announce(vip: Vip): Promise<StepResult> {
    const arping = this.o.arping === undefined ? findCommand('arping') : this.o.arping
    if (arping === null) {
      const step: StepResult = { step: 'arping', ok: true, detail: 'no arping (Debian iputils-arping): neighbours learn the new address when their cached entry goes stale', ms: 0 }
      this.log.warn(step, `arping: ${step.detail}`)
      return step
    }
    // -U: unsolicited ARP, sender and target both the address; three, a second apart, since a
    // neighbour ignores updates to an entry changed within its locktime (1 s on Linux).
    const r = await run([arping, '-U', '-c', '3', '-I', vip.dev, vip.address], process.env, this.timeoutMs)
    return this.report('arping', r, r.code === 0 && !r.timedOut, `${arping} -U -c 3 -I ${vip.dev} ${vip.address}: ${describe(r, this.timeoutMs)}`)
  }

  private async hook(step: 'on-takeover' | 'on-fenced', cmd: string, role: 'primary' | 'fenced', epoch: bigint): Promise<StepResult> {
    const vip = this.o.vip
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TSNFS_ROLE: role,
      TSNFS_EPOCH: String(epoch),
      TSNFS_NODE: this.o.node,
      ...(vip === undefined ? {} : { TSNFS_VIP: `${vip.address}/${String(vip.prefix)}`, TSNFS_VIP_DEV: vip.dev }),
    }
    const r = await run(['/bin/sh', '-c', cmd], env, this.timeoutMs)
    return this.report(step, r, r.code === 0 && !r.timedOut, describe(r, this.timeoutMs), { command: cmd })
  }
}
