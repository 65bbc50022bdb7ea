/*
 * An S3 gateway that fails on demand, for the "object store unavailable"
 * tests (issue 17 §5: errors, not hangs; nothing acknowledged is lost)
 * without stopping the gateway other test files share: a TCP relay on
 * 127.0.0.1 in front of it, whose target the code under test uses.
 *   pass   bytes flow both ways
 *   down   the listener is closed: new connections get ECONNREFUSED, open
 *          ones are reset (a gateway that died)
 *   hang   connections are accepted and nothing is forwarded either way,
 *          open ones included (a gateway that froze, SIGSTOP: only the
 *          client's timeout ends a request)
 * Back to `pass`, the same port listens again (from down), so clients keep
 * their endpoint, and frozen connections flow again (from hang, SIGCONT).
 */
import type { Test } from 'tap'
import { connect, createServer } from 'node:net'
import type { Server, Socket } from 'node:net'
import type { S3Target } from './s3.ts'

export type RelayMode = 'pass' | 'down' | 'hang'

export interface S3Relay {
  /** The gateway's target with the relay's endpoint. */
  target: S3Target
  mode(): RelayMode
  /** Switch; resolves once the listener is closed or listening again. */
  set(mode: RelayMode): Promise<void>
  /** Connections accepted so far. */
  accepted(): number
}

interface Pair { client: Socket; upstream?: Socket }

export async function s3Relay(t: Pick<Test, 'teardown'>, gateway: S3Target): Promise<S3Relay> {
  const up = new URL(gateway.endpoint)
  const upPort = Number(up.port === '' ? (up.protocol === 'https:' ? 443 : 80) : up.port)
  const pairs = new Set<Pair>()
  let mode: RelayMode = 'pass'
  let accepted = 0
  let server: Server | undefined
  let port = 0

  const drop = (p: Pair): void => {
    p.client.destroy()
    p.upstream?.destroy()
    pairs.delete(p)
  }

  const forward = (pair: Pair): void => {
    if (pair.upstream === undefined) {
      const upstream = connect(upPort, up.hostname)
      pair.upstream = upstream
      upstream.on('error', () => { drop(pair) })
      upstream.on('close', () => { drop(pair) })
    }
    pair.client.pipe(pair.upstream)
    pair.upstream.pipe(pair.client)
  }

  const onConnection = (client: Socket): void => {
    accepted++
    const pair: Pair = { client }
    pairs.add(pair)
    client.on('error', () => { drop(pair) })
    client.on('close', () => { drop(pair) })
    if (mode === 'hang') {
      client.pause()
      return
    }
    forward(pair)
  }

  const listen = async (): Promise<void> => {
    const s = createServer(onConnection)
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject)
      s.listen(port, '127.0.0.1', () => { resolve() })
    })
    const addr = s.address()
    if (addr === null || typeof addr === 'string') throw new Error('s3Relay: no TCP address')
    port = addr.port
    server = s
  }

  const close = async (): Promise<void> => {
    const s = server
    server = undefined
    if (s !== undefined) await new Promise<void>((resolve) => { s.close(() => { resolve() }) })
  }

  await listen()
  t.teardown(async () => {
    for (const p of [...pairs]) drop(p)
    await close()
  })

  return {
    target: { ...gateway, endpoint: `${up.protocol}//127.0.0.1:${port}` },
    mode: () => mode,
    accepted: () => accepted,
    async set(next: RelayMode): Promise<void> {
      if (next === mode) return
      const was = mode
      mode = next
      if (next === 'down') {
        const closing = close()
        // resetting the open connections lets close() finish
        for (const p of [...pairs]) drop(p)
        await closing
      } else if (next === 'hang') {
        for (const p of pairs) {
          p.client.unpipe()
          p.upstream?.unpipe()
          p.client.pause()
          p.upstream?.pause()
        }
        if (was === 'down') await listen()
      } else {
        if (was === 'down') await listen()
        for (const p of pairs) forward(p)
      }
    },
  }
}
