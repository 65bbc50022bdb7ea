/*
 * Wireshark as a judge of the wire (Debian package tshark): a capture of
 * loopback traffic on given ports while a test runs, then the capture read
 * back through Wireshark's dissectors, with the ports decoded as ONC RPC
 * (ours are not the well-known ones, so Wireshark would not know them).
 * Needs root (capturing). Start-up problems throw: a test that needs
 * tshark fails, it does not skip.
 */
import type { Test } from 'tap'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export const TSHARK = '/usr/bin/tshark'

export interface Ports {
  tcp: readonly number[]
  udp: readonly number[]
}

export interface Capture {
  file: string
  /** Stop capturing (SIGINT: tshark writes what it has and exits). */
  stop(): Promise<void>
}

function captureFilter(p: Ports): string {
  return [...p.tcp.map((n) => `tcp port ${String(n)}`), ...p.udp.map((n) => `udp port ${String(n)}`)].join(' or ')
}

/** `-d` options that decode every port as RPC. */
export function decodeAs(p: Ports): string[] {
  return [...p.tcp.flatMap((n) => ['-d', `tcp.port==${String(n)},rpc`]), ...p.udp.flatMap((n) => ['-d', `udp.port==${String(n)},rpc`])]
}

/** A TCP connection to the port, closed at once: a few packets that match the capture filter. */
function knock(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.end())
    s.on('error', () => {
      resolve()
    })
    s.on('close', () => {
      resolve()
    })
  })
}

/**
 * Capture on lo into `file` (pcapng) until stop() or t's teardown. Resolves
 * once packets are being captured: dumpcap says "Capturing on" a moment
 * before it sees any, so the first TCP port is knocked on until tshark
 * prints a packet (-P prints each one's summary while writing the file).
 */
export async function startCapture(t: Test, ports: Ports, file: string): Promise<Capture> {
  if (!existsSync(TSHARK)) throw new Error(`${TSHARK} not found: apt-get install tshark`)
  const knockPort = ports.tcp[0]
  if (knockPort === undefined) throw new Error('startCapture needs a TCP port to see that the capture runs')
  const child = spawn(TSHARK, ['-i', 'lo', '-f', captureFilter(ports), '-w', file, '-P', '-l'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let seen = 0
  child.stdout.on('data', () => {
    seen++
  })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (s: string) => {
    stderr += s
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    resolve()
  }))
  const deadline = Date.now() + 15_000
  while (seen === 0) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`tshark exited (${String(child.exitCode ?? child.signalCode)}) before capturing: ${stderr}`)
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`tshark captured nothing within 15 s: ${stderr}`)
    }
    if (stderr.includes('Capturing on')) await knock(knockPort)
    await sleep(100)
  }
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    // The last replies may still be in flight through the kernel's buffer to dumpcap.
    await sleep(300)
    child.kill('SIGINT')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
  t.teardown(stop)
  return { file, stop }
}

/**
 * Read a capture back: the packets that match `filter`, one row per packet
 * with the given fields (an empty string where a field is absent; a field
 * present several times joined by commas).
 */
export function readCapture(file: string, ports: Ports, filter: string, fields: readonly string[]): Promise<string[][]> {
  const args = ['-r', file, ...decodeAs(ports), '-Y', filter, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=,',
    ...fields.flatMap((f) => ['-e', f])]
  return new Promise((resolve, reject) => {
    execFile(TSHARK, args, { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`tshark ${args.join(' ')}: ${err.message}\n${stderr}`))
        return
      }
      resolve(stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t')))
    })
  })
}

/** readCapture with each row keyed by field name. */
export async function readPackets(file: string, ports: Ports, filter: string, fields: readonly string[]): Promise<Record<string, string>[]> {
  const rows = await readCapture(file, ports, filter, fields)
  return rows.map((r) => Object.fromEntries(fields.map((f, i) => [f, r[i] ?? ''])))
}
