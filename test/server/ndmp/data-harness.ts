/*
 * An in-process NDMP session for the DATA service's tests: the handlers the service registers,
 * called as the session layer calls them (decode/encode included, so the codecs run), posts
 * decoded and kept in order, the per-session state bag and close hooks. Real exports (memory Vfs),
 * a real state directory, real data connections.
 */
import { XdrReader } from '../../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import { silentLogger } from '../../../server/logger.ts'
import { NdmpError } from '../../../server/ndmp/service-types.ts'
import type { NdmpExport, NdmpHandler, NdmpSession, NdmpVersion } from '../../../server/ndmp/service-types.ts'
import { DataService } from '../../../server/ndmp/data/service.ts'
import { serverDataDeps } from '../../../server/ndmp/data/deps.ts'

export interface Post {
  code: number
  body: unknown
}

function roundTrip<T>(codec: Codec<T>, value: T): T {
  const w = new XdrWriter()
  codec.encode(w, value)
  return codec.decode(new XdrReader(Buffer.concat(w.finish())))
}

export class TestSession implements NdmpSession {
  static next = 1
  readonly id = TestSession.next++
  readonly authorized = true
  readonly user = 'test'
  readonly peer = { address: '127.0.0.1', port: 40000, family: 'IPv4' as const }
  readonly local = { address: '127.0.0.1', port: 10000, family: 'IPv4' as const }
  readonly log = silentLogger
  readonly posts: Post[] = []
  private readonly bag = new Map<symbol | string, unknown>()
  private readonly hooks: Array<() => void | Promise<void>> = []
  private readonly handlers = new Map<number, NdmpHandler>()
  private waiters: Array<() => void> = []
  readonly context
  readonly version: NdmpVersion

  constructor(version: NdmpVersion, exports: NdmpExport[], stateDir: string) {
    this.version = version
    this.context = {
      exports: () => exports,
      exportByPath: (p: string) => exports.find((e) => e.path === p),
      stateDir,
      tapes: [],
      logger: silentLogger,
    }
    const service = new DataService(serverDataDeps())
    service.register({
      register: (v, code, h) => {
        if (v === version) this.handlers.set(code, h)
      },
    })
  }

  post<T>(code: number, codec: Codec<T>, body: T): Promise<void> {
    this.posts.push({ code, body: roundTrip(codec, body) })
    for (const w of this.waiters.splice(0)) w()
    return Promise.resolve()
  }

  state<T>(key: symbol | string, create: () => T): T {
    if (!this.bag.has(key)) this.bag.set(key, create())
    return this.bag.get(key) as T
  }

  onClose(fn: () => void | Promise<void>): void {
    this.hooks.push(fn)
  }

  close(): void {
    void this.closeAll()
  }

  async closeAll(): Promise<void> {
    for (const fn of this.hooks.reverse()) await fn()
  }

  /** Calls the handler of `code` with `request` ({} for a message without body); returns [error, reply]. */
  async call(code: number, request: unknown = {}): Promise<{ error: number; reply: unknown }> {
    const h = this.handlers.get(code)
    if (h === undefined) throw new Error(`no handler for ${code}`)
    const req = h.request === null ? undefined : roundTrip(h.request, request)
    try {
      const reply = await h.handle(this, req)
      return { error: 0, reply: h.reply === null ? undefined : roundTrip(h.reply, reply) }
    } catch (err) {
      if (err instanceof NdmpError) return { error: err.error, reply: undefined }
      throw err
    }
  }

  /** Resolves once a post with `code` is there (posts already kept count). */
  async waitPost(code: number, timeoutMs = 15000): Promise<Post> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const p = this.posts.find((x) => x.code === code)
      if (p !== undefined) return p
      if (Date.now() > deadline) throw new Error(`no post ${code} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200)
        this.waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  postsOf(code: number): unknown[] {
    return this.posts.filter((p) => p.code === code).map((p) => p.body)
  }
}
