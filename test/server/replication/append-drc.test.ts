/*
 * REPL_APPEND_DRC (xdr/spec/replication.x; carried-replies.ts): a sync
 * primary's cached replies ride in the APPEND of their changes, one message
 * instead of an APPEND and a REPL_DRC_HELD beside it. The wire bytes (exact,
 * and equal to the generated encoding); the standby applying the batch and
 * writing the entries side by side, answering once both are done, and never
 * making an entry usable when its batch was not taken; the sender and the
 * shipper over real sockets: a reply whose change has not gone rides in its
 * APPEND, one whose change went already goes by REPL_DRC_HELD, one whose
 * APPEND is lost with its connection goes again by REPL_DRC_HELD, and a standby
 * of an older build (no procedure 14: PROC_UNAVAIL) gets APPEND and
 * REPL_DRC_HELD as before.
 */
import t from 'tap'
import type { Test } from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { silentLogger } from '../../../server/logger.ts'
import { PeerCallError } from '../../../server/callback/errors.ts'
import { StreamCaller } from '../../../server/callback/stream.ts'
import { wireAppendDrcArgs } from '../../../server/replication/append-wire.ts'
import { changeBytes, changeToRepl } from '../../../server/replication/change-codec.ts'
import { RepliesShipper } from '../../../server/replication/drc-ship.ts'
import { SyncGate } from '../../../server/replication/gate.ts'
import { Sender } from '../../../server/replication/sender.ts'
import { REPLIES_FILE } from '../../../server/replication/standby-service.ts'
import { createReplicationProgram, STANDBY_RPC_LIMITS } from '../../../server/replication/standby-program.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import {
  TSNFS_REPL_PROG,
  repl_append_drc_args,
  repl_append_drc_res,
  repl_hello_args,
  repl_hello_res,
  repl_stat,
} from '../../../xdr/generated/replication.ts'
import { XdrDecodeError } from '../../../xdr/runtime/errors.ts'
import { XdrReader } from '../../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import { ArraySource, RecordingTarget, changeNo, patternData, startRelay, startStandby } from './fixtures.ts'
import { until } from './resync-fixtures.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs
const at = (proc: number): { prog: number; vers: number; proc: number } => ({ prog: TSNFS_REPL_PROG.prog, vers: 1, proc })

function encode<T>(codec: Codec<T>, v: T): Buffer {
  const w = new XdrWriter(64)
  codec.encode(w, v)
  return Buffer.concat(w.finish())
}

const entry = (seq: bigint, key: string): { export_id: number; seq: bigint; key: Buffer; reply: Buffer } => ({ export_id: 1, seq, key: Buffer.from(key), reply: Buffer.from(`reply of ${key}`) })

t.test('wire: the exact bytes of a small REPL_APPEND_DRC and its answer; the sender\'s encoding is the generated one', (t) => {
  const small = { append: { epoch: 2n, export_id: 7, first: 5n, changes: [] }, entries: [{ export_id: 7, seq: 5n, key: Buffer.from('k'), reply: Buffer.from('ab') }] }
  const bytes = encode(wireAppendDrcArgs, small)
  t.equal(bytes.toString('hex'), [
    '0000000000000002', '00000007', '0000000000000005', '00000000', // epoch, export, first, no changes
    '00000001', '00000007', '0000000000000005', '00000001', '6b000000', '00000002', '61620000', // one entry: export, seq, key 'k', reply 'ab'
  ].join(''))
  t.same(repl_append_drc_args.decode(new XdrReader(bytes)), small, 'the generated decoder (the standby\'s) reads it back')
  t.equal(encode(repl_append_drc_res, { append: { status: repl_stat.REPL_OK, durable: 9n }, drc: repl_stat.REPL_OK }).toString('hex'), '00000000' + '0000000000000009' + '00000000')
  t.equal(encode(repl_append_drc_res, { append: { status: repl_stat.REPL_GAP, applied: 3n }, drc: repl_stat.REPL_BUSY }).toString('hex'), '00000003' + '0000000000000003' + '00000009')

  const changes = [1, 2, 3, 4, 5, 6].map((i) => changeNo(i, 13))
  const data = changes.map((c) => (c.op === 'write' && c.data === null ? Buffer.alloc(c.length, 0x5a) : null))
  const ours = encode(wireAppendDrcArgs, { append: { epoch: 3n, export_id: 1, first: 1n, changes: changes.map((c, i) => ({ xdr: changeBytes(c), data: data[i] ?? null })) }, entries: [entry(2n, 'x'), entry(6n, 'yz')] })
  const generated = encode(repl_append_drc_args, { append: { epoch: 3n, export_id: 1, first: 1n, changes: changes.map((c, i) => changeToRepl(c.op === 'write' ? { ...c, data: data[i] ?? null } : c)) }, entries: [entry(2n, 'x'), entry(6n, 'yz')] })
  t.ok(ours.equals(generated), 'changes from their logged bytes with WRITE data spliced, then the entries: byte for byte the generated encoding')

  // A count past REPL_MAXDRC is refused before anything is allocated.
  const tooMany = Buffer.concat([bytes.subarray(0, 24), Buffer.from('00000101', 'hex')])
  t.throws(() => repl_append_drc_args.decode(new XdrReader(tooMany)), XdrDecodeError, '257 entries: refused')
  t.end()
})

async function open(t: Test, port: number): Promise<StreamCaller> {
  const c = await StreamCaller.open({ host: '127.0.0.1', port }, { timeoutMs: 10_000 })
  t.teardown(() => {
    c.close()
  })
  return c
}

const hello = (c: StreamCaller): Promise<repl_hello_res> => c.call(at(V1.REPL_HELLO.proc), repl_hello_args, {
  version: 1, cluster: Buffer.from('c1'), node: Buffer.from('primary-1'), epoch: 1n, handle_key: Buffer.alloc(32, 9),
  exports: [{ export_id: 1, path: Buffer.from('/a'), sync: true }], export_list: Buffer.alloc(0), mount_list: Buffer.alloc(0),
}, repl_hello_res)

const appendDrc = (c: StreamCaller, first: bigint, n: number, entries: ReturnType<typeof entry>[]): Promise<repl_append_drc_res> =>
  c.call(at(V1.REPL_APPEND_DRC.proc), repl_append_drc_args, { append: { epoch: 1n, export_id: 1, first, changes: Array.from({ length: n }, (_, i) => changeToRepl(changeNo(Number(first) + i))) }, entries }, repl_append_drc_res)

t.test('standby: the batch applied and flushed while its entries are written; answered once both are done', async (t) => {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const c = await open(t, s.port)
  t.equal((await hello(c)).status, repl_stat.REPL_OK)
  let release: () => void = () => undefined
  const flushed = new Promise<void>((resolve) => {
    release = resolve
  })
  target.flushGate = () => flushed
  let answered = false
  const answer = appendDrc(c, 1n, 2, [entry(1n, 'one'), entry(2n, 'two')]).then((r) => {
    answered = true
    return r
  })
  const file = join(s.service.stateDir, REPLIES_FILE)
  await until('the entries are in replies.drc while the batch\'s flush is held', async () => (await readFile(file)).includes('reply of two'))
  t.same(target.seqs(), [1n, 2n], 'the batch applied')
  t.equal(target.flushes, 0, 'its flush not done')
  t.notOk(answered, 'not answered before the flush')
  t.same(s.service.replies.all(), [], 'the entries not usable before their changes are durable')
  release()
  t.same(await answer, { append: { status: repl_stat.REPL_OK, durable: 2n }, drc: repl_stat.REPL_OK })
  t.same(s.service.replies.all().map(([k]) => k), ['one', 'two'], 'usable once the batch is durable')
  t.equal(s.service.durableWaits.waiting, 0, 'nothing left waiting')
})

t.test('standby: a batch not taken (a gap; a caller not attached) makes none of its entries usable', async (t) => {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const c = await open(t, s.port)
  t.equal((await hello(c)).status, repl_stat.REPL_OK)
  t.same(await appendDrc(c, 3n, 1, [entry(3n, 'gap')]), { append: { status: repl_stat.REPL_GAP, applied: 0n }, drc: repl_stat.REPL_BUSY }, 'a gap: the APPEND\'s answer, and REPL_BUSY for the entries')
  t.same(s.service.replies.all(), [], 'its entry not usable')
  const other = await open(t, s.port)
  t.same(await appendDrc(other, 1n, 1, [entry(1n, 'stranger')]), { append: { status: repl_stat.REPL_BUSY }, drc: repl_stat.REPL_BUSY }, 'from a connection that said no HELLO: refused, nothing queued')
  t.same(target.seqs(), [], 'nothing applied')
  t.notOk((await readFile(join(s.service.stateDir, REPLIES_FILE)).catch(() => Buffer.alloc(0))).includes('reply of stranger'), 'nor written')
  t.same(await appendDrc(c, 1n, 1, [entry(1n, 'then')]), { append: { status: repl_stat.REPL_OK, durable: 1n }, drc: repl_stat.REPL_OK }, 'the batch from the right place is taken')
  t.same(s.service.replies.all().map(([k]) => k), ['then'])
})

/** A sync sender and its shipper to the standby at `port`, paired as PrimaryReplication pairs them. */
function pair(t: Test, port: number, source: ArraySource): { sender: Sender; shipper: RepliesShipper; gate: SyncGate } {
  const gate = new SyncGate(silentLogger)
  const sender = new Sender({
    host: '127.0.0.1', port, cluster: 'c1', node: 'primary-1', epoch: () => 1n,
    hello: () => ({ handleKey: Buffer.alloc(32, 1), exportList: Buffer.from('/a\n'), mountList: Buffer.alloc(0) }),
    exports: [{ id: 1, path: '/a', mode: 'sync', source, data: patternData }],
    gate, log: silentLogger, heartbeatMs: 50, timeoutMs: 2000, reconnectMinMs: 20, reconnectMaxMs: 100,
  })
  const shipper = new RepliesShipper({ host: '127.0.0.1', port, epoch: () => 1n, log: silentLogger, waited: () => gate.waitsFor(sender.peer) })
  shipper.carrier = sender
  sender.home = shipper
  sender.start()
  shipper.start()
  t.teardown(async () => {
    await sender.stop()
    await shipper.stop()
  })
  return { sender, shipper, gate }
}

/** Appends a change and, before anything else runs (as the NFS dispatch does), hands its reply to the shipper. */
function changeWithReply(source: ArraySource, shipper: RepliesShipper, gate: SyncGate, key: string): Promise<void> {
  const seq = source.append(changeNo(source.changes.length + 1))
  return shipper.pushAndWait({ key, reply: Buffer.from(`reply of ${key}`), exportId: 1, seq, replicated: gate.wait(1, seq) })
}

t.test('sender: a reply whose change has not gone rides in its APPEND; one whose change went goes by REPL_DRC_HELD', async (t) => {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const source = new ArraySource()
  source.append(changeNo(1))
  const { sender, shipper, gate } = pair(t, s.port, source)
  await until('the standby joined the sync set', () => gate.isMember(sender.peer, 1))
  for (const key of ['c1', 'c2', 'c3']) await changeWithReply(source, shipper, gate, key)
  t.same(s.service.replies.all().map(([k]) => k), ['c1', 'c2', 'c3'], 'each reply held on the standby, usable, when its hold ended')
  t.equal(shipper.inAppends, 3, 'all three went inside APPENDs')
  t.equal(shipper.shipped, 3)
  t.same(target.seqs(), [1n, 2n, 3n, 4n])

  // A reply whose change is already acknowledged (a late one): nothing left to ride in.
  await shipper.pushAndWait({ key: 'late', reply: Buffer.from('reply of late'), exportId: 1, seq: 2n })
  t.equal(shipper.inAppends, 3, 'not carried')
  t.equal(shipper.shipped, 4, 'sent by REPL_DRC_HELD')
  t.same(s.service.replies.all().map(([k]) => k), ['c1', 'c2', 'c3', 'late'])
})

t.test('sender: a standby of an older build (no procedure 14: PROC_UNAVAIL) gets APPEND and REPL_DRC_HELD', async (t) => {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const prog = createReplicationProgram(s.service)
  const procs = prog.versions.get(1)?.procs as Map<number, unknown> | undefined
  t.ok(procs?.delete(V1.REPL_APPEND_DRC.proc), 'procedure 14 removed')
  const older = new RpcServer({ programs: [prog], logger: silentLogger, limits: STANDBY_RPC_LIMITS })
  const { port } = await older.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => older.close())
  const c = await open(t, port)
  const refused = await c.call(at(V1.REPL_APPEND_DRC.proc), repl_append_drc_args, { append: { epoch: 1n, export_id: 1, first: 1n, changes: [] }, entries: [] }, repl_append_drc_res).then(() => null, (err: unknown) => err)
  t.ok(refused instanceof PeerCallError && refused.status === 'PROC_UNAVAIL', 'the older build refuses the call cleanly: PROC_UNAVAIL')

  const source = new ArraySource()
  source.append(changeNo(1))
  const { sender, shipper, gate } = pair(t, port, source)
  await until('the standby joined the sync set', () => gate.isMember(sender.peer, 1))
  for (const key of ['o1', 'o2']) await changeWithReply(source, shipper, gate, key)
  t.equal(shipper.inAppends, 0, 'nothing carried')
  t.equal(shipper.shipped, 2, 'both sent by REPL_DRC_HELD')
  t.equal(shipper.legacy, false, 'which the standby has')
  t.same(s.service.replies.all().map(([k]) => k), ['o1', 'o2'], 'held, usable')
  t.same(target.seqs(), [1n, 2n, 3n], 'the changes by APPEND')
})

t.test('sender: replies in an APPEND lost with its connection go again by REPL_DRC_HELD, and are held once the change is resent', async (t) => {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const relay = await startRelay(t, s.port)
  const source = new ArraySource()
  source.append(changeNo(1))
  const { sender, shipper, gate } = pair(t, relay.port, source)
  await until('the standby joined the sync set', () => gate.isMember(sender.peer, 1))
  // The APPEND carrying the reply goes into a relay that forwards nothing, then its connection is cut.
  relay.pause()
  let held = true
  const hold = changeWithReply(source, shipper, gate, 'cut').then(() => {
    held = false
  })
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(held, 'the reply is held while its APPEND is unanswered')
  t.same(target.seqs(), [1n], 'the change has not reached the standby')
  relay.resume()
  await hold
  t.same(target.seqs(), [1n, 2n], 'the sender reconnected and sent the change again, once')
  t.same(s.service.replies.all().map(([k]) => k), ['cut'], 'the reply is held on the standby, usable')
  t.equal(shipper.inAppends, 0, 'not by the APPEND that was lost')
  t.equal(shipper.shipped, 1, 'by REPL_DRC_HELD')
})
