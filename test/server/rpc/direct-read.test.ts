import net from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { withDirectReads } from '../../../server/rpc/direct-read.ts'

t.test('an accepted paused socket is moved to direct reads: bytes land in our buffers, and close is accounted', async (t) => {
  const buffers: Buffer[] = []
  let received = Buffer.alloc(0)
  let moved: net.Socket | null = null
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
    moved = withDirectReads(socket, {
      buffer: () => {
        const b = Buffer.alloc(1000)
        buffers.push(b)
        return b
      },
      onRead: (n, buf) => {
        t.ok(buffers.includes(buf), 'the callback gets the buffer handed out')
        received = Buffer.concat([received, buf.subarray(0, n)])
      },
    })
    moved?.on('end', () => moved?.end('done'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const payload = Buffer.alloc(100_000)
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff
  const reply = await new Promise<string>((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => c.end(payload))
    let text = ''
    c.on('data', (d: Buffer) => { text += d.toString() })
    c.on('end', () => { resolve(text); })
    c.on('error', reject)
  })
  t.not(moved, null, 'moved to direct reads (not the data-event fallback)')
  t.equal(reply, 'done', 'writes work on the moved socket')
  t.ok(received.equals(payload), 'every byte arrived, in order')
  t.ok(buffers.length >= 100, `reads were bounded by our 1000-byte buffers (${buffers.length} handed out)`)
  // server.close() waits for its connections: it only returns if the moved socket's close was counted.
  await new Promise<void>((resolve) => server.close(() => { resolve(); }))
  t.pass('server closed')
})

t.test('a socket that is already flowing is left alone (null)', async (t) => {
  const server = net.createServer((socket) => {
    t.equal(withDirectReads(socket, { buffer: () => Buffer.alloc(16), onRead: () => undefined }), null)
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => {
    const c = net.connect(port, '127.0.0.1')
    c.on('close', () => { resolve(); })
    c.on('error', () => undefined)
  })
  await new Promise<void>((resolve) => server.close(() => { resolve(); }))
})
