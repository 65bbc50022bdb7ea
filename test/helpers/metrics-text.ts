/*
 * Reading a server's /metrics in tests: the exposition over HTTP, one series' value, and a poll
 * for a condition (the cache-metrics tests of the engine and cluster backends).
 */
import { request } from 'node:http'

/** The body of GET http://127.0.0.1:PORT/PATH. */
export function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve(Buffer.concat(chunks).toString('utf8')) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** The value of `family{cache="name"}` in an exposition, or undefined when there is no such series. */
export function cacheSample(text: string, family: string, cache: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${family}{cache="${cache}"} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

/** The value of an unlabelled `family` (NaN when absent). */
export function familyTotal(text: string, family: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${family} `))
  return Number(line?.slice(family.length + 1) ?? NaN)
}

/** Polls `cond` every 50 ms until it holds, failing after `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
