/*
 * Sessions: one row in tsnfs_session per running server, with a heartbeat.
 * The session id tags this server's change notifications (so it can skip
 * its own) and its pending slices (so another server can reclaim them if
 * it dies). Every heartbeat also sweeps: rows whose heartbeat is older than
 * `staleMs` are deleted in one statement (so exactly one server claims
 * each) and handed to `onStale` to clean up after.
 */
import { randomBytes } from 'node:crypto'
import type { SqlDb } from '../sql.ts'

export interface SessionInfo {
  sid: bigint
  host: string
  pid: number
  /** Milliseconds since the epoch. */
  started: number
  heartbeat: number
  info: string
}

export interface SessionOptions {
  host: string
  info?: string
  /** Heartbeat period; default 5 s. */
  heartbeatMs?: number
  /** A session silent this long is dead; default 30 s (six missed heartbeats). */
  staleMs?: number
  /** Clean up after a dead session (its pending slices, the delfile queue). */
  onStale?: (sid: bigint) => Promise<void>
  log?: (msg: string) => void
}

/** A random 63-bit id: BIGINT is signed, and collisions at this size are not a concern. */
export function newSid(): bigint {
  const v = randomBytes(8).readBigUInt64BE() & (2n ** 63n - 1n)
  return v === 0n ? 1n : v
}

export async function listSessions(db: SqlDb): Promise<SessionInfo[]> {
  const r = await db.query('SELECT sid, host, pid, started, heartbeat, info FROM tsnfs_session ORDER BY started')
  return r.rows.map((row) => ({
    sid: BigInt(row['sid'] as string),
    host: row['host'] as string,
    pid: Number(row['pid']),
    started: Number(row['started']),
    heartbeat: Number(row['heartbeat']),
    info: row['info'] as string,
  }))
}

/** Delete sessions silent for `staleMs` and return their ids (each returned to one caller only). */
export async function claimStale(db: SqlDb, staleMs: number, nowMs = Date.now()): Promise<bigint[]> {
  const r = await db.query('DELETE FROM tsnfs_session WHERE heartbeat < $1 RETURNING sid', [nowMs - staleMs])
  return r.rows.map((row) => BigInt(row['sid'] as string))
}

export class Session {
  readonly sid: bigint
  readonly #db: SqlDb
  readonly #opts: SessionOptions
  #timer: NodeJS.Timeout | undefined
  #beat: Promise<void> = Promise.resolve()

  private constructor(db: SqlDb, sid: bigint, opts: SessionOptions) {
    this.#db = db
    this.sid = sid
    this.#opts = opts
  }

  static async start(db: SqlDb, opts: SessionOptions): Promise<Session> {
    const sid = newSid()
    const t = Date.now()
    await db.query(
      'INSERT INTO tsnfs_session (sid, host, pid, started, heartbeat, info) VALUES ($1, $2, $3, $4, $4, $5)',
      [sid, opts.host, process.pid, t, opts.info ?? ''],
    )
    const s = new Session(db, sid, opts)
    s.#timer = setInterval(() => { s.#beat = s.#beat.then(() => s.beat()) }, opts.heartbeatMs ?? 5000)
    s.#timer.unref()
    return s
  }

  /** One heartbeat and sweep; errors are logged (the next beat tries again), never thrown. */
  async beat(): Promise<void> {
    try {
      const r = await this.#db.query('UPDATE tsnfs_session SET heartbeat = $2 WHERE sid = $1', [this.sid, Date.now()])
      if (r.rowCount === 0) {
        // Another server thought us dead and cleaned up after us: come back under the same id,
        // our pending slices are gone, and writes in progress fail when they try to attach.
        this.#opts.log?.(`cluster: session ${this.sid} was declared dead by another server; registering again`)
        const t = Date.now()
        await this.#db.query(
          'INSERT INTO tsnfs_session (sid, host, pid, started, heartbeat, info) VALUES ($1, $2, $3, $4, $4, $5)',
          [this.sid, this.#opts.host, process.pid, t, this.#opts.info ?? ''],
        )
      }
      for (const sid of await claimStale(this.#db, this.#opts.staleMs ?? 30_000)) {
        this.#opts.log?.(`cluster: session ${sid} is stale; cleaning up after it`)
        await this.#opts.onStale?.(sid)
      }
    } catch (err) {
      this.#opts.log?.(`cluster: heartbeat failed: ${(err as Error).message}`)
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer)
    await this.#beat
    await this.#db.query('DELETE FROM tsnfs_session WHERE sid = $1', [this.sid])
  }
}
