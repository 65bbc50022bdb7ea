/*
 * async mode's wait before a partial batch (sender.ts): no reply waits for the standby, so a
 * short wait costs only lag, and each APPEND it saves costs both nodes a round of RPC work and
 * the standby a flush (its id map's fdatasync, the times it sets). On cores that a primary, its
 * standby and the clients share, fewer, larger batches are CPU the clients get.
 */
import type { ExportRun } from './sender-options.ts'
import { sleep } from './sleep.ts'

/** How long a partial batch waits for more changes, ms (SenderOptions.asyncGatherMs). */
export const ASYNC_GATHER_MS = 5

/**
 * Waits before the batch from `next` when it should gather: an async export, nothing in flight,
 * less than a full batch logged. Never more than half the lag bound asked for (--lag). False
 * when the session ended or the export stopped meanwhile.
 */
export async function gather(r: ExportRun, o: { inFlight: number; next: bigint; gatherMs: number; batchChanges: bigint; signal: AbortSignal }): Promise<boolean> {
  const ms = Math.min(o.gatherMs, (r.ex.lagBoundMs ?? Infinity) / 2)
  if (o.inFlight > 0 || r.ex.mode !== 'async' || ms <= 0 || r.ex.source.lastSeq() - o.next >= o.batchChanges - 1n) return true
  await sleep(ms, o.signal)
  return !o.signal.aborted && r.stopped === null
}
