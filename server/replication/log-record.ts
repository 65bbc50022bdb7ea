/*
 * What a change log record holds (README.md, "Change log format"), read from its frame: the
 * change's repl_change XDR, the change decoded, the id map edits. Damage is REPL_LOG_CORRUPT
 * naming the log and the change.
 */
import type { Change, MapEdit } from '../../vfs/replica/change.ts'
import { changeFromBytes } from './change-codec.ts'
import { changeOffset, decodeEdits } from './log-edits.ts'
import { RECORD_HEADER_BYTES } from './log-format.ts'
import { ReplicationError } from './log-types.ts'

function damaged(dir: string, seq: bigint, why: string): ReplicationError {
  return new ReplicationError('REPL_LOG_CORRUPT', `change log ${dir}: change ${String(seq)} does not decode: ${why}`)
}

/** The record's change, exactly repl_change's XDR (a view into the frame). */
export function recordXdr(dir: string, seq: bigint, frame: Buffer): Buffer {
  const body = frame.subarray(RECORD_HEADER_BYTES)
  const at = changeOffset(body)
  if (at === null) throw damaged(dir, seq, 'damaged map edits')
  return body.subarray(at)
}

/** The record's change, decoded (its buffers are views into the frame). */
export function recordChange(dir: string, seq: bigint, frame: Buffer): Change {
  const xdr = recordXdr(dir, seq, frame)
  try {
    return changeFromBytes(xdr)
  } catch (err) {
    throw damaged(dir, seq, (err as Error).message)
  }
}

export function recordEdits(dir: string, seq: bigint, frame: Buffer): MapEdit[] {
  const edits = decodeEdits(frame.subarray(RECORD_HEADER_BYTES))
  if (edits === null) throw damaged(dir, seq, 'damaged map edits')
  return edits
}
