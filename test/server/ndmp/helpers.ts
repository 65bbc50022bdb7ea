/* Shared by the NDMP tests: a server over one memory export, and a raw peer for malformed input. */
import { connect, type Socket } from 'node:net'
import type { Test } from 'tap'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { RecordReader } from '../../../xdr/record.ts'
import { NDMP_MAX_MESSAGE, encodeMessage, parseMessage, type NdmpHeader, type NdmpMessage } from '../../../xdr/ndmp/message.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import { startNdmpServer, type NdmpServer, type NdmpServerOptions } from '../../../server/ndmp/server.ts'

export const USER = 'backup'
export const PASSWORD = 'tape-s3cret'

export async function startTestNdmp(t: Test, extra: Partial<NdmpServerOptions> = {}): Promise<NdmpServer> {
  const vfs = new MemoryVfs({})
  const dir = t.testdir({})
  const srv = await startNdmpServer({
    port: 0,
    host: '127.0.0.1',
    credentials: new Map([[USER, PASSWORD], ['other', 'pw:with:colons']]),
    exports: () => [{ path: '/mem', backend: 'memory', vfs, root: vfs.root() }],
    tapes: [{ name: `${dir}/tape0`, path: `${dir}/tape0` }],
    stateDir: dir,
    revision: '1.2.3',
    ...extra,
  })
  t.teardown(() => srv.close())
  return srv
}

/** A peer that speaks bytes: framed messages of any header, and whatever comes back. */
export class RawPeer {
  readonly socket: Socket
  private readonly reader = new RecordReader(NDMP_MAX_MESSAGE)
  private readonly inbox: NdmpMessage[] = []
  private waiter: (() => void) | null = null
  closed = false
  private seq = 0

  private constructor(socket: Socket) {
    this.socket = socket
    socket.on('data', (c: Buffer) => {
      for (const r of this.reader.push(c)) {
        const m = parseMessage(r)
        if (m !== null) this.inbox.push(m)
      }
      this.waiter?.()
    })
    socket.on('close', () => {
      this.closed = true
      this.waiter?.()
    })
    socket.on('error', () => undefined)
  }

  static async open(port: number): Promise<RawPeer> {
    const s = connect({ host: '127.0.0.1', port })
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => { resolve() })
      s.once('error', reject)
    })
    return new RawPeer(s)
  }

  /** The next message, or null once the connection closed with nothing left. */
  async next(timeoutMs = 5000): Promise<NdmpMessage | null> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const m = this.inbox.shift()
      if (m !== undefined) return m
      if (this.closed) return null
      if (Date.now() > deadline) throw new Error('no message in time')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50)
        this.waiter = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.waiter = null
    }
  }

  /** Waits until the server closes the connection (true) or the time passes (false). */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    return this.closed
  }

  send<T>(code: number, codec: Codec<T> | null, body: T, over: Partial<NdmpHeader> = {}): number {
    this.seq++
    const h: NdmpHeader = { sequence: this.seq, time_stamp: 0, message_type: 0, message_code: code, reply_sequence: 0, error_code: 0, ...over }
    for (const c of encodeMessage(h, codec, body)) this.socket.write(c)
    return h.sequence
  }

  /** A record holding exactly `bytes` (a header and body the caller built). */
  sendRecord(bytes: Buffer): void {
    const mark = Buffer.alloc(4)
    mark.writeUInt32BE((0x80000000 | bytes.length) >>> 0)
    this.socket.write(Buffer.concat([mark, bytes]))
  }

  destroy(): void {
    this.socket.destroy()
  }
}
