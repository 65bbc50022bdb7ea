/*
 * Our NDMP client side (client/ndmp/connection.ts and the backup manager's jobs over it, dma/)
 * against our NDMP server whose messages are damaged on the way (the quick sample is
 * test/e2e/fuzz-dma.test.ts, the long run bench/fuzz-dma.ts). The server (a memory export, two
 * virtual tape files) sits behind a relay that, for each session, damages a share of the
 * server's records (NDMP frames messages with ONC RPC record marking): replies and posts alike
 * (NOTIFY, LOG, FH). Bits flipped, cut short, bytes added, a header or body word replaced by a
 * value chosen to lie (a length, a count, an error, a message code, a sequence or reply_sequence
 * naming another message), a record dropped, sent twice, or an earlier one sent in its place.
 * Only the control connections go through the relay: the mover's data connection does not.
 *
 * A session runs a seeded list of what a DMA does: connect and authorize (MD5 or text), the
 * CONFIG_GET_* queries, and whole jobs of the dma/ layer, each on connections of its own through
 * the relay: a backup of the memory export to a tape (ndmp-job.ts), a whole and a direct access
 * restore of a reference backup (restore/ndmp-executor.ts), and the reference stream read back
 * as verify does (pool/ndmp-tape-source.ts). What is checked:
 * - every operation settles within DEADLINE_MS: resolved, or rejected with one of the client's
 *   own errors (NdmpClientError, DmaError, or the plain Error the jobs fail with; never a
 *   TypeError, a RangeError, an XdrDecodeError or another error of some other kind);
 * - nothing escapes as an uncaught exception or an unhandled rejection;
 * - with nothing damaged, every operation succeeds;
 * - after a session, the relay's connections are all closed (the test waits for them).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import type { BackupInfo } from '../../backup/catalog/rows.ts'
import type { PlanFile, RestorePlan } from '../../backup/catalog/plan.ts'
import { NdmpClientError, NdmpConnection } from '../../client/ndmp/connection.ts'
import type { NdmpAuth } from '../../client/ndmp/connection.ts'
import type { HistoryEntry, JobContext } from '../../dma/drivers/driver.ts'
import { DmaError } from '../../dma/errors.ts'
import { ndmpDriver } from '../../dma/ndmp-job.ts'
import { NdmpTapeSource } from '../../dma/pool/ndmp-tape-source.ts'
import { NdmpRestoreExecutor } from '../../dma/restore/ndmp-executor.ts'
import { parseExport } from '../../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../../server/ndmp/server.ts'
import type { NdmpServer } from '../../server/ndmp/server.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { mkdirp, writeFile as vfsWrite } from '../backup/helpers.ts'
import { EscapeWatch, described, settleWithin } from './fuzz-run.ts'
import { DamageRelay, damage as rpcDamage } from './reply-damage.ts'
import type { Rng } from './reply-damage.ts'

/** An operation slower than this counts as a hang (the client's timeout is TIMEOUT_MS). */
export const DEADLINE_MS = 20_000
/** The NDMP client's per call timeout, and how long a job waits for a post before it asks the state. */
const TIMEOUT_MS = 250

const USER = 'dma'
const PASSWORD = 'fuzz-s3cret'
const M = v4.ndmp4_message

/** The CONFIG_GET_* queries and their reply codecs. */
const QUERIES = {
  hostInfo: [M.NDMP4_CONFIG_GET_HOST_INFO, v4.ndmp4_config_get_host_info_reply],
  serverInfo: [M.NDMP4_CONFIG_GET_SERVER_INFO, v4.ndmp4_config_get_server_info_reply],
  connectionType: [M.NDMP4_CONFIG_GET_CONNECTION_TYPE, v4.ndmp4_config_get_connection_type_reply],
  butypeInfo: [M.NDMP4_CONFIG_GET_BUTYPE_INFO, v4.ndmp4_config_get_butype_info_reply],
  fsInfo: [M.NDMP4_CONFIG_GET_FS_INFO, v4.ndmp4_config_get_fs_info_reply],
  tapeInfo: [M.NDMP4_CONFIG_GET_TAPE_INFO, v4.ndmp4_config_get_tape_info_reply],
  scsiInfo: [M.NDMP4_CONFIG_GET_SCSI_INFO, v4.ndmp4_config_get_scsi_info_reply],
  extList: [M.NDMP4_CONFIG_GET_EXT_LIST, v4.ndmp4_config_get_ext_list_reply],
} as const

export const OPS = ['connect', ...Object.keys(QUERIES) as Array<keyof typeof QUERIES>, 'backup', 'restore', 'restoreFile', 'read'] as const
export type Op = (typeof OPS)[number]

export interface Session {
  /** Seeds the relay's damage. */
  seed: number
  /** The share of the server's records damaged (0: none; then every operation succeeds). */
  rate: number
  auth: 'md5' | 'text'
  ops: Op[]
}

export interface DmaFuzzTally {
  sessions: number
  ops: number
  /** Records from the server seen by the relay, and damaged. */
  records: number
  damaged: number
  /** Settled operations by outcome: 'ok', an NdmpClientError's or DmaError's code, or 'Error' (a job's own failure). */
  byOutcome: Record<string, number>
  /** Operations that did not settle in time, threw an error not of the client's own, or (undamaged) failed. */
  failures: number
  firstFailure: string | null
}

/** Values a lying NDMP server would pick for a 32-bit word: errors, message codes (posts among them), lengths, counts. */
const WORDS = [0, 1, 2, 3, 4, 23, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 64, 4096, 1 << 24, 0x100, 0x502, 0x503, 0x504, 0x505, 0x506, 0x600, 0x900, 0xa00, 0xa07]

/**
 * What the relay passes on for one server record: reply-damage.ts's damage (bits, cuts, bytes
 * added, RPC's lying words, dropped, twice, an earlier one), or one of NDMP's own lies: a header
 * word (sequence, message type, code, reply_sequence, error) or a body word set to one of WORDS,
 * or to the reply_sequence plus or minus one (a reply to another call), or a body word nudged.
 */
function damage(rng: Rng, rec: Buffer, earlier: Buffer[]): Buffer[] {
  if (rec.length < 24 || rng.chance(0.6)) return rpcDamage(rng, rec, earlier)
  const out = Buffer.from(rec)
  const inBody = out.length > 24 && rng.chance(0.4)
  const at = inBody ? 24 + 4 * rng.below((out.length - 24) >> 2) : 4 * rng.below(6)
  const replySeq = out.readUInt32BE(16)
  const lies = [...WORDS, replySeq + 1, (replySeq - 1) >>> 0, out.readUInt32BE(0)]
  const v = inBody && rng.chance(0.5) ? out.readUInt32BE(at) + [1, -1, 8, 512][rng.below(4)]! : lies[rng.below(lies.length)]!
  out.writeUInt32BE(v >>> 0, at)
  return [out]
}

/** The code an error of the client's own side counts under, or null for an accidental one. */
function errorCode(err: unknown): string | null {
  if (err instanceof NdmpClientError || err instanceof DmaError) return err.code
  // The jobs fail with plain Errors of their own ('the mover halted: ...'): deliberate, not accidental.
  if (err instanceof Error && Object.getPrototypeOf(err) === Error.prototype) return 'Error'
  return null
}

/** The files of the memory export. */
const TREE: ReadonlyArray<[string, Buffer]> = [['docs/a.txt', Buffer.from('alpha\n')], ['docs/old/b.bin', Buffer.alloc(30_000, 7)], ['c.txt', Buffer.from('gamma\n'.repeat(300))]]

export class DmaFuzzer {
  readonly tally: DmaFuzzTally = { sessions: 0, ops: 0, records: 0, damaged: 0, byOutcome: {}, failures: 0, firstFailure: null }
  readonly #server: NdmpServer
  readonly #relay: DamageRelay
  readonly #dir: string
  /** The reference backup (on tape R, written undamaged at the start): its file history. */
  #history: HistoryEntry[] = []
  readonly #escapes = new EscapeWatch((what) => { this.#fail(what) })

  private constructor(server: NdmpServer, relay: DamageRelay, dir: string) {
    this.#server = server
    this.#relay = relay
    this.#dir = dir
  }

  /** Uncaught exceptions and unhandled rejections while sessions ran (each one a failure). */
  get escaped(): number {
    return this.#escapes.count
  }

  static async create(): Promise<DmaFuzzer> {
    const dir = mkdtempSync(join(tmpdir(), 'tsnfs-dma-fuzz-'))
    const vfs = new MemoryVfs({})
    await mkdirp(vfs, 'docs/old')
    for (const [p, b] of TREE) await vfsWrite(vfs, p, b)
    await mkdirp(vfs, 'r')
    for (const t of ['B', 'R']) writeFileSync(join(dir, t), '')
    mkdirSync(join(dir, 'state'))
    const server = await startNdmpServer({
      port: 0,
      host: '127.0.0.1',
      credentials: new Map([[USER, PASSWORD]]),
      exports: () => [{ path: '/mem', backend: 'memory', vfs, root: vfs.root() }],
      tapes: [{ name: join(dir, 'B'), path: join(dir, 'B') }, { name: join(dir, 'R'), path: join(dir, 'R') }],
      stateDir: join(dir, 'srv'),
      revision: 'fuzz',
    })
    const f = new DmaFuzzer(server, await DamageRelay.start(server.port, { damage, maxCallBytes: 1024 * 1024, maxReplyBytes: 32 * 1024 * 1024 }), dir)
    // The reference backup the restores and reads use, straight to the server.
    f.#auth('md5')
    await f.#backup(server.port, 'R', f.#history)
    return f
  }

  get #relayPort(): number {
    return this.#relay.port
  }

  #fail(what: string): void {
    this.tally.failures++
    this.tally.firstFailure ??= what
  }

  /** STATE/ndmp-auth for the jobs: this session's kind of authorization. */
  #auth(type: 'md5' | 'text'): NdmpAuth {
    writeFileSync(join(this.#dir, 'state', 'ndmp-auth'), `* ${USER} ${PASSWORD} ${type}\n`)
    return { type, user: USER, password: PASSWORD }
  }

  /** A backup job of /mem onto tape `tape` through the agent at `port`; its file history into `history`. */
  async #backup(port: number, tape: string, history: HistoryEntry[] = []): Promise<void> {
    const path = join(this.#dir, tape)
    const ctx: JobContext = {
      job: { id: 'fuzz', name: 'manual', export: `127.0.0.1:${String(port)}:/mem`, pool: this.#dir, level: 0, state: 'running', createdAt: '', tapes: [], bytes: 0, files: 0 },
      spec: parseExport(`127.0.0.1:${String(port)}:/mem`),
      exclude: [],
      tape: {
        first: () => Promise.resolve({ label: tape, path, capacity: 0 }),
        next: () => Promise.reject(new DmaError('DMA_NO_TAPE', 'one tape only')),
        wrote: () => Promise.resolve(),
      },
      signal: new AbortController().signal,
      log: () => undefined,
      file: (e) => { history.push(e) },
      progress: () => undefined,
    }
    await ndmpDriver(join(this.#dir, 'state'), { timeoutMs: TIMEOUT_MS }).backup(ctx)
  }

  /** The reference backup restored: whole (under /mem/r), or one file of it by direct access. */
  async #restore(file: boolean): Promise<void> {
    const backup = { id: 1, level: 0, jobId: null, tapes: [{ label: 'R', fileNumber: 0, streamOffset: 0n }] } as unknown as BackupInfo
    // FH_ADD_DIR names b.bin's node, FH_ADD_NODE gives the node's place in the stream.
    const node = this.#history.find((e) => e.path === 'b.bin')?.node
    const h = this.#history.find((e) => e.node === node && e.fhInfo !== undefined)
    if (h === undefined) throw new TypeError('the reference backup has no history of b.bin')
    const files: PlanFile[] = file ? [{ path: '/docs/old/b.bin', fileid: BigInt(h.node ?? 0), streamOffset: BigInt(h.fhInfo ?? 0), tapeLabel: 'R', endOffset: null } as unknown as PlanFile] : []
    const plan = { filesystem: '/mem', atNs: 0n, selection: ['/'], full: !file, steps: [{ backup, whole: !file, files }], missing: [] } as unknown as RestorePlan
    const x = new NdmpRestoreExecutor({ stateDir: join(this.#dir, 'state'), host: '127.0.0.1', port: this.#relayPort, filesystem: '/mem', device: () => join(this.#dir, 'R'), timeoutMs: TIMEOUT_MS })
    await x.execute(plan, { to: '/mem/r', overwrite: true })
  }

  /** The reference stream read back through the relayed tape agent, as verify does. */
  async #read(auth: NdmpAuth): Promise<void> {
    const src = new NdmpTapeSource({ host: '127.0.0.1', port: this.#relayPort, auth, devices: [join(this.#dir, 'R')], timeoutMs: TIMEOUT_MS })
    try {
      let n = 0
      for (let b = await src.read(65536); b !== null; b = await src.read(65536)) n += b.length
      if (n === 0) throw new TypeError('the reference stream read back empty')
    } finally {
      await src.close()
    }
  }

  /** Runs `fn` to its end or the deadline; records the outcome (a failure in the tally). */
  async #op(s: Session, name: string, fn: () => Promise<unknown>): Promise<void> {
    this.tally.ops++
    const r = await settleWithin(fn, DEADLINE_MS)
    const where = `session seed ${String(s.seed)} rate ${String(s.rate)} ${s.auth}: ${name}`
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
    if (s.rate === 0) this.#fail(`${where}: failed with nothing damaged: ${r.err instanceof Error ? r.err.message : String(r.err)}`)
  }

  /** One session; true when every check held. */
  async run(s: Session): Promise<boolean> {
    this.tally.sessions++
    const before = this.tally.failures
    this.#relay.reseed(s.seed, s.rate)
    const auth = this.#auth(s.auth)
    let conn: NdmpConnection | null = null
    const open = async (): Promise<NdmpConnection> => {
      conn?.destroy()
      conn = null
      const c = await NdmpConnection.connect({ host: '127.0.0.1', port: this.#relayPort, timeoutMs: TIMEOUT_MS })
      try {
        await c.auth(auth)
      } catch (err) {
        c.destroy()
        throw err
      }
      conn = c
      return c
    }
    for (const op of s.ops) {
      const body = async (): Promise<unknown> => {
        switch (op) {
          case 'connect': return open()
          case 'backup': return this.#backup(this.#relayPort, 'B')
          case 'restore': return this.#restore(false)
          case 'restoreFile': return this.#restore(true)
          case 'read': return this.#read(auth)
          default: {
            const [code, reply]: readonly [number, Codec<unknown>] = QUERIES[op]
            return (conn ?? (await open())).call(code, null, undefined, reply)
          }
        }
      }
      await this.#op(s, op, body)
    }
    const last = conn as NdmpConnection | null
    if (last !== null) await this.#op(s, 'close', () => last.close())
    this.#relay.rate = 0
    this.tally.records = this.#relay.replies
    this.tally.damaged = this.#relay.damaged
    await this.settle()
    return this.tally.failures === before
  }

  /** Waits (up to 5 s) for the relayed connections and the server's sessions to end: a session leaves none. */
  async settle(): Promise<void> {
    for (let i = 0; i < 250 && (this.#relay.openConnections > 0 || this.#server.sessions > 0); i++) await new Promise((r) => setTimeout(r, 20))
  }

  /** Relayed connections still open. */
  get openConnections(): number {
    return this.#relay.openConnections
  }

  /** Sessions the server still has open. */
  get serverSessions(): number {
    return this.#server.sessions
  }

  async close(): Promise<void> {
    this.#escapes.close()
    await this.#relay.close()
    await this.#server.close()
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

/** Sessions: a seed, a damage rate (a few with none, as the control), the authorization, up to 8 operations. */
export function sessionArbitrary(): fc.Arbitrary<Session> {
  return fc.record({
    seed: fc.integer({ min: 1, max: 0x7fff_ffff }),
    rate: fc.constantFrom(0, 0.05, 0.2, 0.5),
    auth: fc.constantFrom('md5' as const, 'text' as const),
    ops: fc.array(fc.constantFrom(...OPS), { minLength: 1, maxLength: 8 }),
  })
}
