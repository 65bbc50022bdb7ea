/*
 * TapeError / MoverError / DataConnectionError -> the version's NdmpError. Both versions number
 * their errors alike (v3 stops at CONNECT_ERR = 23); the names come from the generated enums so
 * a mismatch shows at compile time rather than on the wire.
 */
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import { NdmpError, type NdmpVersion } from '../service-types.ts'
import { TapeError } from './tape-error.ts'
import { MoverError } from '../mover/mover-types.ts'

type Code = TapeError['code'] | MoverError['code']

export function ndmpErrorNumber(version: NdmpVersion, code: Code): number {
  if (version === 4) return v4.ndmp4_error[`NDMP4_${code}`]
  // v3 has no READ_IN_PROGRESS_ERR: the nearest is ILLEGAL_STATE.
  if (code === 'READ_IN_PROGRESS_ERR') return v3.ndmp3_error.NDMP3_ILLEGAL_STATE_ERR
  return v3.ndmp3_error[`NDMP3_${code}`]
}

/** Rethrows a known failure as the reply's NdmpError; anything else is a bug (the session logs it). */
export function asNdmpError(version: NdmpVersion, err: unknown): never {
  if (err instanceof TapeError || err instanceof MoverError) throw new NdmpError(ndmpErrorNumber(version, err.code), err.message)
  throw err
}
