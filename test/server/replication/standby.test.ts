/*
 * The standby program over real TCP on 127.0.0.1, called as a primary would
 * (StreamCaller): each status of HELLO, HEARTBEAT, APPEND and TAKEOVER, the
 * state kept in the state directory, and bad input (garbage inside a record,
 * counts and records over the caps) answered or cut off without harm to
 * other connections.
 */
import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import type { Change } from '../../../vfs/replica/change.ts'
import { StreamCaller } from '../../../server/callback/stream.ts'
import { PeerCallError } from '../../../server/callback/errors.ts'
import { NodeState } from '../../../server/replication/node-state.ts'
import { MAX_APPEND_RECORD } from '../../../server/replication/standby-program.ts'
import { changeToRepl } from '../../../server/replication/change-codec.ts'
import {
  TSNFS_REPL_PROG,
  repl_append_args,
  repl_append_res,
  repl_heartbeat_args,
  repl_heartbeat_res,
  repl_hello_args,
  repl_hello_res,
  repl_stat,
  repl_status_res,
  repl_takeover_args,
  repl_takeover_res,
} from '../../../xdr/generated/replication.ts'
import type { repl_change } from '../../../xdr/generated/replication.ts'
import { xdr_void } from '../../../xdr/runtime/codec.ts'
import { encodeCall } from '../../../server/callback/message.ts'
import { frameRecord, totalLength } from '../../../xdr/record.ts'
import { RecordingTarget, changeNo, startStandby } from './fixtures.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs
const at = (proc: number): { prog: number; vers: number; proc: number } => ({ prog: TSNFS_REPL_PROG.prog, vers: 1, proc })

interface HelloOver {
  version?: number
  cluster?: string
  node?: string
  epoch?: bigint
  exports?: { export_id: number; path: Buffer; sync: boolean }[]
}

const EXPORTS = [{ export_id: 1, path: Buffer.from('/a'), sync: true }]

function hello(c: StreamCaller, o: HelloOver = {}): Promise<repl_hello_res> {
  return c.call(at(V1.REPL_HELLO.proc), repl_hello_args, {
    version: o.version ?? 1,
    cluster: Buffer.from(o.cluster ?? 'c1'),
    node: Buffer.from(o.node ?? 'primary-1'),
    epoch: o.epoch ?? 1n,
    handle_key: Buffer.alloc(32, 9),
    exports: o.exports ?? EXPORTS,
    export_list: Buffer.from('/a *(rw)\n'),
    mount_list: Buffer.from('client1 /a\n'),
  }, repl_hello_res)
}

function append(c: StreamCaller, first: bigint, changes: Change[], epoch = 1n, exportId = 1): Promise<repl_append_res> {
  return c.call(at(V1.REPL_APPEND.proc), repl_append_args, { epoch, export_id: exportId, first, changes: changes.map(wire) }, repl_append_res)
}

/** The wire form with WRITE data filled (as the sender ships it). */
function wire(c: Change): repl_change {
  return changeToRepl(c.op === 'write' && c.data === null ? { ...c, data: Buffer.alloc(c.length, 7) } : c)
}

const takeover = (c: StreamCaller, force: boolean): Promise<repl_takeover_res> => c.call(at(V1.REPL_TAKEOVER.proc), repl_takeover_args, { force }, repl_takeover_res)
const status = (c: StreamCaller): Promise<repl_status_res> => c.call(at(V1.REPL_STATUS.proc), xdr_void, undefined, repl_status_res)
const heartbeat = (c: StreamCaller, epoch: bigint): Promise<repl_heartbeat_res> =>
  c.call(at(V1.REPL_HEARTBEAT.proc), repl_heartbeat_args, { epoch, node: Buffer.from('primary-1') }, repl_heartbeat_res)

async function open(t: Test, port: number): Promise<StreamCaller> {
  const c = await StreamCaller.open({ host: '127.0.0.1', port }, { timeoutMs: 3000 })
  t.teardown(() => {
    c.close()
  })
  return c
}

const changes = (from: number, n: number): Change[] => Array.from({ length: n }, (_, i) => changeNo(from + i))

t.test('HELLO: version, cluster, epoch, exports; what it stores', async (t) => {
  const dir = t.testdir()
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir, targets: [{ id: 1, path: '/a', target }], epoch: 3n })
  const c = await open(t, s.port)
  t.same(await hello(c, { version: 2, epoch: 3n }), { status: repl_stat.REPL_BAD_VERSION, supported: { low: 1, high: 1 } })
  t.same(await hello(c, { cluster: 'other', epoch: 3n }), { status: repl_stat.REPL_BUSY }, 'another cluster: BUSY')
  t.same(await hello(c, { epoch: 2n }), { status: repl_stat.REPL_STALE_EPOCH, epoch: 3n })
  t.same(await hello(c, { epoch: 3n, exports: [{ export_id: 1, path: Buffer.from('/b'), sync: true }] }), { status: repl_stat.REPL_NO_EXPORT }, 'same id, another path')
  t.same(await hello(c, { epoch: 3n, exports: [...EXPORTS, { export_id: 2, path: Buffer.from('/b'), sync: false }] }), { status: repl_stat.REPL_NO_EXPORT })
  t.same(await hello(c, { epoch: 4n }), { status: repl_stat.REPL_OK, positions: [{ export_id: 1, applied: 0n, need_resync: false }] })
  t.equal(s.state.get().epoch, 4n, 'a higher epoch is adopted')
  t.equal((await NodeState.read(dir))?.epoch, 4n, 'durably')
  const primary = join(dir, 'replication', 'primary')
  t.same(readFileSync(join(primary, 'handle.key')), Buffer.alloc(32, 9))
  t.equal(readFileSync(join(primary, 'export-list'), 'utf8'), '/a *(rw)\n')
  t.equal(readFileSync(join(primary, 'mount-list'), 'utf8'), 'client1 /a\n')
  t.same(s.service.primaryInfo()?.handleKey, Buffer.alloc(32, 9))
  t.same(await heartbeat(c, 4n), { status: repl_stat.REPL_OK, ok: { role: 2, epoch: 4n } })
  t.same(await heartbeat(c, 1n), { status: repl_stat.REPL_STALE_EPOCH, epoch: 4n })
})

t.test('one primary at a time', async (t) => {
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target: new RecordingTarget() }] })
  const a = await open(t, s.port)
  const b = await open(t, s.port)
  t.equal((await hello(a, { node: 'p1' })).status, repl_stat.REPL_OK)
  t.same(await hello(b, { node: 'p2' }), { status: repl_stat.REPL_BUSY }, 'a second primary of the same epoch')
  t.same(await append(b, 1n, changes(0, 1)), { status: repl_stat.REPL_BUSY }, 'APPEND only from the attached connection')
  t.equal((await hello(b, { node: 'p2', epoch: 2n })).status, repl_stat.REPL_OK, 'a higher epoch replaces it')
  t.same(await append(a, 1n, changes(0, 1)), { status: repl_stat.REPL_STALE_EPOCH, epoch: 2n }, 'the old one is stale now')
  a.close()
  const c = await open(t, s.port)
  b.close()
  await new Promise((r) => setTimeout(r, 50))
  t.equal((await hello(c, { node: 'p3', epoch: 2n })).status, repl_stat.REPL_OK, 'the attached primary closed its connection: another may attach')
})

t.test('a primary of a higher epoch (a takeover since): an export that applied anything needs a full resync, durably; an empty one does not', async (t) => {
  const dir = t.testdir()
  const applied = new RecordingTarget()
  const empty = new RecordingTarget()
  const targets = [{ id: 1, path: '/a', target: applied }, { id: 2, path: '/b', target: empty }]
  const both = [...EXPORTS, { export_id: 2, path: Buffer.from('/b'), sync: true }]
  const s = await startStandby(t, { dir, targets })
  const c = await open(t, s.port)
  t.equal((await hello(c, { exports: both })).status, repl_stat.REPL_OK)
  t.same(await append(c, 1n, changes(1, 5)), { status: repl_stat.REPL_OK, durable: 5n })
  c.close()
  const d = await open(t, s.port)
  // The new primary's log started afresh at its takeover: position 5 of the old log means nothing to it.
  t.same(await hello(d, { node: 'primary-2', epoch: 2n, exports: both }), {
    status: repl_stat.REPL_OK,
    positions: [{ export_id: 1, applied: 5n, need_resync: true }, { export_id: 2, applied: 0n, need_resync: false }],
  })
  t.same(await append(d, 6n, changes(6, 1), 2n), { status: repl_stat.REPL_NEED_RESYNC }, 'no APPEND until the resync')
  t.ok(existsSync(join(dir, 'replication', 'resync-1')), 'the mark is on disk')
  t.notOk(existsSync(join(dir, 'replication', 'resync-2')), 'none for the export that held nothing')
  t.equal(s.state.get().epoch, 2n)
})

t.test('APPEND: in order, duplicates skipped, gaps refused, one batch at a time', async (t) => {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const c = await open(t, s.port)
  await hello(c)
  t.same(await append(c, 1n, changes(1, 10)), { status: repl_stat.REPL_OK, durable: 10n })
  t.same(await append(c, 12n, changes(12, 2)), { status: repl_stat.REPL_GAP, applied: 10n })
  t.same(await append(c, 5n, changes(5, 10)), { status: repl_stat.REPL_OK, durable: 14n }, 'a resend overlapping what was applied')
  t.same(await append(c, 3n, changes(3, 2)), { status: repl_stat.REPL_OK, durable: 14n }, 'all old: nothing applied')
  t.same(await append(c, 1n, [], 1n, 9), { status: repl_stat.REPL_NO_EXPORT })
  // Pipelined: eight batches sent at once are applied one after another, in order.
  const replies = await Promise.all(Array.from({ length: 8 }, (_, k) => append(c, 15n + BigInt(k * 5), changes(15 + k * 5, 5))))
  t.same(replies.map((r) => r.status), Array(8).fill(repl_stat.REPL_OK))
  t.same(replies.at(-1), { status: repl_stat.REPL_OK, durable: 54n })
  t.same(target.seqs(), Array.from({ length: 54 }, (_, i) => BigInt(i + 1)), 'each change once, in order')
  t.same(target.violations, [])
  t.equal(target.flushes, 10, 'one flush per batch that applied something (1 + 1 + 8)')
  const w = target.applied[1]?.change
  t.equal(w?.op, 'write')
  if (w?.op === 'write') t.same(w.data, Buffer.alloc(100, 7), 'WRITE data arrives, copied out of the record')
})

t.test('APPEND failures: BAD_CHANGE, NOSPC, NEED_RESYNC (kept across a restart), IO', async (t) => {
  const dir = t.testdir()
  const a = new RecordingTarget()
  const b = new RecordingTarget()
  const c3 = new RecordingTarget()
  const targets = [
    { id: 1, path: '/a', target: a },
    { id: 2, path: '/b', target: b },
    { id: 3, path: '/c', target: c3 },
  ]
  const exports = targets.map((x) => ({ export_id: x.id, path: Buffer.from(x.path), sync: true }))
  let s = await startStandby(t, { dir, targets })
  let c = await open(t, s.port)
  await hello(c, { exports })
  // Built by hand: the codec refuses to encode such a change, a broken primary might still send it.
  const good = wire({ op: 'write', ref: { id: 5n, gen: 1 }, offset: 0n, length: 10, data: Buffer.alloc(10), times: [] })
  const bad: repl_change = good.body.op === 5 ? { ...good, body: { op: 5, write: { ...good.body.write, data: Buffer.alloc(3) } } } : good
  const r1 = await c.call(at(V1.REPL_APPEND.proc), repl_append_args, { epoch: 1n, export_id: 1, first: 1n, changes: [wire(changeNo(1)), bad] }, repl_append_res)
  t.same(r1, { status: repl_stat.REPL_BAD_CHANGE }, 'a WRITE whose data is not its length')
  t.equal(a.applied.length, 0, 'nothing of that batch applied')

  a.failAt = { seq: 3n, code: 'ENOSPC' }
  t.same(await append(c, 1n, changes(1, 5)), { status: repl_stat.REPL_NOSPC })
  t.equal(a.position(), 2n, 'what applied before the failure was made durable')
  a.failAt = null
  t.same(await append(c, 3n, changes(3, 1)), { status: repl_stat.REPL_NOSPC }, 'the export stays failed')
  t.equal(s.service.exportFailure(1), repl_stat.REPL_NOSPC)

  b.failAt = { seq: 2n, code: 'ENOENT' }
  t.same(await append(c, 1n, changes(1, 3), 1n, 2), { status: repl_stat.REPL_NEED_RESYNC })
  c3.failAt = { seq: 1n, code: 'EIO' }
  t.same(await append(c, 1n, changes(1, 3), 1n, 3), { status: repl_stat.REPL_IO })
  c3.failAt = null
  t.same(await append(c, 1n, changes(1, 3), 1n, 3), { status: repl_stat.REPL_OK, durable: 3n }, 'IO is not sticky')
  // A flush is redone whole after a failure: EIO may pass, EINVAL fails every retry the same way.
  c3.failFlush = 'EIO'
  t.same(await append(c, 4n, changes(4, 1), 1n, 3), { status: repl_stat.REPL_IO }, 'a flush failing with EIO: IO')
  c3.failFlush = 'EINVAL'
  t.same(await append(c, 4n, changes(4, 1), 1n, 3), { status: repl_stat.REPL_NEED_RESYNC }, 'a flush failing with EINVAL: NEED_RESYNC, not retried for ever')
  c3.failFlush = null
  t.same(await append(c, 4n, changes(4, 1), 1n, 3), { status: repl_stat.REPL_NEED_RESYNC }, 'and it stays so until a resync')
  t.match(readFileSync(join(dir, 'replication', 'resync-3'), 'utf8'), /^flush after 3 failed: EINVAL\n$/, 'marked durably, with the reason')

  const st = await status(c)
  t.equal(st.status, repl_stat.REPL_OK)
  if (st.status === repl_stat.REPL_OK) {
    t.same(st.ok.positions, [
      { export_id: 1, applied: 2n, need_resync: false },
      { export_id: 2, applied: 1n, need_resync: true },
      { export_id: 3, applied: 3n, need_resync: true },
    ])
    t.equal(st.ok.peers[0]?.node.toString(), 'primary-1')
    t.equal(st.ok.peers[0]?.state.toString(), 'attached')
  }
  await s.close()
  c.close()
  s = await startStandby(t, { dir, targets })
  c = await open(t, s.port)
  const again = await hello(c, { exports })
  t.same(again.status === repl_stat.REPL_OK ? again.positions.map((p) => p.need_resync) : null, [false, true, true], 'the resync marks survive a restart; NOSPC does not')
  t.same(await append(c, 2n, changes(2, 1), 1n, 2), { status: repl_stat.REPL_NEED_RESYNC })
})

t.test('bad input: garbage inside a record, counts and records over the caps', async (t) => {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const c = await open(t, s.port)
  await hello(c)
  // An APPEND call whose arguments are garbage after the header.
  const garbage = encodeCall(77, at(V1.REPL_APPEND.proc), xdr_void, undefined)
  garbage.push(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 99, 0xde, 0xad]))
  const reply = await rawCall(s.port, Buffer.concat([frameRecord(garbage, totalLength(garbage)), ...garbage]))
  t.equal(reply.readUInt32BE(0), 77, 'answered')
  t.equal(reply.readUInt32BE(20), 4, 'GARBAGE_ARGS')
  // 2^32-1 changes announced in a small record: refused by the count check, nothing allocated for them.
  const huge = encodeCall(78, at(V1.REPL_APPEND.proc), xdr_void, undefined)
  huge.push(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]))
  const r2 = await rawCall(s.port, Buffer.concat([frameRecord(huge, totalLength(huge)), ...huge]))
  t.equal(r2.readUInt32BE(20), 4, 'a count over REPL_MAXBATCH: GARBAGE_ARGS')
  // A record mark larger than one APPEND may be: the connection is closed at once, before the bytes come.
  const sock = connect({ host: '127.0.0.1', port: s.port })
  await once(sock, 'connect')
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE((0x8000_0000 | (MAX_APPEND_RECORD + 1)) >>> 0)
  sock.write(mark)
  const started = Date.now()
  await once(sock, 'close')
  t.ok(Date.now() - started < 2000, 'closed without waiting for the record')
  // Others are still served.
  t.same(await append(c, 1n, changes(1, 2)), { status: repl_stat.REPL_OK, durable: 2n }, 'the attached primary goes on')
  t.same(target.violations, [])
})

t.test('TAKEOVER: refused while the primary answers, forced, durable, hook called, old primary stale', async (t) => {
  const dir = t.testdir()
  const epochs: bigint[] = []
  const s = await startStandby(t, {
    dir,
    targets: [{ id: 1, path: '/a', target: new RecordingTarget() }],
    epoch: 7n,
    extra: { onTakeover: (e) => void epochs.push(e) },
  })
  const p = await open(t, s.port)
  t.equal((await hello(p, { epoch: 7n })).status, repl_stat.REPL_OK)
  const admin = await open(t, s.port)
  t.same(await takeover(admin, false), { status: repl_stat.REPL_BUSY }, 'the primary still answers')
  t.same(await takeover(admin, true), { status: repl_stat.REPL_OK, epoch: 8n })
  t.same(epochs, [8n], 'hook called with the new epoch')
  t.match(await NodeState.read(dir), { role: 'primary', epoch: 8n }, 'durable before the reply')
  t.same(await takeover(admin, true), { status: repl_stat.REPL_OK, epoch: 8n }, 'again: the same epoch, no second raise')
  t.same(epochs, [8n])
  t.same(await append(p, 1n, changes(1, 1), 7n), { status: repl_stat.REPL_STALE_EPOCH, epoch: 8n }, 'the old primary is told it is stale')
  t.same(await hello(p, { epoch: 7n }), { status: repl_stat.REPL_STALE_EPOCH, epoch: 8n })
  t.same(await hello(p, { epoch: 8n }), { status: repl_stat.REPL_NOT_STANDBY })
  t.same(await heartbeat(p, 8n), { status: repl_stat.REPL_OK, ok: { role: 1, epoch: 8n } })
  t.same(await hello(p, { epoch: 9n }), { status: repl_stat.REPL_NOT_STANDBY }, 'a primary of a higher epoch exists...')
  t.match(s.state.get(), { role: 'fenced', epoch: 9n }, '...so this one is fenced, durably')
  t.match(await NodeState.read(dir), { role: 'fenced', epoch: 9n })
  t.same(await takeover(admin, true), { status: repl_stat.REPL_NOT_STANDBY }, 'a fenced node does not take over')
})

t.test('TAKEOVER with no primary attached needs no force', async (t) => {
  const s = await startStandby(t, { dir: t.testdir(), targets: [] })
  const admin = await open(t, s.port)
  t.same(await takeover(admin, false), { status: repl_stat.REPL_OK, epoch: 2n })
  const st = await status(admin)
  t.equal(st.status === repl_stat.REPL_OK ? st.ok.role : 0, 1, 'primary')
})

/** One record out, the first reply record back (xid onwards). */
async function rawCall(port: number, bytes: Buffer): Promise<Buffer> {
  const sock = connect({ host: '127.0.0.1', port })
  await once(sock, 'connect')
  sock.write(bytes)
  let got = Buffer.alloc(0)
  for await (const chunk of sock) {
    got = Buffer.concat([got, chunk as Buffer])
    if (got.length >= 4 && got.length >= 4 + (got.readUInt32BE(0) & 0x7fff_ffff)) break
  }
  sock.destroy()
  if (got.length < 28) throw new PeerCallError('CALL_BAD_REPLY', `short reply of ${got.length} bytes`)
  return got.subarray(4)
}
