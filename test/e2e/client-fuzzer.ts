/*
 * Our NFS client library against a server whose replies are damaged on the way (the quick sample
 * is test/e2e/fuzz-client.test.ts, the long run bench/fuzz-client.ts). A real server (a memory
 * export) sits behind a relay that, for each session, damages a share of the reply records: bits
 * flipped, cut short, bytes added, a word or a 64-bit field replaced by a value chosen to lie
 * (lengths, counts, statuses such as JUKEBOX or BAD_COOKIE), a reply dropped, sent twice, or an
 * earlier reply sent again in its place. The MOUNT and portmapper-free NFS traffic of a session all
 * go through it.
 *
 * A session mounts through the relay and runs a seeded list of everyday operations (mkdir, write,
 * read, stat, listings, symlinks, renames, links, truncates, removals, statfs) on a directory of
 * its own. What is checked:
 * - every operation settles within DEADLINE_MS: resolved, or rejected with one of the client's own
 *   errors (NfsError, RpcError, MountError, UrlError; never a TypeError, a RangeError or another
 *   error thrown by accident), and so does the unmount;
 * - nothing escapes as an uncaught exception or an unhandled rejection (the runner counts them);
 * - with nothing damaged, an operation fails only with NOENT, EXIST or NOTEMPTY (the list's names
 *   need not exist) and the data read is the data written.
 * The data of a damaged session is not compared: a flipped bit inside READ data is not detectable
 * by NFS (it has no checksums), only what the client does with it.
 */
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer as createTcpServer } from 'node:net'
import type { Server as TcpServer, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { NfsClient } from '../../client/index.ts'
import { MountError, NfsError, UrlError } from '../../client/errors.ts'
import { RpcError } from '../../client/rpc/errors.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { createServer } from '../../server/index.ts'
import type { TsnfsServer } from '../../server/index.ts'
import { RecordReader, frameRecord } from '../../xdr/record.ts'

/** An operation slower than this counts as a hang (timeouts are 150 ms, 2 tries; jukebox waits 5 ms). */
export const DEADLINE_MS = 20_000

export const OPS = ['mkdir', 'write', 'read', 'stat', 'readdir', 'readdirPlus', 'symlink', 'readlink', 'rename', 'link', 'truncate', 'chmod', 'utimes', 'partial', 'unlink', 'statfs', 'rm'] as const
export type Op = (typeof OPS)[number]

export interface Session {
  /** Seeds the relay's damage and the data written. */
  seed: number
  /** The share of reply records damaged (0: none; then an operation fails only with NOENT, EXIST or NOTEMPTY). */
  rate: number
  ops: Op[]
}

export interface ClientFuzzTally {
  sessions: number
  ops: number
  /** Reply records seen by the relay, and damaged. */
  replies: number
  damaged: number
  /** Settled operations by outcome: 'ok', or the error's code ('NFS3ERR_IO', 'RPC_TIMEOUT', ...). */
  byOutcome: Record<string, number>
  /** Operations that did not settle in time, threw an error not of the client's own, or (undamaged) failed. */
  failures: number
  firstFailure: string | null
}

/** Values a lying server would pick for a 32-bit word: lengths, counts, booleans, statuses. */
const WORDS = [0, 1, 2, 3, 4, 5, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffc, 64, 65, 4096, 1 << 20, 1 << 24, 70, 10002, 10003, 10008]

/** xorshift32: small and seedable; the relay's choices repeat with the session's seed. */
class Rng {
  #s: number
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e37_79b9
  }

  next(): number {
    let x = this.#s
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#s = x >>> 0
    return this.#s
  }

  below(n: number): number {
    return this.next() % n
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff
    return b
  }
}

/** The records the relay passes on for one reply: it damaged, none (dropped), it twice, or an earlier one instead. */
function damage(rng: Rng, rec: Buffer, earlier: Buffer[]): Buffer[] {
  const out = Buffer.from(rec)
  const word = (): number => 4 * (1 + rng.below(Math.max(1, (out.length >> 2) - 1)))
  switch (rng.below(8)) {
    case 0:
      for (let i = 0, n = 1 + rng.below(4); i < n && out.length > 4; i++) {
        const at = 4 + rng.below(out.length - 4)
        out[at] = (out[at] ?? 0) ^ (1 << rng.below(8))
      }
      return [out]
    case 1:
      return [out.subarray(0, 4 + rng.below(Math.max(1, out.length - 4)))]
    case 2:
      return [Buffer.concat([out, rng.bytes(1 + rng.below(64))])]
    case 3:
      if (out.length >= 8) out.writeUInt32BE(WORDS[rng.below(WORDS.length)] ?? 0, Math.min(word(), out.length - 4))
      return [out]
    case 4:
      if (out.length >= 12) {
        const at = Math.min(word(), out.length - 8)
        out.writeBigUInt64BE(rng.chance(0.5) ? 0xffff_ffff_ffff_ffffn : BigInt(rng.next()) << 32n | BigInt(rng.next()), at)
      }
      return [out]
    case 5:
      return []
    case 6:
      return [out, out]
    default: {
      const old = earlier[rng.below(Math.max(1, earlier.length))]
      return old === undefined ? [out] : [old]
    }
  }
}

/** What a seeded list of operations may meet on a server that tells the truth. */
const UNDAMAGED_FAILURES = new Set(['NFS3ERR_NOENT', 'NFS3ERR_EXIST', 'NFS3ERR_NOTEMPTY'])

function errorCode(err: unknown): string | null {
  if (err instanceof NfsError || err instanceof RpcError || err instanceof MountError) return err.code
  if (err instanceof UrlError) return 'URL'
  return null
}

export class ClientFuzzer {
  readonly tally: ClientFuzzTally = { sessions: 0, ops: 0, replies: 0, damaged: 0, byOutcome: {}, failures: 0, firstFailure: null }
  /** Uncaught exceptions and unhandled rejections while sessions ran (each one a failure). */
  escaped = 0
  readonly #server: TsnfsServer
  readonly #relay: TcpServer
  readonly #dir: string
  readonly #sockets = new Set<Socket>()
  #rng = new Rng(1)
  #rate = 0
  readonly #earlier: Buffer[] = []
  readonly #onEscape = (err: unknown): void => {
    this.escaped++
    this.#fail(`escaped: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  }

  private constructor(server: TsnfsServer, relay: TcpServer, dir: string) {
    this.#server = server
    this.#relay = relay
    this.#dir = dir
    process.on('uncaughtException', this.#onEscape)
    process.on('unhandledRejection', this.#onEscape)
  }

  static async create(): Promise<ClientFuzzer> {
    const dir = mkdtempSync(join(tmpdir(), 'tsnfs-client-fuzz-'))
    const server = await createServer({
      exports: parseExports('/export *(rw,insecure,no_root_squash,backend=memory)\n', 'exports'),
      stateDir: dir,
      port: 0,
      host: '127.0.0.1',
    })
    const relay = createTcpServer()
    const f = new ClientFuzzer(server, relay, dir)
    relay.on('connection', (c) => { f.#relay1(c) })
    relay.listen(0, '127.0.0.1')
    await once(relay, 'listening')
    return f
  }

  get #relayPort(): number {
    return (this.#relay.address() as { port: number }).port
  }

  /** One client connection relayed to the server: calls as they are, replies through damage(). */
  #relay1(client: Socket): void {
    const upstream = connect(this.#server.port, '127.0.0.1')
    this.#sockets.add(client)
    this.#sockets.add(upstream)
    const calls = new RecordReader(2 * 1024 * 1024)
    const replies = new RecordReader(8 * 1024 * 1024)
    const end = (): void => {
      client.destroy()
      upstream.destroy()
      this.#sockets.delete(client)
      this.#sockets.delete(upstream)
    }
    client.on('data', (chunk: Buffer) => {
      try {
        for (const rec of calls.push(chunk)) upstream.write(Buffer.concat([frameRecord([rec]), rec]))
      } catch {
        end()
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      let recs: Buffer[]
      try {
        recs = replies.push(chunk)
      } catch {
        end()
        return
      }
      for (const raw of recs) {
        const rec = Buffer.from(raw)
        this.tally.replies++
        let send: Buffer[] = [rec]
        if (this.#rate > 0 && this.#rng.chance(this.#rate)) {
          this.tally.damaged++
          send = damage(this.#rng, rec, this.#earlier)
        }
        this.#earlier.push(rec)
        if (this.#earlier.length > 16) this.#earlier.shift()
        for (const r of send) client.write(Buffer.concat([frameRecord([r]), r]))
      }
    })
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  }

  #fail(what: string): void {
    this.tally.failures++
    this.tally.firstFailure ??= what
  }

  /** Runs `fn` to its end or the deadline; records the outcome (a failure in the tally). */
  async #op(s: Session, name: string, fn: () => Promise<unknown>): Promise<void> {
    this.tally.ops++
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => { resolve('late') }, DEADLINE_MS) })
    const settled = fn().then(() => 'ok' as const, (err: unknown) => ({ err }))
    const r = await Promise.race([settled, late])
    clearTimeout(timer)
    const where = `session seed ${String(s.seed)} rate ${String(s.rate)}: ${name}`
    if (r === 'late') {
      this.#fail(`${where}: not settled within ${String(DEADLINE_MS)} ms`)
      return
    }
    if (r === 'ok') {
      this.tally.byOutcome.ok = (this.tally.byOutcome.ok ?? 0) + 1
      return
    }
    const code = errorCode(r.err)
    if (code === null) {
      this.#fail(`${where}: not a client error: ${r.err instanceof Error ? (r.err.stack ?? r.err.message) : String(r.err)}`)
      return
    }
    this.tally.byOutcome[code] = (this.tally.byOutcome[code] ?? 0) + 1
    // Undamaged, an operation fails only for what the list asked: a name not there, or there already.
    if (s.rate === 0 && !UNDAMAGED_FAILURES.has(code)) {
      this.#fail(`${where}: failed with nothing damaged: ${code}`)
    }
  }

  /** One session; true when every check held. */
  async run(s: Session): Promise<boolean> {
    this.tally.sessions++
    const before = this.tally.failures
    this.#rng = new Rng(s.seed)
    this.#rate = 0
    const data = new Rng(s.seed ^ 0x5a5a_5a5a)
    const dir = `/s${String(this.tally.sessions)}`
    // The export's setup is not damaged: a session starts from a directory of its own.
    const direct = await NfsClient.mount(`nfs://127.0.0.1/export?nfsport=${String(this.#server.port)}&mountport=${String(this.#server.port)}`, {})
    await direct.mkdir(dir)
    this.#rate = s.rate
    const url = `nfs://127.0.0.1/export?nfsport=${String(this.#relayPort)}&mountport=${String(this.#relayPort)}`
    let c: NfsClient | null = null
    const opts = { timeoutMs: 150, retrans: 2, jukeboxDelayMs: 5, jukeboxRetries: 2, rsize: 16_384, wsize: 16_384, dirsize: 1024, idleTrimMs: 0 }
    await this.#op(s, 'mount', async () => { c = await NfsClient.mount(url, opts) })
    const client = c as NfsClient | null
    if (client !== null) {
      const written = new Map<string, Buffer>()
      for (const [i, op] of s.ops.entries()) {
        const f = `${dir}/f${String(i % 4)}`
        const g = `${dir}/f${String((i + 1) % 4)}`
        const body = async (): Promise<unknown> => {
          switch (op) {
            case 'mkdir': return client.mkdir(`${dir}/d${String(i % 3)}`)
            case 'write': {
              const b = data.bytes(data.below(50_000))
              await client.writeFile(f, b)
              written.set(f, b)
              return
            }
            case 'read': {
              const got = await client.readFile(f)
              const want = written.get(f)
              if (s.rate === 0 && want !== undefined && !got.equals(want)) throw new TypeError(`${f}: read ${String(got.length)} bytes, not the ${String(want.length)} written`)
              return
            }
            case 'stat': return client.stat(f)
            case 'readdir': return client.readdir(dir)
            case 'readdirPlus': return client.readdirPlus(dir)
            case 'symlink': return client.symlink(`f${String(i % 4)}`, `${dir}/l${String(i % 2)}`)
            case 'readlink': return client.readlink(`${dir}/l${String(i % 2)}`)
            case 'rename': {
              await client.rename(f, g)
              const b = written.get(f)
              written.delete(f)
              if (b !== undefined) written.set(g, b)
              return
            }
            case 'link': return client.link(f, `${dir}/h${String(i % 2)}`)
            case 'truncate': {
              await client.truncate(f, 100)
              const b = written.get(f)
              if (b !== undefined) written.set(f, Buffer.concat([b, Buffer.alloc(100)]).subarray(0, 100))
              return
            }
            case 'chmod': return client.chmod(f, 0o600)
            case 'utimes': return client.utimes(f, new Date(1_000_000_000_000), new Date(1_100_000_000_000))
            case 'partial': {
              const h = await client.open(f, 'r')
              try {
                return await h.read(1000, 10)
              } finally {
                await h.close()
              }
            }
            case 'unlink': {
              written.delete(f)
              return client.unlink(f)
            }
            case 'statfs': return client.statfs()
            case 'rm': return client.rm(`${dir}/d${String(i % 3)}`, { recursive: true })
          }
        }
        await this.#op(s, op, body)
      }
      await this.#op(s, 'umount', () => client.umount())
    }
    this.#rate = 0
    await direct.rm(dir, { recursive: true }).catch(() => undefined)
    await direct.umount()
    return this.tally.failures === before
  }

  /** The server answers a fresh, undamaged client. */
  async alive(): Promise<boolean> {
    const c = await NfsClient.mount(`nfs://127.0.0.1/export?nfsport=${String(this.#server.port)}&mountport=${String(this.#server.port)}`, {})
    try {
      await c.writeFile('/alive', Buffer.from('yes'))
      return (await c.readFile('/alive')).toString() === 'yes'
    } finally {
      await c.umount()
    }
  }

  /** Relayed connections still open. */
  get openConnections(): number {
    return this.#sockets.size
  }

  async close(): Promise<void> {
    process.off('uncaughtException', this.#onEscape)
    process.off('unhandledRejection', this.#onEscape)
    for (const s of this.#sockets) s.destroy()
    this.#relay.close()
    await this.#server.close()
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

/** Sessions: a seed, a damage rate (a few with none, as the control), up to 12 operations. */
export function sessionArbitrary(): fc.Arbitrary<Session> {
  return fc.record({
    seed: fc.integer({ min: 1, max: 0x7fff_ffff }),
    rate: fc.constantFrom(0, 0.05, 0.2, 0.5),
    ops: fc.array(fc.constantFrom(...OPS), { minLength: 1, maxLength: 12 }),
  })
}
