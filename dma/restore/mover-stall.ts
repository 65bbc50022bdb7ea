/*
 * A tape agent's mover that accepted a MOVER_READ (NDMP_NO_ERR) and then moves nothing and sends
 * no notice (draft-skardal-ndmpv4-04 §3.9.9 has it either send the bytes, pause or halt). The NDMP
 * SDK's mover (ndmjob -o daemon, Debian amanda-server) does so for any read shorter than one
 * record: ndma_tape.c, ndmta_write_quantum(), clips the read to bytes_left_to_read and returns
 * "mover blocked" while that is below record_size, for ever; and ndma_comm_dispatch.c refuses a
 * next MOVER_READ while bytes_left_to_read > 0. Our data service asked for a member's 512-byte
 * header first, so a direct access restore through that mover never started (bench/README.md);
 * it now asks a mover over TCP whole records (server/ndmp/data/range-input.ts), but another
 * data service may not, and another mover may stall otherwise.
 * The restore executor asks the mover's state when a read has waited STALL_MS with no event;
 * nothing moved since the read (or since the last look) is a stall, and the executor then
 * restores the step from the stream's start, which that mover serves (one read of the whole).
 */
import * as v4 from '../../xdr/generated/ndmp4.ts'

/** How long an outstanding MOVER_READ may go without an event before the mover's state is asked. */
export const STALL_MS = 5000

/** A MOVER_READ the mover accepted, and what its state said at the last look. */
export interface OutstandingRead {
  offset: bigint
  length: bigint
  left: bigint | null
  moved: bigint | null
}

/** The mover stalled on a read; `message` says which and why (it goes to the restore's log). */
export class MoverStall extends Error {
  readonly read: OutstandingRead
  constructor(read: OutstandingRead, message: string) {
    super(message)
    this.read = read
    this.name = 'MoverStall'
  }
}

/**
 * null while the read makes progress (or is done, or the mover left ACTIVE: its notice decides);
 * otherwise the stall, in words. Keeps this look's counts in `read` for the next one.
 */
export function stallReason(read: OutstandingRead, st: v4.ndmp4_mover_get_state_reply, waitedMs: number): string | null {
  if (st.state !== v4.ndmp4_mover_state.NDMP4_MOVER_STATE_ACTIVE || st.bytes_left_to_read === 0n) return null
  const untouched = st.bytes_left_to_read === read.length
  const still = read.left === st.bytes_left_to_read && read.moved === st.bytes_moved
  read.left = st.bytes_left_to_read
  read.moved = st.bytes_moved
  if (!untouched && !still) return null
  const short = st.bytes_left_to_read < BigInt(st.record_size)
    ? ' (less than one record: the NDMP SDK\'s mover, ndmjob\'s, serves whole records only, ndma_tape.c ndmta_write_quantum)'
    : ''
  return `mover stalled on MOVER_READ(offset ${read.offset}, length ${read.length}): bytes_left_to_read ${st.bytes_left_to_read} of record size ${st.record_size}, ${st.bytes_moved} bytes moved, no data and no notice for ${waitedMs / 1000} s${short}`
}
