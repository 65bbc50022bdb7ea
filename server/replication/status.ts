/*
 * A node's view of replication, for REPL_STATUS, `tsnfs replication status`
 * and the metrics: its own role and epoch, each export's durable position,
 * and each peer it knows (the standbys a primary ships to, the primary a
 * standby is attached to). Plain values here; the wire form is repl_status_ok.
 */
import type { repl_failures_ok, repl_peer, repl_role, repl_status_ok } from '../../xdr/generated/replication.ts'
import { REPL_MAXID, REPL_MAXPATH, repl_role as ROLE } from '../../xdr/generated/replication.ts'
import type { NodeRole } from './node-state.ts'

/** A role as status shows it: a data node's, or a witness's (tsnfs witness, which holds no data). */
export type StatusRole = NodeRole | 'witness'

export interface ExportPosition {
  exportId: number
  /** The last change this node has made durable (a standby) or logged (a primary). */
  applied: bigint
  needResync: boolean
}

export interface PeerStatus {
  node: string
  /** host:port */
  address: string
  role: StatusRole
  alive: boolean
  /** Milliseconds since the peer last answered; null if it never has. */
  lastHeartbeatAgeMs: number | null
  /** The lowest position the peer has acknowledged over its exports. */
  acked: bigint
  /** Changes logged and not yet acknowledged, over its exports. */
  lagOps: bigint
  /** Bytes of those changes the sender has read and not had acknowledged (a lower bound when more than a batch behind). */
  lagBytes: bigint
  /** "streaming", "catching-up", "connecting", "dead", "failed: NOSPC", "needs resync", "fenced", ... */
  state: string
  /** Times the sender declared this standby dead (not on the wire: for the metrics). */
  deaths?: number
  /** Full resyncs (not on the wire: for the metrics; the state text shows a running one). */
  resync?: ResyncProgressStatus
}

export interface ResyncProgressStatus {
  /** Resyncs started. */
  count: number
  running: boolean
  /** A standby the log cannot bring in step, waiting for its resync. */
  needed: boolean
  /** Of the running or last resync. */
  dirs: number
  files: number
  bytes: number
}

/** An export this node stopped taking changes for (a standby whose backend is full), and why. */
export interface ExportFailure {
  exportId: number
  /** "failed: NOSPC", as the primary's status shows this standby. */
  state: string
  /** The backend's error code: "ENOSPC", "EDQUOT". */
  code: string
  /** The export as this node names it. */
  path: string
  /** When it failed, Unix time in ms. */
  sinceMs: number
}

export interface NodeStatus {
  node: string
  role: StatusRole
  epoch: bigint
  positions: ExportPosition[]
  peers: PeerStatus[]
  /** The node's own failed exports; absent when none (a primary's failures show as its peers' states). */
  failures?: ExportFailure[]
}

const ROLE_TO_WIRE: Readonly<Record<StatusRole, repl_role>> = { primary: ROLE.REPL_PRIMARY, standby: ROLE.REPL_STANDBY, fenced: ROLE.REPL_FENCED, witness: ROLE.REPL_WITNESS }
const ROLE_FROM_WIRE: Readonly<Record<repl_role, StatusRole>> = { 1: 'primary', 2: 'standby', 3: 'fenced', 4: 'witness' }

export function roleToWire(r: StatusRole): repl_role {
  return ROLE_TO_WIRE[r]
}

export function roleFromWire(r: repl_role): StatusRole {
  return ROLE_FROM_WIRE[r]
}

/** Text fields are opaque<REPL_MAXID> on the wire: longer text is cut (at a byte boundary, as status text only). */
function text(s: string): Buffer {
  const b = Buffer.from(s)
  return b.length <= REPL_MAXID ? b : b.subarray(0, REPL_MAXID)
}

function peerToWire(p: PeerStatus): repl_peer {
  return {
    node: text(p.node),
    address: text(p.address),
    role: roleToWire(p.role),
    alive: p.alive,
    // 0 means never on the wire; a peer heard this very millisecond says 1.
    last_heartbeat_ms: p.lastHeartbeatAgeMs === null ? 0n : BigInt(Math.max(1, Math.round(p.lastHeartbeatAgeMs))),
    acked: p.acked,
    lag_ops: p.lagOps,
    lag_bytes: p.lagBytes,
    state: text(p.state),
  }
}

export function statusToWire(s: NodeStatus): repl_status_ok {
  return {
    node: text(s.node),
    role: roleToWire(s.role),
    epoch: s.epoch,
    positions: s.positions.map((p) => ({ export_id: p.exportId, applied: p.applied, need_resync: p.needResync })),
    peers: s.peers.map(peerToWire),
  }
}

/** A node's own failed exports for REPL_FAILURES (a procedure apart from STATUS: replication.x says why). */
export function failuresToWire(failures: readonly ExportFailure[] | undefined): repl_failures_ok {
  return {
    failures: (failures ?? []).map((f) => ({ export_id: f.exportId, state: text(f.state), code: text(f.code), path: pathBytes(f.path), since_ms: BigInt(Math.max(0, Math.round(f.sinceMs))) })),
  }
}

export function failuresFromWire(ok: repl_failures_ok): ExportFailure[] {
  return ok.failures.map((f) => ({ exportId: f.export_id, state: f.state.toString('utf8'), code: f.code.toString('utf8'), path: f.path.toString('utf8'), sinceMs: Number(f.since_ms) }))
}

/** A path is repl_path on the wire (REPL_MAXPATH bytes): longer is cut, as status text only. */
function pathBytes(s: string): Buffer {
  const b = Buffer.from(s)
  return b.length <= REPL_MAXPATH ? b : b.subarray(0, REPL_MAXPATH)
}

export function statusFromWire(ok: repl_status_ok): NodeStatus {
  return {
    node: ok.node.toString('utf8'),
    role: roleFromWire(ok.role),
    epoch: ok.epoch,
    positions: ok.positions.map((p) => ({ exportId: p.export_id, applied: p.applied, needResync: p.need_resync })),
    peers: ok.peers.map((p) => ({
      node: p.node.toString('utf8'),
      address: p.address.toString('utf8'),
      role: roleFromWire(p.role),
      alive: p.alive,
      lastHeartbeatAgeMs: p.last_heartbeat_ms === 0n ? null : Number(p.last_heartbeat_ms),
      acked: p.acked,
      lagOps: p.lag_ops,
      lagBytes: p.lag_bytes,
      state: p.state.toString('utf8'),
    })),
  }
}

/** JSON-ready (bigints as decimal strings, which JSON numbers cannot hold past 2^53). */
export function statusToJson(s: NodeStatus): object {
  return {
    node: s.node,
    role: s.role,
    epoch: s.epoch.toString(),
    positions: s.positions.map((p) => ({ exportId: p.exportId, applied: p.applied.toString(), needResync: p.needResync })),
    peers: s.peers.map((p) => ({
      node: p.node,
      address: p.address,
      role: p.role,
      alive: p.alive,
      lastHeartbeatAgeMs: p.lastHeartbeatAgeMs,
      acked: p.acked.toString(),
      lagOps: p.lagOps.toString(),
      lagBytes: p.lagBytes.toString(),
      state: p.state,
    })),
    ...(s.failures === undefined || s.failures.length === 0
      ? {}
      : { failures: s.failures.map((f) => ({ exportId: f.exportId, state: f.state, code: f.code, path: f.path, since: new Date(f.sinceMs).toISOString() })) }),
  }
}
