import { createServer } from 'node:net'
import { readFileSync } from 'node:fs'

/** A TCP port on 127.0.0.1 that nothing listens on now (taken and released): free to bind, or closed to connect to. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      s.close(() => {
        resolve(port)
      })
    })
  })
}

/**
 * A TCP port on 127.0.0.1 to connect to and be refused, for the life of the
 * test. freePort() cannot promise that: its port comes from the kernel's
 * ephemeral range, and a server another test (or this one) starts with port 0
 * afterwards may be handed the very same port — which is how a "dead primary"
 * once answered as a live witness. A port below the ephemeral range is never
 * handed out by bind(0), so only a fixed-port listener could take it; we
 * draw one at random below the range and check that nothing listens on it now.
 */
export async function closedPort(): Promise<number> {
  const low = ephemeralLow()
  for (let tries = 0; tries < 50; tries++) {
    const port = 20000 + Math.floor(Math.random() * Math.max(1, low - 20000))
    if (await bindable(port)) return port
  }
  throw new Error('no closed port found below the ephemeral range')
}

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 21000 ? low : 32768
  } catch {
    return 32768
  }
}

async function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => {
      resolve(false)
    })
    s.listen(port, '127.0.0.1', () => {
      s.close(() => {
        resolve(true)
      })
    })
  })
}
