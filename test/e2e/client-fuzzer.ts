/*
 * Our NFS client library against a server whose replies are damaged on the way (the quick sample
 * is test/e2e/fuzz-client.test.ts, the long run bench/fuzz-client.ts). A real server (a memory
 * export) sits behind a relay (reply-damage.ts) that, for each session, damages a share of the
 * reply records: bits flipped, cut short, bytes added, a word or a 64-bit field replaced by a value
 * chosen to lie (lengths, counts, statuses such as JUKEBOX or BAD_COOKIE), a reply dropped, sent
 * twice, or an earlier reply sent again in its place. The MOUNT and portmapper-free NFS traffic of
 * a session all go through it.
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
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { NfsClient } from '../../client/index.ts'
import { MountError, NfsError, UrlError } from '../../client/errors.ts'
import { RpcError } from '../../client/rpc/errors.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { createServer } from '../../server/index.ts'
import type { TsnfsServer } from '../../server/index.ts'
import { EscapeWatch, described, settleWithin } from './fuzz-run.ts'
import { DamageRelay, Rng } from './reply-damage.ts'

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

/** What a seeded list of operations may meet on a server that tells the truth. */
const UNDAMAGED_FAILURES = new Set(['NFS3ERR_NOENT', 'NFS3ERR_EXIST', 'NFS3ERR_NOTEMPTY'])

function errorCode(err: unknown): string | null {
  if (err instanceof NfsError || err instanceof RpcError || err instanceof MountError) return err.code
  if (err instanceof UrlError) return 'URL'
  return null
}

export class ClientFuzzer {
  readonly tally: ClientFuzzTally = { sessions: 0, ops: 0, replies: 0, damaged: 0, byOutcome: {}, failures: 0, firstFailure: null }
  readonly #server: TsnfsServer
  readonly #relay: DamageRelay
  readonly #dir: string
  readonly #escapes = new EscapeWatch((what) => { this.#fail(what) })

  private constructor(server: TsnfsServer, relay: DamageRelay, dir: string) {
    this.#server = server
    this.#relay = relay
    this.#dir = dir
  }

  /** Uncaught exceptions and unhandled rejections while sessions ran (each one a failure). */
  get escaped(): number {
    return this.#escapes.count
  }

  static async create(): Promise<ClientFuzzer> {
    const dir = mkdtempSync(join(tmpdir(), 'tsnfs-client-fuzz-'))
    const server = await createServer({
      exports: parseExports('/export *(rw,insecure,no_root_squash,backend=memory)\n', 'exports'),
      stateDir: dir,
      port: 0,
      host: '127.0.0.1',
    })
    return new ClientFuzzer(server, await DamageRelay.start(server.port), dir)
  }

  #fail(what: string): void {
    this.tally.failures++
    this.tally.firstFailure ??= what
  }

  /** Runs `fn` to its end or the deadline; records the outcome (a failure in the tally). */
  async #op(s: Session, name: string, fn: () => Promise<unknown>): Promise<void> {
    this.tally.ops++
    const r = await settleWithin(fn, DEADLINE_MS)
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
      this.#fail(`${where}: not a client error: ${described(r.err)}`)
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
    this.#relay.reseed(s.seed, 0)
    const data = new Rng(s.seed ^ 0x5a5a_5a5a)
    const dir = `/s${String(this.tally.sessions)}`
    // The export's setup is not damaged: a session starts from a directory of its own.
    const direct = await NfsClient.mount(`nfs://127.0.0.1/export?nfsport=${String(this.#server.port)}&mountport=${String(this.#server.port)}`, {})
    await direct.mkdir(dir)
    this.#relay.rate = s.rate
    const url = `nfs://127.0.0.1/export?nfsport=${String(this.#relay.port)}&mountport=${String(this.#relay.port)}`
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
    this.#relay.rate = 0
    this.tally.replies = this.#relay.replies
    this.tally.damaged = this.#relay.damaged
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
    return this.#relay.openConnections
  }

  async close(): Promise<void> {
    this.#escapes.close()
    await this.#relay.close()
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
