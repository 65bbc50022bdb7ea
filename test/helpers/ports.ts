import { createServer } from 'node:net'

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
