/*
 * Changes whose durability a reply waits for outside the Vfs call
 * (server/replication/README.md, "The duplicate request cache across a
 * takeover"). A primary's NFS dispatch runs a non-idempotent call in
 * a scope (collectHeld); the replicating layer, inside it, appends the change
 * to the local log and then, instead of waiting for the log's flush and the
 * standbys, records the change here and returns. The reply is encoded at once
 * (before the sender has built the change's APPEND, which can then carry it:
 * REPL_APPEND_DRC) and its send held until the change is durable in the local
 * log, the standbys acknowledged it and hold the reply (drc-ship.ts): the
 * reply travels with the change's APPEND, or beside it (REPL_DRC_HELD),
 * instead of after its acknowledgement. A reply whose change the local log
 * failed to make durable is not sent (server/rpc/dispatch.ts). In async mode
 * the standbys acknowledge at once, and what holding gains is the overlap of
 * the log's write with the backend's own commit of the change (the NFS
 * procedure's commitMetadata, server/nfs3/durable.ts), which runs after the
 * Vfs call returns and before the reply is encoded.
 *
 * Outside a scope (idempotent calls: WRITE, COMMIT; other users of the Vfs)
 * nothing changes: the layer waits for the standbys itself, as a Vfs call
 * whose reply promises stability must (RFC 1813 §3.3.7, §3.3.21).
 *
 * AsyncLocalStorage, because the Vfs interface carries no per-call context
 * and a call's changes are made several awaits below the dispatch; the
 * server enables it on a replicating primary.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

export interface HeldChange {
  exportId: number
  seq: bigint
  /** Resolves once every live sync standby has acknowledged the change. */
  replicated: Promise<void>
  /** Resolves once the change is durable in the local log; rejects (EIO) when the log failed. */
  durableHere: Promise<void>
}

const scope = new AsyncLocalStorage<HeldChange[]>()

/** Runs `fn` in a scope of its own; resolves to its value and the changes whose replication it left to the caller. */
export async function collectHeld<T>(fn: () => Promise<T>): Promise<{ value: T; held: HeldChange[] }> {
  const held: HeldChange[] = []
  const value = await scope.run(held, fn)
  return { value, held }
}

/** The scope of the call running, if its caller takes over the wait for the standbys. */
export function heldScope(): HeldChange[] | undefined {
  return scope.getStore()
}
