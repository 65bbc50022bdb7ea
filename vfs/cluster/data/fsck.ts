/*
 * Checking references both ways (`tsnfs cluster fsck`): every slice a chunk
 * names has a reference row whose count and size agree with the chunk rows;
 * every block of a referenced slice is in the store with the right length;
 * every block in the store belongs to a referenced or pending slice. It reads
 * and reports; it changes nothing (gc repairs what can be repaired). Run it
 * on a quiet file system: a write committing during the scan can show up as
 * a passing refs mismatch.
 */
import type { ObjectStore } from '../object-store.ts'
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
}

const PAGE = 500

export async function checkReferences(db: SqlDb, store: ObjectStore, opts: { blockSize?: number; chunkSize?: number } = {}): Promise<FsckReport> {
  const blockSize = opts.blockSize ?? DEFAULT_LAYOUT.blockSize
  const chunkSize = opts.chunkSize ?? DEFAULT_LAYOUT.chunkSize
  const problems: FsckProblem[] = []
  const named = new Map<bigint, { count: number; size: number; where: string }>()
  let chunks = 0

  let after: [string, number] = ['-1', -1]
  for (;;) {
    const r = await db.query(
      'SELECT inode, idx, slices FROM tsnfs_chunk WHERE inode > $1 OR (inode = $1 AND idx > $2) ORDER BY inode, idx LIMIT $3',
      [after[0], after[1], PAGE],
    )
    for (const row of r.rows) {
      chunks++
      const where = `inode ${String(row['inode'])} chunk ${String(row['idx'])}`
      after = [row['inode'] as string, Number(row['idx'])]
      let recs
      try {
        recs = decodeSlices(row['slices'] as Buffer, where)
      } catch (err) {
        problems.push({ kind: 'bad-chunk', message: (err as Error).message })
        continue
      }
      for (const rec of recs) {
        if (rec.pos + rec.len > chunkSize) problems.push({ kind: 'bad-chunk', id: rec.id, message: `${where}: record at ${rec.pos} of ${rec.len} bytes is past the chunk` })
        if (rec.id === 0n) continue
        const n = named.get(rec.id)
        if (n === undefined) named.set(rec.id, { count: 1, size: rec.size, where })
        else {
          n.count++
          if (n.size !== rec.size) problems.push({ kind: 'size-mismatch', id: rec.id, message: `slice ${rec.id}: ${where} says ${rec.size} bytes, ${n.where} says ${n.size}` })
        }
      }
    }
    if (r.rows.length < PAGE) break
  }

  const refs = new Map<bigint, { refs: number; size: number }>()
  const rr = await db.query('SELECT id, size, refs FROM tsnfs_slice_ref')
  for (const row of rr.rows) refs.set(BigInt(row['id'] as string), { refs: Number(row['refs']), size: Number(row['size']) })
  const pending = new Set<bigint>()
  const pr = await db.query('SELECT id FROM tsnfs_pending_slice')
  for (const row of pr.rows) pending.add(BigInt(row['id'] as string))

  for (const [id, n] of named) {
    const ref = refs.get(id)
    if (ref === undefined) {
      problems.push({ kind: 'missing-ref', id, message: `slice ${id} (${n.where}) has no reference row` })
      continue
    }
    if (ref.size !== n.size) problems.push({ kind: 'size-mismatch', id, message: `slice ${id}: reference row says ${ref.size} bytes, ${n.where} says ${n.size}` })
    if (ref.refs !== n.count) problems.push({ kind: 'refs-mismatch', id, message: `slice ${id}: refs ${ref.refs}, but ${n.count} chunk records name it` })
  }
  for (const [id, ref] of refs) {
    if (ref.refs > 0 && !named.has(id)) problems.push({ kind: 'refs-mismatch', id, message: `slice ${id}: refs ${ref.refs}, but no chunk record names it` })
  }

  // Blocks in the store, by slice.
  const stored = new Map<bigint, Map<string, number>>()
  let objects = 0
  for await (const o of store.list(BLOCK_PREFIX)) {
    objects++
    const name = parseBlockKey(o.key)
    if (name === null) {
      problems.push({ kind: 'foreign', key: o.key, message: `${o.key} is not a block name` })
      continue
    }
    if (name.len !== o.size) problems.push({ kind: 'bad-length', id: name.id, key: o.key, message: `${o.key} is ${o.size} bytes, its name says ${name.len}` })
    const m = stored.get(name.id) ?? new Map<string, number>()
    m.set(o.key, o.size)
    stored.set(name.id, m)
  }

  for (const [id, ref] of refs) {
    if (ref.refs <= 0) continue
    const have = stored.get(id) ?? new Map<string, number>()
    const expected = new Set<string>()
    for (let i = 0; i * blockSize < ref.size; i++) {
      const key = blockKey(id, i, blockLength(ref.size, i, blockSize))
      expected.add(key)
      if (!have.has(key)) problems.push({ kind: 'missing-block', id, key, message: `slice ${id}: block ${key} is missing from the store` })
    }
    for (const key of have.keys()) {
      if (!expected.has(key)) problems.push({ kind: 'bad-length', id, key, message: `slice ${id} of ${ref.size} bytes has no block ${key}` })
    }
  }
  for (const [id, keys] of stored) {
    if (refs.has(id) || pending.has(id)) continue
    for (const key of keys.keys()) problems.push({ kind: 'orphan', id, key, message: `${key}: slice ${id} is neither referenced nor pending` })
  }

  let live = 0
  for (const ref of refs.values()) if (ref.refs > 0) live += ref.size
  const used = await db.query('SELECT value FROM tsnfs_counter WHERE name = $1', [COUNTER.usedBytes])
  const counted = Number(used.rows[0]?.['value'] ?? 0)
  if (counted !== live) problems.push({ kind: 'usage-mismatch', message: `used bytes counter says ${counted}, referenced slices hold ${live}` })

  return { chunks, slices: refs.size, objects, problems }
}
