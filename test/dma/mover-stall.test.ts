/*
 * The restore executor's stall check (dma/restore/mover-stall.ts) on the mover states it sees:
 * the one ndmjob's mover reports after our 512-byte MOVER_READ (ACTIVE, nothing moved, the whole
 * read left) is a stall at the first look; a read that moves is not; one that moved and then
 * stopped is, at the second look that sees the same counts; a mover that left ACTIVE or has
 * nothing left to read is not (its notice, or the data side's next request, decides).
 * End to end, ndmjob -o daemon as the tape agent no longer stalls (our data service asks it whole
 * records): test/dma/restore-tapes.test.ts asserts no stall line.
 */
import t from 'tap'
import { stallReason } from '../../dma/restore/mover-stall.ts'
import type { OutstandingRead } from '../../dma/restore/mover-stall.ts'
import * as v4 from '../../xdr/generated/ndmp4.ts'

const ACTIVE = v4.ndmp4_mover_state.NDMP4_MOVER_STATE_ACTIVE

function state(over: Partial<v4.ndmp4_mover_get_state_reply>): v4.ndmp4_mover_get_state_reply {
  return {
    error: v4.ndmp4_error.NDMP4_NO_ERR,
    mode: v4.ndmp4_mover_mode.NDMP4_MOVER_MODE_WRITE,
    state: ACTIVE,
    pause_reason: v4.ndmp4_mover_pause_reason.NDMP4_MOVER_PAUSE_NA,
    halt_reason: v4.ndmp4_mover_halt_reason.NDMP4_MOVER_HALT_NA,
    record_size: 10240,
    record_num: 0,
    bytes_moved: 0n,
    seek_position: 306_688n,
    bytes_left_to_read: 512n,
    window_offset: 0n,
    window_length: 0xffffffffffffffffn,
    data_connection_addr: { addr_type: v4.ndmp4_addr_type.NDMP4_ADDR_LOCAL },
    ...over,
  }
}

const read = (length: bigint): OutstandingRead => ({ offset: 306_688n, length, left: null, moved: null })

t.test('ndmjob\'s state after a 512-byte read: a stall that names the record size', async (t) => {
  const why = stallReason(read(512n), state({}), 5000)
  t.equal(why, 'mover stalled on MOVER_READ(offset 306688, length 512): bytes_left_to_read 512 of record size 10240, 0 bytes moved, no data and no notice for 5 s (less than one record: the NDMP SDK\'s mover, ndmjob\'s, serves whole records only, ndma_tape.c ndmta_write_quantum)')
})

t.test('progress, then stopped: a stall at the look that sees the same counts', async (t) => {
  const r = read(30_000n)
  t.equal(stallReason(r, state({ bytes_left_to_read: 19_760n, bytes_moved: 10_240n }), 5000), null, 'moving')
  t.equal(stallReason(r, state({ bytes_left_to_read: 9520n, bytes_moved: 20_480n }), 5000), null, 'still moving')
  const why = stallReason(r, state({ bytes_left_to_read: 9520n, bytes_moved: 20_480n }), 5000)
  t.match(why, /^mover stalled on MOVER_READ\(offset 306688, length 30000\): bytes_left_to_read 9520 of record size 10240, 20480 bytes moved/)
  t.match(why, /less than one record/)
  const big = read(40_960n)
  stallReason(big, state({ bytes_left_to_read: 20_480n, bytes_moved: 20_480n }), 5000)
  t.notMatch(stallReason(big, state({ bytes_left_to_read: 20_480n, bytes_moved: 20_480n }), 5000), /less than one record/, 'a stall of whole records says no more than what it saw')
})

t.test('not a stall: the read is served, or the mover left ACTIVE', async (t) => {
  t.equal(stallReason(read(512n), state({ bytes_left_to_read: 0n, bytes_moved: 512n }), 5000), null, 'served')
  t.equal(stallReason(read(512n), state({ state: v4.ndmp4_mover_state.NDMP4_MOVER_STATE_PAUSED }), 5000), null, 'paused: its notice decides')
  t.equal(stallReason(read(512n), state({ state: v4.ndmp4_mover_state.NDMP4_MOVER_STATE_HALTED }), 5000), null, 'halted')
})
