/*
 * A job waits on the agents' posts (NOTIFY_DATA_HALTED, NOTIFY_MOVER_HALTED and _PAUSED:
 * draft-skardal-ndmpv4-04 §3.10), but one may never reach it: a post that does not decode is
 * logged and dropped (posts.ts), a peer may lose one. Waiting for the post alone would wait for
 * ever. So after a quiet spell (the connection's call timeout) the job asks the states
 * (MOVER_GET_STATE §3.9.8, DATA_GET_STATE §3.8.1): a service halted, or a mover paused, with no
 * event taken for it is that event. An agent sends a post before it answers a later request, so
 * when the state comes every post sent before it has been taken: the state does not repeat one.
 */
import * as v4 from '../../xdr/generated/ndmp4.ts'
import type { NdmpAgent } from './agent.ts'
import type { JobEvent } from './posts.ts'

/** What the last look saw moving (null: no look yet). */
export interface LastLook {
  moved: bigint | null
  processed: bigint | null
}

/**
 * The events the states show that no post brought: `mover`'s halt or pause, `data`'s halt (pass
 * null for a service whose halt was taken). `progressed`: bytes moved or processed since `last`
 * (updated), or a state changed to an event.
 */
export async function eventsFromState(mover: NdmpAgent | null, data: NdmpAgent | null, last: LastLook): Promise<{ events: JobEvent[]; progressed: boolean }> {
  const events: JobEvent[] = []
  let progressed = false
  if (mover !== null) {
    const st = await mover.moverState()
    if (st.state === v4.ndmp4_mover_state.NDMP4_MOVER_STATE_HALTED) events.push({ kind: 'mover-halted', reason: st.halt_reason })
    else if (st.state === v4.ndmp4_mover_state.NDMP4_MOVER_STATE_PAUSED) events.push({ kind: 'mover-paused', reason: st.pause_reason, seek: st.seek_position })
    progressed ||= last.moved !== st.bytes_moved
    last.moved = st.bytes_moved
  }
  if (data !== null) {
    const st = await data.dataState()
    if (st.state === v4.ndmp4_data_state.NDMP4_DATA_STATE_HALTED) events.push({ kind: 'data-halted', reason: st.halt_reason })
    progressed ||= last.processed !== st.bytes_processed
    last.processed = st.bytes_processed
  }
  return { events, progressed: progressed || events.length > 0 }
}
