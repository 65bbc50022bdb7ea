/*
 * The MOVER of a session: made on first use, bound to the session's open tape (tapeOf) and its
 * LOCAL rendezvous, telling the DMA of pauses and halts with NOTIFY_MOVER_PAUSED / _HALTED
 * posts in the session's version; aborted when the session ends.
 */
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import type { NdmpSession } from '../service-types.ts'
import { tapeOf } from '../tape/session-tape.ts'
import { Mover } from './mover.ts'
import type { HaltReason, PauseReason } from './mover-types.ts'

const KEY = Symbol('ndmp.mover')

function logError(session: NdmpSession, entry: string): void {
  const id = Math.floor(Date.now() / 1000) >>> 0
  const sent =
    session.version === 4
      ? session.post(v4.ndmp4_message.NDMP4_LOG_MESSAGE, v4.ndmp4_log_message_post, { log_type: 2, message_id: id, entry, associated_message_valid: 0, associated_message_sequence: 0 })
      : session.post(v3.ndmp3_message.NDMP3_LOG_MESSAGE, v3.ndmp3_log_message_request, { log_type: 2, message_id: id, entry })
  sent.catch(() => undefined)
}

export function moverOf(session: NdmpSession): Mover {
  return session.state(KEY, () => {
    const events = {
      paused(reason: PauseReason, seekPosition: bigint, detail?: string): void {
        session.log.info({ reason, seekPosition: String(seekPosition), detail }, 'ndmp: mover paused')
        // A damaged tape: the DMA's log says which tape file and where (issue 16 §8).
        if (detail !== undefined) logError(session, `tape media error at stream byte ${String(seekPosition)}: ${detail}`)
        const sent =
          session.version === 4
            ? session.post(v4.ndmp4_message.NDMP4_NOTIFY_MOVER_PAUSED, v4.ndmp4_notify_mover_paused_post, { reason, seek_position: seekPosition })
            : session.post(v3.ndmp3_message.NDMP3_NOTIFY_MOVER_PAUSED, v3.ndmp3_notify_mover_paused_request, { reason, seek_position: seekPosition })
        sent.catch(() => undefined)
      },
      halted(reason: HaltReason, message: string): void {
        session.log.info({ reason, message }, 'ndmp: mover halted')
        const sent =
          session.version === 4
            ? session.post(v4.ndmp4_message.NDMP4_NOTIFY_MOVER_HALTED, v4.ndmp4_notify_mover_halted_post, { reason })
            : session.post(v3.ndmp3_message.NDMP3_NOTIFY_MOVER_HALTED, v3.ndmp3_notify_mover_halted_request, { reason, text_reason: message })
        sent.catch(() => undefined)
      },
    }
    const mover = new Mover(() => {
      const d = tapeOf(session).drive
      return d === null ? null : { drive: d, owner: session }
    }, events)
    session.onClose(() => {
      mover.shutdown()
    })
    return mover
  })
}

/** The mover holds the tape (LISTEN or ACTIVE): TAPE_* calls that move it are refused. */
export function moverBusy(session: NdmpSession): boolean {
  return moverOf(session).busy
}
