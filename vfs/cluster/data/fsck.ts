/*
 * Checking references both ways (`tsnfs cluster fsck`): every slice a chunk
 * names has a reference row whose count and size agree with the chunk rows;
 * every block of a referenced slice is in the store with the right length;
 * every block in the store belongs to a referenced or pending slice. It reads
 * and reports; it changes nothing (gc repairs what can be repaired). Run it
 * on a quiet file system: a write committing during the scan can show up as
 * a passing refs mismatch.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { ObjectInfo, ObjectStore } from '../object-store.ts'
import { COUNTER } from '../schema.ts'
import type { SqlDb } from '../sql.ts'
import { BLOCK_PREFIX, blockKey, blockLength, parseBlockKey } from './keys.ts'
import { DEFAULT_LAYOUT } from './layout.ts'
import { decodeSlices } from './slice.ts'

export type FsckKind =
  | 'bad-chunk' // a chunk row that does not decode, or a record outside its chunk
  | 'missing-ref' // a chunk names a slice without a tsnfs_slice_ref row
  | 'size-mismatch' // a record's slice size differs from the slice_ref row's
  | 'refs-mismatch' // slice_ref.refs differs from the number of records naming the slice
  | 'missing-block' // a block of a referenced slice is not in the store
  | 'bad-length' // a block is in the store with another length than the slice implies
  | 'orphan' // a block whose slice is neither referenced nor pending
  | 'foreign' // a key under chunks/ that is not a block name
  | 'usage-mismatch' // COUNTER.usedBytes differs from the bytes of referenced slices
  | 'inode-count-mismatch' // COUNTER.usedInodes differs from the node rows

export interface FsckProblem {
  kind: FsckKind
  message: string
  id?: bigint
  key?: string
}

export interface FsckReport {
  chunks: number
  slices: number
  objects: number
  problems: FsckProblem[]
  /** Problems found past maxProblems: counted, not listed. */
  unlisted: number
  /** Passes over the chunk rows (see FsckOptions.maxSlices). */
  passes: number
}

export interface FsckOptions {
  blockSize?: number
  chunkSize?: number
  /**
   * Slices held in memory at once (default 1,000,000). A file system with
   * more is checked in passes, each taking the slices of some of the 256 key
   * prefixes (`chunks/<id % 256>/`): pass p of P holds the ids with
   * (id % 256) % P = p, reads every chunk row again, and lists only its
   * prefixes. P is a power of two up to 256, so memory is bounded by
   * maxSlices or, past 256 × maxSlices slices, by a 256th of them.
   */
  maxSlices?: number
  /** Problems listed (default 10,000); the rest are counted in `unlisted`. */
  maxProblems?: number
}

const PAGE = 500
const SHARDS = 256
const SHARD_KEY = /^chunks\/[0-9a-f]{2}\//

export async function checkReferences(db: SqlDb, store: ObjectStore, opts: FsckOptions = {}): Promise<FsckReport> {
  const maxProblems = opts.maxProblems ?? 10_000
  const report: FsckReport = { chunks: 0, slices: 0, objects: 0, problems: [], unlisted: 0, passes: 0 }
  const problem = (p: FsckProblem): void => {
    if (report.problems.length < maxProblems) report.problems.push(p)
    else report.unlisted++
  }
  const count = await db.query('SELECT count(*) AS n FROM tsnfs_slice_ref')
  const total = Number(count.rows[0]?.['n'] ?? 0)
  let passes = 1
  while (passes < SHARDS && passes * (opts.maxSlices ?? 1_000_000) < total) passes *= 2
  report.passes = passes
  let live = 0
  for (let p = 0; p < passes; p++) live += await checkPass(db, store, opts, passes, p, report, problem)
  // Live servers apply their counter deltas about once a second (meta/counter-delta.ts, and the
  // data layer's byte usage): a difference right after a workload is that tick, not damage. With a
  // session in the table, look again once two ticks have passed before calling it a problem; a
  // server that died within its tick, or one still busy, leaves a difference that stays.
  let c = await readCounters(db)
  const differs = (): boolean => c.bytes !== live || c.inodes !== c.rows
  if (differs()) {
    const sessions = await db.query('SELECT count(*) AS n FROM tsnfs_session')
    if (Number(sessions.rows[0]?.['n'] ?? 0) > 0) {
      await sleep(COUNTER_SETTLE_MS)
      c = await readCounters(db)
    }
  }
  if (c.bytes !== live) problem({ kind: 'usage-mismatch', message: `used bytes counter says ${c.bytes}, referenced slices hold ${live}` })
  if (c.inodes !== c.rows) problem({ kind: 'inode-count-mismatch', message: `used inodes counter says ${c.inodes}, the file system has ${c.rows} nodes` })
  return report
}

/** Two of the servers' one-second counter ticks, and a margin. */
const COUNTER_SETTLE_MS = 2500

async function readCounters(db: SqlDb): Promise<{ bytes: number; inodes: string; rows: string }> {
  const r = await db.query(
    'SELECT (SELECT value FROM tsnfs_counter WHERE name = $1) AS bytes, (SELECT value FROM tsnfs_counter WHERE name = $2) AS inodes, (SELECT count(*) FROM tsnfs_node) AS rows',
    [COUNTER.usedBytes, COUNTER.usedInodes],
  )
  const row = r.rows[0] ?? {}
  // count(*) and BIGINT come back as strings: compared as such, exact at any size.
  return { bytes: Number(row['bytes'] ?? 0), inodes: row['inodes'] as string | null ?? '0', rows: row['rows'] as string | null ?? '0' }
}

/** One pass: the slices with (id % 256) % passes = pass. Returns the bytes of its referenced slices. */
async function checkPass(
  db: SqlDb, store: ObjectStore, opts: FsckOptions, passes: number, pass: number,
  report: FsckReport, problem: (p: FsckProblem) => void,
): Promise<number> {
  const blockSize = opts.blockSize ?? DEFAULT_LAYOUT.blockSize
  const chunkSize = opts.chunkSize ?? DEFAULT_LAYOUT.chunkSize
  const mine = (id: bigint): boolean => Number(id % BigInt(SHARDS)) % passes === pass
  const named = new Map<bigint, { count: number; size: number; where: string }>()

  let after: [string, number] = ['-1', -1]
  for (;;) {
    const r = await db.query(
      'SELECT inode, idx, slices FROM tsnfs_chunk WHERE inode > $1 OR (inode = $1 AND idx > $2) ORDER BY inode, idx LIMIT $3',
      [after[0], after[1], PAGE],
    )
    for (const row of r.rows) {
      // Chunk-level problems are reported by the first pass only.
      if (pass === 0) report.chunks++
      const where = `inode ${String(row['inode'])} chunk ${String(row['idx'])}`
      after = [row['inode'] as string, Number(row['idx'])]
      let recs
      try {
        recs = decodeSlices(row['slices'] as Buffer, where)
      } catch (err) {
        if (pass === 0) problem({ kind: 'bad-chunk', message: (err as Error).message })
        continue
      }
      for (const rec of recs) {
        if (pass === 0 && rec.pos + rec.len > chunkSize) problem({ kind: 'bad-chunk', id: rec.id, message: `${where}: record at ${rec.pos} of ${rec.len} bytes is past the chunk` })
        if (rec.id === 0n || !mine(rec.id)) continue
        const n = named.get(rec.id)
        if (n === undefined) named.set(rec.id, { count: 1, size: rec.size, where })
        else {
          n.count++
          if (n.size !== rec.size) problem({ kind: 'size-mismatch', id: rec.id, message: `slice ${rec.id}: ${where} says ${rec.size} bytes, ${n.where} says ${n.size}` })
        }
      }
    }
    if (r.rows.length < PAGE) break
  }

  // MOD on both sides: the same expression on PostgreSQL, CockroachDB and YugabyteDB.
  const filter = 'MOD(MOD(id, 256), $1) = $2'
  const refs = new Map<bigint, { refs: number; size: number }>()
  const rr = await db.query(`SELECT id, size, refs FROM tsnfs_slice_ref WHERE ${filter}`, [passes, pass])
  for (const row of rr.rows) refs.set(BigInt(row['id'] as string), { refs: Number(row['refs']), size: Number(row['size']) })
  report.slices += refs.size
  const pending = new Set<bigint>()
  const pr = await db.query(`SELECT id FROM tsnfs_pending_slice WHERE ${filter}`, [passes, pass])
  for (const row of pr.rows) pending.add(BigInt(row['id'] as string))

  for (const [id, n] of named) {
    const ref = refs.get(id)
    if (ref === undefined) {
      problem({ kind: 'missing-ref', id, message: `slice ${id} (${n.where}) has no reference row` })
      continue
    }
    if (ref.size !== n.size) problem({ kind: 'size-mismatch', id, message: `slice ${id}: reference row says ${ref.size} bytes, ${n.where} says ${n.size}` })
    if (ref.refs !== n.count) problem({ kind: 'refs-mismatch', id, message: `slice ${id}: refs ${ref.refs}, but ${n.count} chunk records name it` })
  }
  for (const [id, ref] of refs) {
    if (ref.refs > 0 && !named.has(id)) problem({ kind: 'refs-mismatch', id, message: `slice ${id}: refs ${ref.refs}, but no chunk record names it` })
  }
  named.clear()

  // Blocks in the store, by slice: one pass lists everything; with several, each lists its prefixes.
  const stored = new Map<bigint, Map<string, number>>()
  const take = (o: ObjectInfo): void => {
    report.objects++
    const name = parseBlockKey(o.key)
    if (name === null) {
      problem({ kind: 'foreign', key: o.key, message: `${o.key} is not a block name` })
      return
    }
    if (name.len !== o.size) problem({ kind: 'bad-length', id: name.id, key: o.key, message: `${o.key} is ${o.size} bytes, its name says ${name.len}` })
    const m = stored.get(name.id) ?? new Map<string, number>()
    m.set(o.key, o.size)
    stored.set(name.id, m)
  }
  if (passes === 1) {
    for await (const o of store.list(BLOCK_PREFIX)) take(o)
  } else {
    for (let shard = pass; shard < SHARDS; shard += passes) {
      for await (const o of store.list(`${BLOCK_PREFIX}${shard.toString(16).padStart(2, '0')}/`)) take(o)
    }
    // Keys under chunks/ outside the 256 prefixes are in no pass's prefixes: the first pass reports them.
    if (pass === 0) {
      for await (const o of store.list(BLOCK_PREFIX)) if (!SHARD_KEY.test(o.key)) take(o)
    }
  }

  let live = 0
  for (const [id, ref] of refs) {
    if (ref.refs <= 0) continue
    live += ref.size
    const have = stored.get(id) ?? new Map<string, number>()
    const expected = new Set<string>()
    for (let i = 0; i * blockSize < ref.size; i++) {
      const key = blockKey(id, i, blockLength(ref.size, i, blockSize))
      expected.add(key)
      if (!have.has(key)) problem({ kind: 'missing-block', id, key, message: `slice ${id}: block ${key} is missing from the store` })
    }
    for (const key of have.keys()) {
      if (!expected.has(key)) problem({ kind: 'bad-length', id, key, message: `slice ${id} of ${ref.size} bytes has no block ${key}` })
    }
  }
  for (const [id, keys] of stored) {
    if (refs.has(id) || pending.has(id)) continue
    for (const key of keys.keys()) problem({ kind: 'orphan', id, key, message: `${key}: slice ${id} is neither referenced nor pending` })
  }
  return live
}
