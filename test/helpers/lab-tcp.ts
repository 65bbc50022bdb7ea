/*
 * Who answers at an address, asked over TCP from inside a lab (netns.ts).
 * One small node process per host (an agent) serves the host's name on a
 * port (each connection gets the name, then the close) and, told on its
 * stdin, connects to an address and reports the name read or the error
 * code. A TCP exchange, not only a ping, so a moved address is proven to
 * reach the right host's sockets; one long-lived process per host, because
 * starting node for every question costs a second on a loaded machine.
 */
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Lab } from './netns.ts'

const AGENT = `
const net = require('node:net')
const readline = require('node:readline')
const [name, port] = process.argv.slice(1)
net.createServer((s) => { s.on('error', () => {}); s.end(name + '\\n') })
  .listen(Number(port), '0.0.0.0', () => process.stdout.write('listening\\n'))
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [id, addr, p, ms] = line.split(' ')
  let out = ''
  let done = false
  const s = net.connect({ host: addr, port: Number(p) })
  const say = (text) => { if (!done) { done = true; s.destroy(); process.stdout.write(id + ' ' + text + '\\n') } }
  s.setTimeout(Number(ms), () => say('error ETIMEDOUT'))
  s.on('data', (d) => { out += d })
  s.on('end', () => say(out.trim()))
  s.on('error', (e) => say('error ' + (e.code ?? e.message)))
})
`

export class HostAgent {
  readonly host: string
  private readonly child: ChildProcess
  private readonly waiting = new Map<string, (answer: string) => void>()
  private next = 0

  constructor(host: string, child: ChildProcess) {
    this.host = host
    this.child = child
    if (child.stdout === null) throw new Error('agent without stdout')
    createInterface({ input: child.stdout }).on('line', (line) => {
      const sp = line.indexOf(' ')
      const id = line.slice(0, sp)
      this.waiting.get(id)?.(line.slice(sp + 1))
      this.waiting.delete(id)
    })
  }

  /** The host name served at addr:port as seen from this host, or 'error CODE' (ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH...). */
  ask(addr: string, port: number, timeoutMs = 1500): Promise<string> {
    const id = String(this.next++)
    return new Promise((resolve) => {
      this.waiting.set(id, resolve)
      this.child.stdin?.write(`${id} ${addr} ${String(port)} ${String(timeoutMs)}\n`)
    })
  }
}

/** Start the agent in a host, serving its name on `port` of all its addresses; resolves once it listens. */
export function startAgent(lab: Lab, host: string, port: number): Promise<HostAgent> {
  const child = lab.spawn(host, [process.execPath, '-e', AGENT, host, String(port)], { stdio: ['pipe', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    let err = ''
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()))
    child.stdout?.once('data', () => {
      resolve(new HostAgent(host, child))
    })
    child.once('exit', (code) => {
      reject(new Error(`agent in ${host} exited ${String(code)}: ${err}`))
    })
  })
}

/** An agent in every host of the lab, by host name. */
export async function startAgents(lab: Lab, port: number): Promise<Record<string, HostAgent>> {
  const agents = await Promise.all(lab.hosts.map((h) => startAgent(lab, h, port)))
  return Object.fromEntries(agents.map((a) => [a.host, a]))
}

/** One ping from a host: true when answered within timeoutS seconds. */
export async function pings(lab: Lab, from: string, addr: string, timeoutS = 1): Promise<boolean> {
  const { code } = await lab.exec(from, ['ping', '-n', '-q', '-c', '1', '-W', String(timeoutS), addr], { allowFail: true })
  return code === 0
}
