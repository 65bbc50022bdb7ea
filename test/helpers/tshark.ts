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

/** Capture on lo into `file` (pcapng) until stop() or t's teardown. Resolves once tshark is capturing. */
export async function startCapture(t: Test, ports: Ports, file: string): Promise<Capture> {
  if (!existsSync(TSHARK)) throw new Error(`${TSHARK} not found: apt-get install tshark`)
  const child = spawn(TSHARK, ['-i', 'lo', '-f', captureFilter(ports), '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    resolve()
  }))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`tshark did not start capturing within 15 s: ${stderr}`))
    }, 15_000)
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (s: string) => {
      stderr += s
      // dumpcap reports this once the capture filter is set and packets are being read.
      if (stderr.includes('Capturing on')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`tshark exited (${String(code)}) before capturing: ${stderr}`))
    })
  })
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
