/*
 * One RPC record in, one reply out (RFC 5531 §9; specs/README.md §3):
 * header -> auth -> program/version/procedure -> duplicate cache -> decode
 * args -> handler -> encode result. Transport-independent: TCP and UDP call it.
 */
import { XdrDecodeError } from '../../xdr/runtime/errors.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { accept_stat, auth_stat, reject_stat } from '../../xdr/rpc/constants.ts'
import type { AcceptStat } from '../../xdr/rpc/constants.ts'
import { RpcMessageError, decodeCallHeader } from '../../xdr/rpc/message.ts'
import type { CallHeader } from '../../xdr/rpc/message.ts'
import { RPC_MISMATCH_V2, encodeAcceptedReply, encodeDeniedReply } from '../../xdr/rpc/reply.ts'
import { collectHeld } from '../../vfs/replica/held-changes.ts'
import type { HeldChange } from '../../vfs/replica/held-changes.ts'
import type { Logger } from '../logger.ts'
import { authenticate } from './auth.ts'
import type { Credentials } from './auth.ts'
import { DuplicateRequestCache } from './drc.ts'
import { RpcAuthError, RpcSystemError } from './errors.ts'
import type { CallContext, Peer, RegisteredProc, RpcProgram, Transport } from './program.ts'
import type { RpcStats } from './stats.ts'

/** RFC 768 over IPv4: 65,535 - 8 (UDP header) - 20 (IP header). */
export const MAX_UDP_REPLY = 65_507

export interface DispatchEnv {
  programs: ReadonlyMap<number, RpcProgram>
  drc: DuplicateRequestCache
  stats: RpcStats
}

export interface CallOrigin {
  peer: Peer
  transport: Transport
  signal: AbortSignal
  log: Logger
}

type Reply = Buffer[] | null

/**
 * A reply writer starts as large as the procedure's last reply (scratch
 * bytes only; READ data goes by reference): a 32 KiB READDIRPLUS reply then
 * costs one allocation instead of six doublings and their copies, and a
 * procedure whose replies shrink again stops asking for the large size.
 */
const replySizeHint = new WeakMap<RegisteredProc, number>()
const MIN_REPLY_SCRATCH = 512
const MAX_REPLY_SCRATCH = 256 * 1024

/** Returns the reply record's chunks, or null when nothing must be sent. */
export async function dispatch(env: DispatchEnv, record: Buffer, origin: CallOrigin): Promise<Reply> {
  const r = new XdrReader(record)
  let h: CallHeader
  try {
    h = decodeCallHeader(r)
  } catch (err) {
    return headerFailure(env, err, origin.log)
  }
  let cred: Credentials
  try {
    cred = authenticate(h.cred, h.verf)
  } catch (err) {
    return denied(env, h.xid, (err as RpcAuthError).stat)
  }
  const program = env.programs.get(h.prog)
  if (program === undefined) return accepted(env, h.xid, accept_stat.PROG_UNAVAIL)
  const version = program.versions.get(h.vers)
  if (version === undefined) return accepted(env, h.xid, accept_stat.PROG_MISMATCH, { low: program.low, high: program.high })
  const proc = version.procs.get(h.proc)
  if (proc === undefined) return accepted(env, h.xid, accept_stat.PROC_UNAVAIL)

  env.stats.calls[proc.statsKey] = (env.stats.calls[proc.statsKey] ?? 0) + 1
  if (!proc.nonIdempotent) return call(env, h, cred, proc, r, origin)

  const drcKey = DuplicateRequestCache.key(origin.peer.address, h.xid, h.prog, h.vers, h.proc, record.subarray(r.pos))
  const seen = env.drc.begin(drcKey)
  if (seen.state === 'in-progress') {
    env.stats.drcInProgressDrops++
    env.stats.dropped++
    return null
  }
  if (seen.state === 'done') {
    env.stats.drcHits++
    return [seen.reply]
  }
  let reply: Reply
  let changes: HeldChange[] | undefined
  if (env.drc.collectsHeld) ({ value: reply, held: changes } = await collectHeld(() => call(env, h, cred, proc, r, origin)))
  else reply = await call(env, h, cred, proc, r, origin)
  if (reply === null) {
    // Not sent, so nothing it would promise needs waiting for.
    env.drc.abandon(drcKey)
    return null
  }
  // Replication holds the reply until the changes the call made are durable in the local log and, in
  // sync mode, until the standbys have them and this cache entry (server/replication/drc-ship.ts):
  // the entry goes to them alongside the changes, not after.
  const held = env.drc.complete(drcKey, reply, changes)
  if (held !== undefined) {
    try {
      await held
    } catch (err) {
      // The local change log failed to make the call's change durable (vfs/replica/held-changes.ts):
      // what the reply promises does not hold, so it is not sent; a retransmission runs the call again.
      origin.log.error({ err, xid: h.xid, proc: proc.name }, 'reply not sent: its change did not become durable')
      env.drc.abandon(drcKey)
      return null
    }
  }
  return reply
}

async function call(env: DispatchEnv, h: CallHeader, cred: Credentials, proc: RegisteredProc, r: XdrReader, origin: CallOrigin): Promise<Reply> {
  let args: unknown = undefined
  // P1: NULL (procedure 0) takes no arguments; trailing bytes are not an error.
  if (h.proc !== 0) {
    try {
      args = proc.args.decode(r)
      r.done()
    } catch (err) {
      if (err instanceof XdrDecodeError) return accepted(env, h.xid, accept_stat.GARBAGE_ARGS)
      origin.log.error({ err, xid: h.xid, prog: h.prog, vers: h.vers, proc: proc.name }, 'argument decoder failed')
      return accepted(env, h.xid, accept_stat.SYSTEM_ERR)
    }
  }
  const ctx: CallContext = {
    xid: h.xid,
    prog: h.prog,
    vers: h.vers,
    proc: h.proc,
    cred,
    peer: origin.peer,
    transport: origin.transport,
    log: origin.log,
    signal: origin.signal,
  }
  let result: unknown
  try {
    result = await proc.handler(args, ctx)
  } catch (err) {
    if (err instanceof RpcAuthError) return denied(env, h.xid, err.stat)
    if (!(err instanceof RpcSystemError)) {
      origin.log.error({ err, xid: h.xid, prog: h.prog, vers: h.vers, proc: proc.name }, 'handler threw')
    }
    return accepted(env, h.xid, accept_stat.SYSTEM_ERR)
  }
  let chunks: Buffer[]
  try {
    const hint = replySizeHint.get(proc) ?? MIN_REPLY_SCRATCH
    const w = new XdrWriter(hint)
    encodeAcceptedReply(w, h.xid, accept_stat.SUCCESS)
    proc.res.encode(w, result)
    const next = Math.max(MIN_REPLY_SCRATCH, Math.min(MAX_REPLY_SCRATCH, w.scratchLength))
    if (next !== hint) replySizeHint.set(proc, next)
    chunks = w.finish()
  } catch (err) {
    origin.log.error({ err, xid: h.xid, prog: h.prog, vers: h.vers, proc: proc.name }, 'result encoder failed')
    return accepted(env, h.xid, accept_stat.SYSTEM_ERR)
  }
  if (origin.transport === 'udp' && byteLength(chunks) > MAX_UDP_REPLY) {
    origin.log.error({ xid: h.xid, prog: h.prog, vers: h.vers, proc: proc.name, bytes: byteLength(chunks) }, 'reply too large for UDP')
    return accepted(env, h.xid, accept_stat.SYSTEM_ERR)
  }
  env.stats.replies.success++
  return chunks
}

function headerFailure(env: DispatchEnv, err: unknown, log: Logger): Reply {
  if (err instanceof RpcMessageError) {
    switch (err.code) {
      case 'RPC_NOT_CALL':
        break
      case 'RPC_VERSION_MISMATCH':
        env.stats.replies.rpcMismatch++
        return encode(w => {
          encodeDeniedReply(w, err.xid, RPC_MISMATCH_V2)
        })
      case 'RPC_BAD_CRED':
        return denied(env, err.xid, auth_stat.AUTH_BADCRED)
      case 'RPC_BAD_VERF':
        return denied(env, err.xid, auth_stat.AUTH_BADVERF)
    }
  } else if (!(err instanceof XdrDecodeError)) {
    throw err
  }
  // A stray REPLY, or a header too short to answer: say nothing (on TCP the connection stays).
  log.debug({ err }, 'record dropped')
  env.stats.dropped++
  return null
}

const ACCEPT_COUNTERS = ['success', 'progUnavail', 'progMismatch', 'procUnavail', 'garbageArgs', 'systemErr'] as const

function accepted(env: DispatchEnv, xid: number, stat: AcceptStat, mismatch?: { low: number; high: number }): Reply {
  const counter = ACCEPT_COUNTERS[stat]
  env.stats.replies[counter]++
  return encode(w => {
    encodeAcceptedReply(w, xid, stat, mismatch)
  })
}

function denied(env: DispatchEnv, xid: number, stat: number): Reply {
  env.stats.replies.authError++
  return encode(w => {
    encodeDeniedReply(w, xid, { stat: reject_stat.AUTH_ERROR, auth_stat: stat })
  })
}

function encode(fn: (w: XdrWriter) => void): Buffer[] {
  const w = new XdrWriter(32)
  fn(w)
  return w.finish()
}

function byteLength(chunks: readonly Buffer[]): number {
  let n = 0
  for (const c of chunks) n += c.length
  return n
}
