/** Plain counters; a later issue exposes them (Prometheus). */
export interface RpcStats {
  /** Calls per `${prog}/${vers}/${proc}` that reached a registered procedure. */
  calls: Record<string, number>
  replies: {
    success: number
    progUnavail: number
    progMismatch: number
    procUnavail: number
    garbageArgs: number
    systemErr: number
    rpcMismatch: number
    authError: number
  }
  /** Records dropped without a reply (not a CALL, truncated header, duplicate in progress). */
  dropped: number
  bytesIn: number
  bytesOut: number
  connectionsAccepted: number
  connectionsOpen: number
  /** Connections closed for a framing error (record too large). */
  framingErrors: number
  udpDatagramsDropped: number
  /** TCP connections refused (over the total or per-address cap), accepted and closed at once. */
  connectionsRefused: number
  /** TCP connections closed after the idle timeout. */
  connectionsIdleClosed: number
  /** TCP connections closed because a record did not complete within its receive deadline (slowloris). */
  recordTimeouts: number
  /** UDP calls dropped unanswered because the server-wide in-flight cap was reached (the client retransmits). */
  udpOverloadDrops: number
  drcHits: number
  drcInProgressDrops: number
}

export function createStats(): RpcStats {
  return {
    calls: {},
    replies: { success: 0, progUnavail: 0, progMismatch: 0, procUnavail: 0, garbageArgs: 0, systemErr: 0, rpcMismatch: 0, authError: 0 },
    dropped: 0,
    bytesIn: 0,
    bytesOut: 0,
    connectionsAccepted: 0,
    connectionsOpen: 0,
    framingErrors: 0,
    udpDatagramsDropped: 0,
    connectionsRefused: 0,
    connectionsIdleClosed: 0,
    recordTimeouts: 0,
    udpOverloadDrops: 0,
    drcHits: 0,
    drcInProgressDrops: 0,
  }
}
