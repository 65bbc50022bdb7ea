/*
 * The MOVER of a session: made on first use, bound to the session's open tape (tapeOf) and its
 * LOCAL rendezvous, telling the DMA of pauses and halts with NOTIFY_MOVER_PAUSED / _HALTED
 * posts in the session's version; aborted when the session ends.
 */
import { postLog, postMoverHalted, postMoverPaused } from '../posts.ts'
import type { NdmpSession } from '../service-types.ts'
import { tapeOf } from '../tape/session-tape.ts'
import { Mover } from './mover.ts'
import type { HaltReason, PauseReason } from './mover-types.ts'

const KEY = Symbol('ndmp.mover')

function logError(session: NdmpSession, entry: string): void {
  postLog(session, 'error', entry).catch(() => undefined)
}

export function moverOf(session: NdmpSession): Mover {
  return session.state(KEY, () => {
    const events = {
      paused(reason: PauseReason, seekPosition: bigint, detail?: string): void {
        session.log.info({ reason, seekPosition: String(seekPosition), detail }, 'ndmp: mover paused')
        // A damaged tape: the DMA's log says which tape file and where (issue 16 §8).
        if (detail !== undefined) logError(session, `tape media error at stream byte ${String(seekPosition)}: ${detail}`)
        postMoverPaused(session, reason, seekPosition).catch(() => undefined)
      },
      halted(reason: HaltReason, message: string): void {
        session.log.info({ reason, message }, 'ndmp: mover halted')
        postMoverHalted(session, reason, message).catch(() => undefined)
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
