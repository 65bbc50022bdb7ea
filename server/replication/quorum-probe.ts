/*
 * The answers decideTakeover (quorum.ts) needs, gathered over the REPL
 * program (xdr/spec/replication.x) with one short TCP connection per peer,
 * all at once, each bounded by the timeout:
 *
 *   - this node's own view of the primary: REPL_HEARTBEAT to it; a primary
 *     that answers as primary, or refuses us with REPL_STALE_EPOCH (it is
 *     ahead), is alive;
 *   - each witness's view: REPL_STATUS; it sees the primary when it is itself
 *     a primary, or lists the primary's node as alive or heard from within the
 *     timeout; its epoch is the status's;
 *   - each standby ranked before this one: REPL_STATUS; alive when it answers
 *     as a standby.
 *
 * A peer that does not connect, does not answer in time, or answers anything
 * but REPL_OK has not answered: no vote, no veto.
 */
import { StreamCaller } from '../callback/stream.ts'
import type { ProcRef } from '../callback/message.ts'
import { REPL_MAXID, TSNFS_REPL_PROG, repl_heartbeat_args, repl_heartbeat_res, repl_role, repl_stat, repl_status_res } from '../../xdr/generated/replication.ts'
import type { repl_status_ok } from '../../xdr/generated/replication.ts'
import { xdr_void } from '../../xdr/runtime/codec.ts'
import { decideTakeover } from './quorum.ts'
import type { TakeoverDecision, TakeoverInput, WitnessAnswer } from './quorum.ts'

export interface PeerAddress {
  name: string
  host: string
  port: number
}

export interface QuorumProbeOptions {
  self: string
  selfEpoch: bigint
  primary: PeerAddress
  /** The configured witness set; this node's entry, if any, is not called. */
  witnesses: readonly PeerAddress[]
  /** Standbys ranked before this one (earlier in the configured standby list). */
  rankedBefore?: readonly PeerAddress[]
  /** Per peer, connection and call together (the heartbeat timeout, 5 s by default). */
  timeoutMs: number
  signal?: AbortSignal
}

export class QuorumError extends Error {
  readonly code: 'QUORUM_BAD_WITNESS'
  constructor(code: QuorumError['code'], message: string) {
    super(message)
    this.name = 'QuorumError'
    this.code = code
  }
}

/**
 * `--witness NAME=HOST:PORT` (IPv6 as `NAME=[ADDR]:PORT`): the name is the node name the witness
 * reports, so a standby can tell itself apart in the set. Throws QuorumError('QUORUM_BAD_WITNESS').
 */
export function parseWitness(text: string): PeerAddress {
  const m = /^([^=\s]{1,64})=(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text)
  const port = Number(m?.[4])
  const host = m?.[2] ?? m?.[3]
  // REPL_MAXID: node names are opaque<64> on the wire.
  if (m === null || host === undefined || port < 1 || port > 65535 || Buffer.byteLength(m[1] ?? '') > REPL_MAXID) {
    throw new QuorumError('QUORUM_BAD_WITNESS', `--witness ${text}: want NAME=HOST:PORT (NAME=[IPv6]:PORT), a name of 1 to 64 bytes`)
  }
  return { name: m[1] ?? '', host, port }
}

// A status lists at most REPL_MAXEXPORTS positions and REPL_MAXPEERS peers: well under this.
const MAX_REPLY_BYTES = 256 * 1024
const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs
const proc = (p: number): ProcRef => ({ prog: TSNFS_REPL_PROG.prog, vers: TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.vers, proc: p })

/** One call on a connection of its own, within timeoutMs in all; null when the peer did not answer. */
async function callOnce<R>(at: PeerAddress, timeoutMs: number, signal: AbortSignal | undefined, call: (c: StreamCaller, left: number) => Promise<R>): Promise<R | null> {
  const start = performance.now()
  let caller: StreamCaller | null = null
  try {
    caller = await StreamCaller.open({ host: at.host, port: at.port }, { timeoutMs, maxReplyBytes: MAX_REPLY_BYTES, ...(signal === undefined ? {} : { signal }) })
    return await call(caller, Math.max(1, timeoutMs - (performance.now() - start)))
  } catch {
    return null
  } finally {
    caller?.close()
  }
}

export async function status(at: PeerAddress, timeoutMs: number, signal?: AbortSignal): Promise<repl_status_ok | null> {
  const res = await callOnce(at, timeoutMs, signal, (c, left) => c.call(proc(V1.REPL_STATUS.proc), xdr_void, undefined, repl_status_res, { timeoutMs: left }))
  return res !== null && res.status === repl_stat.REPL_OK ? res.ok : null
}

/**
 * One heartbeat to the primary: its role and epoch, or null when it did not answer. A primary
 * that refuses us with REPL_STALE_EPOCH is ahead of us, and alive: reported as primary.
 */
export async function heartbeatPrimary(o: Pick<QuorumProbeOptions, 'self' | 'selfEpoch' | 'primary' | 'timeoutMs' | 'signal'>): Promise<{ role: repl_role; epoch: bigint } | null> {
  const args = { epoch: o.selfEpoch, node: Buffer.from(o.self) }
  const res = await callOnce(o.primary, o.timeoutMs, o.signal, (c, left) => c.call(proc(V1.REPL_HEARTBEAT.proc), repl_heartbeat_args, args, repl_heartbeat_res, { timeoutMs: left }))
  if (res === null) return null
  if (res.status === repl_stat.REPL_STALE_EPOCH) return { role: repl_role.REPL_PRIMARY, epoch: res.epoch }
  return res.status === repl_stat.REPL_OK ? { role: res.ok.role, epoch: res.ok.epoch } : null
}

/** This node's heartbeat to the primary: true when it answers as a primary, or is ahead of us. */
export async function primaryAnswers(o: Pick<QuorumProbeOptions, 'self' | 'selfEpoch' | 'primary' | 'timeoutMs' | 'signal'>): Promise<boolean> {
  return (await heartbeatPrimary(o))?.role === repl_role.REPL_PRIMARY
}

/** What a witness's status says of the primary (named by its node name). */
export function witnessAnswer(witness: string, s: repl_status_ok, primaryNode: string, timeoutMs: number): WitnessAnswer {
  const node = Buffer.from(primaryNode)
  const limit = BigInt(timeoutMs)
  const seen = s.peers.some((p) => p.node.equals(node) && (p.alive || (p.last_heartbeat_ms > 0n && p.last_heartbeat_ms < limit)))
  return { witness, seesPrimary: s.role === repl_role.REPL_PRIMARY || seen, epoch: s.epoch }
}

export interface QuorumProbe {
  input: TakeoverInput
  decision: TakeoverDecision
}

export async function probeQuorum(o: QuorumProbeOptions): Promise<QuorumProbe> {
  const others = o.witnesses.filter((w) => w.name !== o.self)
  const [selfSeesPrimary, statuses, ranked] = await Promise.all([
    primaryAnswers(o),
    Promise.all(others.map((w) => status(w, o.timeoutMs, o.signal))),
    Promise.all((o.rankedBefore ?? []).map((s) => status(s, o.timeoutMs, o.signal))),
  ])
  const answers: WitnessAnswer[] = []
  statuses.forEach((s, i) => {
    const w = others[i]
    if (s !== null && w !== undefined) answers.push(witnessAnswer(w.name, s, o.primary.name, o.timeoutMs))
  })
  const outrankedBy = (o.rankedBefore ?? []).filter((_, i) => ranked[i]?.role === repl_role.REPL_STANDBY).map((s) => s.name)
  const input: TakeoverInput = { witnesses: o.witnesses.map((w) => w.name), self: o.self, selfEpoch: o.selfEpoch, selfSeesPrimary, answers, outrankedBy }
  return { input, decision: decideTakeover(input) }
}
