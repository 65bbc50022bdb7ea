/*
 * A pool's index, DIR/pool.json: its tapes (label, capacity, state, bytes written) and the
 * backups written to them (which export, level, when, on which tapes), which retention reads.
 * Each tape is the file DIR/LABEL.tape.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { DmaError, isErrno } from '../errors.ts'

/** blank: labelled, writable; writing: a job writes it; full: hit its capacity (EOM); used: a finished backup's last tape. */
export type TapeState = 'blank' | 'writing' | 'full' | 'used'

export interface TapeRecord {
  label: string
  capacity: number
  state: TapeState
  /** Bytes written. */
  used: number
}

export type BackupStatus = 'writing' | 'done' | 'failed' | 'aborted'

export interface PoolBackup {
  job: string
  export: string
  level: number
  startedAt: string
  status: BackupStatus
  /** In write order: the stream continues from one tape to the next. */
  tapes: string[]
  bytes: number
}

export interface PoolIndex {
  name: string
  /** The capacity of a tape labelled without its own. */
  capacity: number
  /** Chains (a level 0 and the higher levels after it) kept per export before their tapes are recycled. */
  keepChains: number
  tapes: TapeRecord[]
  backups: PoolBackup[]
}

export const POOL_INDEX = 'pool.json'
const MAX_INDEX_BYTES = 64 * 1024 * 1024

export function tapePath(dir: string, label: string): string {
  return join(dir, `${label}.tape`)
}

export async function readIndex(dir: string): Promise<PoolIndex> {
  let buf: Buffer
  try {
    buf = await readFile(join(dir, POOL_INDEX))
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) throw new DmaError('DMA_NO_POOL', `${dir}: no pool here (tsnfs backup label ${dir} LABEL makes one)`)
    throw err
  }
  if (buf.length > MAX_INDEX_BYTES) throw new DmaError('DMA_POOL_SYNTAX', `${join(dir, POOL_INDEX)}: over ${MAX_INDEX_BYTES} bytes`)
  let v: unknown
  try {
    v = JSON.parse(buf.toString('utf8'))
  } catch (err) {
    throw new DmaError('DMA_POOL_SYNTAX', `${join(dir, POOL_INDEX)}: not JSON`, { cause: err })
  }
  const o = v as Partial<PoolIndex> | null
  if (o === null || typeof o !== 'object' || !Array.isArray(o.tapes) || !Array.isArray(o.backups) || typeof o.capacity !== 'number' || typeof o.keepChains !== 'number') {
    throw new DmaError('DMA_POOL_SYNTAX', `${join(dir, POOL_INDEX)}: not a pool index`)
  }
  return { name: typeof o.name === 'string' ? o.name : basename(dir), capacity: o.capacity, keepChains: o.keepChains, tapes: o.tapes, backups: o.backups }
}

export async function writeIndex(dir: string, index: PoolIndex): Promise<void> {
  const path = join(dir, POOL_INDEX)
  await writeFile(`${path}.tmp`, `${JSON.stringify(index, null, 1)}\n`)
  await rename(`${path}.tmp`, path)
}
