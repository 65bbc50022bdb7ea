/*
 * The replication program (xdr/spec/replication.x, 0x2e5f0001 v1) over a
 * StandbyService, and the RPC limits a node serving it needs: an APPEND is
 * one record of up to MAX_APPEND_RECORD bytes, refused by framing before
 * anything is allocated when larger; the array counts inside are capped by
 * the generated decoder (GARBAGE_ARGS past REPL_MAXBATCH changes, REPL_MAXENTRIES
 * resync entries, REPL_MAXSUMS checksums). A RESYNC_DIR or RESYNC_DATA is one
 * record under the same cap: the primary cuts directory listings into parts
 * of at most MAX_APPEND_BYTES (resync.ts).
 */
import { TSNFS_REPL_PROG } from '../../xdr/generated/replication.ts'
import { defineProgram } from '../rpc/program.ts'
import type { CallContext, RpcProgram } from '../rpc/program.ts'
import type { RpcLimits } from '../rpc/server.ts'
import type { CallOrigin, StandbyService } from './standby-service.ts'

/** The sender never builds a larger APPEND (batch) than this, data included. */
export const MAX_APPEND_BYTES = 4 * 1024 * 1024
/** Room for the RPC header and the batch's own fields on top of the changes. */
export const MAX_APPEND_RECORD = MAX_APPEND_BYTES + 64 * 1024

/**
 * For the RpcServer serving this program: records up to one APPEND, and few
 * of them in flight per connection, so a primary's pipeline of APPENDs holds
 * at most 16 × 4 MiB here.
 */
export const STANDBY_RPC_LIMITS: Partial<RpcLimits> = {
  maxRecordSize: MAX_APPEND_RECORD,
  maxInFlightPerConnection: 16,
  maxConnections: 64,
  maxConnectionsPerClient: 16,
  // A primary with nothing to ship still heartbeats every second; a minute of silence is a dead peer.
  idleTimeoutMs: 60_000,
}

function origin(call: CallContext): CallOrigin {
  return { conn: call.signal, address: `${call.peer.address}:${String(call.peer.port)}` }
}

export function createReplicationProgram(service: StandbyService): RpcProgram {
  return defineProgram(
    TSNFS_REPL_PROG,
    'TSNFS_REPL_V1',
    {
      REPL_NULL: () => undefined,
      REPL_HELLO: (a, call) => service.hello(a, origin(call)),
      REPL_HEARTBEAT: (a) => service.heartbeat(a),
      REPL_APPEND: (a, call) => service.append(a, origin(call)),
      REPL_STATUS: () => service.status(),
      REPL_TAKEOVER: (a) => service.takeover(a),
      REPL_RESYNC_BEGIN: (a, call) => service.resyncBegin(a, origin(call)),
      REPL_RESYNC_DIR: (a, call) => service.resyncDir(a, origin(call)),
      REPL_RESYNC_SUMS: (a, call) => service.resyncSums(a, origin(call)),
      REPL_RESYNC_DATA: (a, call) => service.resyncData(a, origin(call)),
      REPL_RESYNC_END: (a, call) => service.resyncEnd(a, origin(call)),
      REPL_DRC: (a) => service.intake.drc(a),
      REPL_FAILURES: () => service.failures(),
      REPL_DRC_HELD: (a) => service.intake.drcHeld(a),
      REPL_APPEND_DRC: (a, call) => service.appendDrc(a, origin(call)),
    },
    // A retransmitted TAKEOVER must not raise the epoch twice (RFC 1813 §4.5's reason for a reply cache).
    { nonIdempotent: ['REPL_TAKEOVER'] },
  )
}
