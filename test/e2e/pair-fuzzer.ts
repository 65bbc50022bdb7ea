/*
 * A whole replicating pair with the standby's replies damaged on the way (the quick sample is
 * test/e2e/fuzz-pair.test.ts, the long run bench/fuzz-pair.ts). sender-fuzzer.ts holds one Sender
 * to a recording standby; this one runs what `tsnfs serve --standby` runs, in one process: a
 * primary (createServer with PrimaryReplication over a local export: change logs, senders, the
 * reply shipper's REPL_DRC, full resyncs) and a StandbyNode over a local copy, with the damaging
 * relay (reply-damage.ts) between the primary and the standby's replication port. A client of
 * ours does everyday NFS work on the primary meanwhile.
 *
 * Checked, per session:
 * - every NFS call settles within DEADLINE_MS, and fails only for what the list asked (NOENT,
 *   EXIST, NOTEMPTY): the client's link is not damaged, and in sync mode a standby that stops
 *   making sense leaves the sync set rather than holding replies. The exception is a primary
 *   fenced by a reply that decoded as REPL_STALE_EPOCH with a higher epoch (the protocol trusts
 *   its peer's epoch; a damaged status word can say so): it refuses writes from then on, as it
 *   must, and the session is counted, not compared;
 * - nothing escapes as an uncaught exception or an unhandled rejection;
 * - then the link is made clean and cut: the primary reconnects, and within CATCH_UP_MS its
 *   standby has caught up (a full resync if the damage made one needed), and the two trees are
 *   identical: names, types, modes, owners, sizes, mtimes, content, hard links.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { NfsClient } from '../../client/index.ts'
import { NfsError } from '../../client/errors.ts'
import { RpcError } from '../../client/rpc/errors.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { createServer } from '../../server/index.ts'
import type { TsnfsServer } from '../../server/index.ts'
import type { Logger } from '../../server/logger.ts'
import { silentLogger } from '../../server/logger.ts'
import type { ReplicationMode } from '../../server/replication/gate.ts'
import { PrimaryReplication } from '../../server/replication/primary.ts'
import { StandbyNode } from '../../server/replication/standby-node.ts'
import { LocalVfs } from '../../vfs/local/local-vfs.ts'
import { snapshot } from '../server/replication/resync-fixtures.ts'
import { EscapeWatch, described, settleWithin } from './fuzz-run.ts'
import { DamageRelay, Rng } from './reply-damage.ts'

/** An NFS call slower than this counts as a hang (the primary declares a silent standby dead after 500 ms). */
export const DEADLINE_MS = 15_000
/** How long the standby may take to catch up once the link is clean (a full resync of a small tree). */
export const CATCH_UP_MS = 20_000

export const PAIR_OPS = ['mkdir', 'write', 'append', 'rename', 'link', 'symlink', 'chmod', 'truncate', 'unlink', 'rm'] as const
export type PairOp = (typeof PAIR_OPS)[number]

export interface PairSession {
  seed: number
  rate: number
  mode: ReplicationMode
  ops: PairOp[]
}

export interface PairFuzzTally {
  sessions: number
  ops: number
  byOutcome: Record<string, number>
  /** Sessions whose primary was fenced by a damaged reply (not compared). */
  fenced: number
  /** Sessions whose trees were compared after the catch-up. */
  compared: number
  /** Full resyncs the primaries ran (a new standby's first, and those the damage made needed). */
  resyncs: number
  failures: number
  firstFailure: string | null
}

/** What a seeded list of operations may meet on a primary that works. */
const LIST_FAILURES = new Set(['NFS3ERR_NOENT', 'NFS3ERR_EXIST', 'NFS3ERR_NOTEMPTY'])

function errorCode(err: unknown): string | null {
  if (err instanceof NfsError || err instanceof RpcError) return err.code
  return null
}

/** JSON with bigints as decimal strings (positions, sizes, times). */
function json(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) return false
    await new Promise((r) => setTimeout(r, 20))
  }
  return true
}

export class PairFuzzer {
  readonly tally: PairFuzzTally = { sessions: 0, ops: 0, byOutcome: {}, fenced: 0, compared: 0, resyncs: 0, failures: 0, firstFailure: null }
  replies = 0
  damaged = 0
  /** Relayed connections left open after the last session. */
  openConnections = 0
  readonly #dir: string
  readonly #log: Logger
  readonly #escapes = new EscapeWatch((what) => { this.#fail(what) })

  /** `log`: the nodes' logger (silent by default; a session's story when one fails). */
  constructor(log: Logger = silentLogger) {
    this.#log = log
    this.#dir = mkdtempSync(join(tmpdir(), 'tsnfs-pair-fuzz-'))
  }

  /** Uncaught exceptions and unhandled rejections while sessions ran (each one a failure). */
  get escaped(): number {
    return this.#escapes.count
  }

  #fail(what: string): void {
    this.tally.failures++
    this.tally.firstFailure ??= what
  }

  /** One session; true when every check held. */
  async run(s: PairSession): Promise<boolean> {
    this.tally.sessions++
    const before = this.tally.failures
    const where = `session seed ${String(s.seed)} rate ${String(s.rate)} ${s.mode}`
    const dir = join(this.#dir, `s${String(this.tally.sessions)}`)
    const exportPath = join(dir, 'export')
    const copy = join(dir, 'copy')
    mkdirSync(exportPath, { recursive: true })
    mkdirSync(copy)
    const exportsText = `${exportPath} *(rw,insecure,no_root_squash)\n`
    const standby = await StandbyNode.open({
      stateDir: join(dir, 'standby-state'),
      node: 'standby-b',
      listen: { host: '127.0.0.1', port: 0 },
      exports: parseExports(exportsText, 'exports'),
      serve: { port: 0, host: '127.0.0.1', locking: false },
      log: this.#log,
      backends: new Map([['local', (_exp, ctx) => new LocalVfs({ root: copy, stateDir: join(ctx.stateDir, 'local', '1') })]]),
    })
    const relay = await DamageRelay.start(standby.port)
    relay.reseed(s.seed, s.rate)
    let server: TsnfsServer | null = null
    let client: NfsClient | null = null
    try {
      // The server closes it (also when createServer fails).
      const repl = await PrimaryReplication.open({
        stateDir: join(dir, 'primary-state'),
        cluster: 'tsnfs',
        node: 'primary-a',
        standbys: [{ host: '127.0.0.1', port: relay.port }],
        mode: s.mode,
        heartbeatMs: 100,
        timeoutMs: 500,
        appendTimeoutMs: 2000,
        log: this.#log,
      })
      server = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: join(dir, 'primary-state'), port: 0, host: '127.0.0.1', locking: false, replication: repl })
      client = await NfsClient.mount(`nfs://127.0.0.1${exportPath}?nfsport=${String(server.port)}&mountport=${String(server.port)}`, {})
      const fenced = (): boolean => repl.view().role !== 'primary'
      await this.#work(s, client, where, fenced)
      if (fenced()) {
        this.tally.fenced++
        return this.tally.failures === before
      }
      // The link made clean and cut: the next connection starts from the standby's real position.
      relay.rate = 0
      relay.cut()
      const last = (): bigint => repl.view().positions[0]?.applied ?? -1n
      const caughtUp = (): boolean => {
        const p = repl.view().peers[0]
        return p !== undefined && p.alive && p.resync?.running !== true && p.resync?.needed !== true && p.acked === last() && p.state === 'streaming'
      }
      // A damaged reply near the end of the work may fence the primary while the link is made clean.
      await waitFor(() => caughtUp() || fenced(), CATCH_UP_MS)
      if (fenced()) {
        this.tally.fenced++
        return this.tally.failures === before
      }
      if (!caughtUp()) {
        this.#fail(`${where}: the standby did not catch up within ${String(CATCH_UP_MS)} ms after the link was clean: ${json(repl.view().peers[0])}`)
        return false
      }
      this.tally.compared++
      this.tally.resyncs += repl.view().peers[0]?.resync?.count ?? 0
      const a = json(snapshot(exportPath))
      const b = json(snapshot(copy))
      if (a !== b) this.#fail(`${where}: the trees differ after the catch-up\nprimary: ${a}\nstandby: ${b}`)
    } finally {
      await client?.umount().catch(() => undefined)
      await server?.close().catch(() => undefined)
      this.replies += relay.replies
      this.damaged += relay.damaged
      await relay.close()
      this.openConnections = relay.openConnections
      await standby.close()
      rmSync(dir, { recursive: true, force: true })
    }
    return this.tally.failures === before
  }

  /** The session's list of operations on the primary, each within the deadline. */
  async #work(s: PairSession, c: NfsClient, where: string, fenced: () => boolean): Promise<void> {
    const data = new Rng(s.seed ^ 0x0f0f_0f0f)
    for (const [i, op] of s.ops.entries()) {
      const f = `/f${String(i % 4)}`
      const g = `/f${String((i + 1) % 4)}`
      const d = `/d${String(i % 2)}`
      const body = async (): Promise<unknown> => {
        switch (op) {
          case 'mkdir': return c.mkdir(d)
          case 'write': return c.writeFile(f, data.bytes(data.below(20_000)))
          case 'append': {
            const h = await c.open(f, 'r+')
            try {
              return await h.write(data.bytes(1 + data.below(3000)), BigInt(data.below(30_000)))
            } finally {
              await h.close()
            }
          }
          case 'rename': return c.rename(f, data.chance(0.5) ? g : `${d}/m${String(i)}`)
          case 'link': return c.link(f, `/h${String(i % 2)}`)
          case 'symlink': return c.symlink(`f${String(i % 4)}`, `/l${String(i % 2)}`)
          case 'chmod': return c.chmod(f, 0o600 | data.below(0o100))
          case 'truncate': return c.truncate(f, data.below(10_000))
          case 'unlink': return c.unlink(f)
          case 'rm': return c.rm(d, { recursive: true })
        }
      }
      await this.#op(`${where}: ${op}`, body, fenced)
    }
  }

  async #op(where: string, fn: () => Promise<unknown>, fenced: () => boolean): Promise<void> {
    this.tally.ops++
    const r = await settleWithin(fn, DEADLINE_MS)
    if (r === 'late') {
      this.#fail(`${where}: not settled within ${String(DEADLINE_MS)} ms`)
      return
    }
    if (r === 'ok') {
      this.tally.byOutcome.ok = (this.tally.byOutcome.ok ?? 0) + 1
      return
    }
    const code = errorCode(r.err) ?? 'not a client error'
    this.tally.byOutcome[code] = (this.tally.byOutcome[code] ?? 0) + 1
    if (!LIST_FAILURES.has(code) && !fenced()) this.#fail(`${where}: ${code}: ${described(r.err)}`)
  }

  close(): void {
    this.#escapes.close()
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

/** The list's draw: writes weigh more, so the other operations mostly find their files. */
const WEIGHTED: readonly PairOp[] = [...PAIR_OPS, 'write', 'write', 'write', 'append', 'mkdir']

/** Sessions: a seed, a damage rate (a few with none, as the control), sync or async, 8 to 24 operations. */
export function pairSessionArbitrary(): fc.Arbitrary<PairSession> {
  return fc.record({
    seed: fc.integer({ min: 1, max: 0x7fff_ffff }),
    rate: fc.constantFrom(0, 0.1, 0.3, 0.6),
    mode: fc.constantFrom<ReplicationMode>('sync', 'async'),
    ops: fc.array(fc.constantFrom(...WEIGHTED), { minLength: 8, maxLength: 24 }),
  })
}
