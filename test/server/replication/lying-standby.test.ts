/*
 * The sender against a standby whose answers do not add up (a broken build, a damaged link, a
 * hostile peer): a real standby behind a relay that rewrites its replies. A sync reply may be
 * released only for a change the standby was sent and acknowledged, so a position past what was
 * sent is a protocol violation, not an acknowledgement: the session ends, and the next HELLO says
 * where the standby really is.
 */
import t from 'tap'
import type { Test } from 'tap'
import { silentLogger } from '../../../server/logger.ts'
import { SyncGate } from '../../../server/replication/gate.ts'
import { Sender } from '../../../server/replication/sender.ts'
import type { SenderExport, SenderOptions } from '../../../server/replication/sender.ts'
import { TSNFS_REPL_PROG, repl_hello_res, repl_stat } from '../../../xdr/generated/replication.ts'
import { encodeToBuffer } from '../../../xdr/runtime/codec.ts'
import { XdrReader } from '../../../xdr/runtime/reader.ts'
import { startProxy } from '../../client/proxy.ts'
import type { TcpProxy } from '../../client/proxy.ts'
import { ArraySource, RecordingTarget, changeNo, patternData, senderOptions, startStandby, until } from './fixtures.ts'

const PROCS = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs
/** Where an accepted reply's results start: xid, REPLY, MSG_ACCEPTED, an AUTH_NONE verifier, SUCCESS. */
const RESULTS = 24

function sender(t: Test, port: number, exports: SenderExport[], o: Partial<SenderOptions> = {}): Sender {
  const s = new Sender(senderOptions(port, exports, o))
  s.start()
  t.teardown(() => s.stop())
  return s
}

/**
 * Hands each reply to `edit` with the procedure its call named (the relay reads the calls' xids),
 * and forwards what it returns.
 */
function editReplies(proxy: TcpProxy, edit: (proc: number, reply: Buffer) => Buffer): void {
  const procOf = new Map<number, number>()
  proxy.rewrite = (call) => {
    procOf.set(call.readUInt32BE(0), call.readUInt32BE(20))
    return call
  }
  proxy.rewriteReply = (reply) => {
    const xid = reply.readUInt32BE(0)
    const proc = procOf.get(xid)
    procOf.delete(xid)
    return proc === undefined || reply.length < RESULTS + 4 ? reply : edit(proc, reply)
  }
}

/** An APPEND's (or APPEND_DRC's) REPL_OK reply with `durable` moved by `by`; anything else as it was. */
function moveDurable(proc: number, reply: Buffer, by: bigint): Buffer {
  if (proc !== PROCS.REPL_APPEND.proc && proc !== PROCS.REPL_APPEND_DRC.proc) return reply
  if (reply.readUInt32BE(RESULTS) !== repl_stat.REPL_OK) return reply
  const out = Buffer.from(reply)
  out.writeBigUInt64BE(reply.readBigUInt64BE(RESULTS + 4) + by, RESULTS + 4)
  return out
}

t.test('an APPEND acknowledged past what was sent releases no sync reply: the session ends and the standby is asked again', async (t) => {
  const target = new RecordingTarget()
  const st = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const proxy = await startProxy(t, st.port)
  let lies = 0
  editReplies(proxy, (proc, reply) => {
    const out = lies > 0 ? moveDurable(proc, reply, 1000n) : reply
    if (out !== reply) lies--
    return out
  })
  const gate = new SyncGate(silentLogger)
  const source = new ArraySource()
  const s = sender(t, proxy.port, [{ id: 1, path: '/a', mode: 'sync', source, data: patternData }], { gate })
  for (let i = 1; i <= 3; i++) source.append(changeNo(i))
  await until(() => gate.isMember(s.peer, 1) && s.status().acked === 3n, 5000, 'three changes acknowledged, in the sync set')
  // The APPEND of change 4 is answered "durable up to 1004"; change 5 is appended after that
  // answer, so only the standby's real acknowledgement may release its wait.
  lies = 1
  source.append(changeNo(4))
  await until(() => lies === 0, 5000, 'the lie told')
  const seq = source.append(changeNo(5))
  let timer: NodeJS.Timeout | undefined
  const heldAtRelease = await Promise.race([gate.wait(1, seq).then(() => target.position()), new Promise<null>((r) => { timer = setTimeout(() => { r(null) }, 5000) })])
  clearTimeout(timer)
  t.not(heldAtRelease, null, 'the wait for change 5 ends')
  t.ok(heldAtRelease !== null && heldAtRelease >= seq, `the standby held change 5 when its wait ended (it held ${String(heldAtRelease)})`)
  t.ok(s.status().acked <= source.lastSeq(), `never acknowledged past the log (${String(s.status().acked)})`)
  t.ok(s.counters.connects >= 2, 'the lying session was ended and a new one opened')
  t.same(target.seqs(), [1n, 2n, 3n, 4n, 5n], 'each change once, in order')
})

t.test('a HELLO that puts the standby past the change log: an export without a tree to resync from stops, and no wait is released on its word', async (t) => {
  const target = new RecordingTarget()
  const st = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const proxy = await startProxy(t, st.port)
  editReplies(proxy, (proc, reply) => {
    if (proc !== PROCS.REPL_HELLO.proc) return reply
    const res = repl_hello_res.decode(new XdrReader(reply.subarray(RESULTS)))
    if (res.status !== repl_stat.REPL_OK) return reply
    const lie = { ...res, positions: res.positions.map((p) => ({ ...p, applied: p.applied + 1000n })) }
    return Buffer.concat([reply.subarray(0, RESULTS), encodeToBuffer(repl_hello_res, lie)])
  })
  const gate = new SyncGate(silentLogger)
  const source = new ArraySource()
  for (let i = 1; i <= 3; i++) source.append(changeNo(i))
  const why: string[] = []
  const s = sender(t, proxy.port, [{ id: 1, path: '/a', mode: 'sync', source, data: patternData }], { gate, onNeedsResync: (_id, w) => why.push(w) })
  await until(() => why.length > 0, 5000, 'the export stopped')
  t.same(why, ['the standby is ahead of the change log'], 'it needs a resync, and says why')
  t.notOk(gate.isMember(s.peer, 1), 'not in the sync set')
  t.equal(s.status().acked, 0n, 'nothing acknowledged on its word')
  t.equal(target.position(), 0n, 'nothing shipped')
})

t.test('an APPEND applied whose reply is lost with the connection: the next HELLO releases its waiters, with no change after it', async (t) => {
  // Found by the sender fuzz (test/e2e/sender-fuzzer.ts): the HELLO set the sender's position but
  // not the gate's, so a writer waiting for the last change before a quiet spell waited on.
  const target = new RecordingTarget()
  const st = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const proxy = await startProxy(t, st.port)
  const gate = new SyncGate(silentLogger)
  const source = new ArraySource()
  // Heartbeats go unanswered too while replies are dropped: a timeout no loaded machine reaches,
  // so that only the acknowledgement can release the wait.
  const s = sender(t, proxy.port, [{ id: 1, path: '/a', mode: 'sync', source, data: patternData }], { gate, timeoutMs: 10_000 })
  for (let i = 1; i <= 3; i++) source.append(changeNo(i))
  await until(() => gate.isMember(s.peer, 1) && s.status().acked === 3n, 5000, 'three changes acknowledged, in the sync set')
  proxy.dropReplies = true
  const seq = source.append(changeNo(4))
  let released = false
  void gate.wait(1, seq).then(() => { released = true })
  await until(() => target.position() === seq, 5000, 'the standby applied change 4')
  t.notOk(released, 'not released while its reply is missing')
  proxy.dropReplies = false
  proxy.cut()
  await until(() => released, 3000, 'the wait for change 4 released')
  t.ok(gate.isMember(s.peer, 1), 'released by the acknowledgement: the standby is still in the sync set')
  t.equal(s.counters.deaths, 0, 'and was never declared dead')
  t.same(target.seqs(), [1n, 2n, 3n, 4n], 'each change once')
})

t.test('an export stopped on one connection (the standby was full, or did not list it) ships again once a new HELLO lists it', async (t) => {
  // deploy/replication.md: a full standby "stops taking that export's changes until it is
  // restarted with room"; the sender kept the export stopped for good, so only a primary restart
  // resumed it. Found by the pair fuzz (a damaged HELLO that listed no export stopped it for good).
  const dir = t.testdir()
  const full = new RecordingTarget()
  full.failAt = { seq: 4n, code: 'ENOSPC' }
  const st = await startStandby(t, { dir, targets: [{ id: 1, path: '/a', target: full }] })
  const gate = new SyncGate(silentLogger)
  const source = new ArraySource()
  for (let i = 1; i <= 6; i++) source.append(changeNo(i))
  const s = sender(t, st.port, [{ id: 1, path: '/a', mode: 'sync', source, data: patternData }], { gate })
  await until(() => s.status().state === 'failed: NOSPC', 5000, 'the export failed on the full standby')
  t.equal(full.position(), 3n, 'stopped at the change before the one that did not fit')
  // Restarted with room: the same state directory and port, its copy where it was.
  await st.close()
  full.failAt = null
  const again = await startStandby(t, { dir, port: st.port, targets: [{ id: 1, path: '/a', target: full }] })
  await until(() => full.position() === 6n, 5000, 'the rest shipped to the restarted standby')
  t.same(full.seqs(), [1n, 2n, 3n, 4n, 5n, 6n], 'each change once, in order')
  await until(() => gate.isMember(s.peer, 1), 5000, 'back in the sync set')
  t.equal(again.service.exportFailure(1), null, 'the standby has no failure left')
})
