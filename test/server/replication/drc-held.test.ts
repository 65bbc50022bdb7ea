/*
 * REPL_DRC_HELD (xdr/spec/replication.x; drc-ship.ts, drc-held.ts), over real
 * sockets against a standby service: a sync primary's cached reply travels
 * alongside its change instead of after the change's acknowledgement; the
 * standby writes it to replies.drc at once, while the change is flushed (the
 * two overlap), answers once both are done, and uses it only once it has that
 * change durably (a primary dying in between must not leave it a reply for a
 * change it never made). A takeover releases entries still waiting, unused. A standby of an older build (no
 * procedure 13: PROC_UNAVAIL) gets the entry by REPL_DRC, and only once the
 * change is acknowledged.
 */
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { silentLogger } from '../../../server/logger.ts'
import { StreamCaller } from '../../../server/callback/stream.ts'
import { changeToRepl } from '../../../server/replication/change-codec.ts'
import { RepliesShipper } from '../../../server/replication/drc-ship.ts'
import { REPLIES_FILE } from '../../../server/replication/standby-service.ts'
import { createReplicationProgram, STANDBY_RPC_LIMITS } from '../../../server/replication/standby-program.ts'
import { RpcServer } from '../../../server/rpc/server.ts'
import {
  TSNFS_REPL_PROG,
  repl_append_args,
  repl_append_res,
  repl_drc_held_args,
  repl_hello_args,
  repl_hello_res,
  repl_rs_begin_args,
  repl_rs_end_args,
  repl_rs_res,
  repl_stat,
} from '../../../xdr/generated/replication.ts'
import type { repl_rs_res as RsRes } from '../../../xdr/generated/replication.ts'
import { RecordingTarget, changeNo, startStandby } from './fixtures.ts'
import type { StandbyFixture } from './fixtures.ts'
import type { ResyncTarget } from '../../../server/replication/resync-target.ts'
import { until } from './resync-fixtures.ts'

const V1 = TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs
const at = (proc: number): { prog: number; vers: number; proc: number } => ({ prog: TSNFS_REPL_PROG.prog, vers: 1, proc })

async function open(t: Test, port: number): Promise<StreamCaller> {
  const c = await StreamCaller.open({ host: '127.0.0.1', port }, { timeoutMs: 10_000 })
  t.teardown(() => {
    c.close()
  })
  return c
}

/** A standby over one RecordingTarget (export 1 at /a) with a primary of epoch 1 attached on `c`. */
async function attached(t: Test): Promise<{ s: StandbyFixture; target: RecordingTarget; c: StreamCaller }> {
  const target = new RecordingTarget()
  const s = await startStandby(t, { dir: t.testdir(), targets: [{ id: 1, path: '/a', target }] })
  const c = await open(t, s.port)
  t.equal((await hello(c, 1n, 'primary-1')).status, repl_stat.REPL_OK, 'HELLO: attached')
  return { s, target, c }
}

/** HELLO of a primary `node` of `epoch`, with export 1 at /a in sync mode. */
const hello = (c: StreamCaller, epoch: bigint, node: string): Promise<repl_hello_res> => c.call(at(V1.REPL_HELLO.proc), repl_hello_args, {
  version: 1, cluster: Buffer.from('c1'), node: Buffer.from(node), epoch, handle_key: Buffer.alloc(32, 9),
  exports: [{ export_id: 1, path: Buffer.from('/a'), sync: true }], export_list: Buffer.alloc(0), mount_list: Buffer.alloc(0),
}, repl_hello_res)

const append = (c: StreamCaller, first: bigint, n: number): Promise<repl_append_res> =>
  c.call(at(V1.REPL_APPEND.proc), repl_append_args, { epoch: 1n, export_id: 1, first, changes: Array.from({ length: n }, (_, i) => changeToRepl(changeNo(Number(first) + i))) }, repl_append_res)

const held = (c: StreamCaller, seq: bigint, key: string): Promise<RsRes> =>
  c.call(at(V1.REPL_DRC_HELD.proc), repl_drc_held_args, { epoch: 1n, entries: [{ export_id: 1, seq, key: Buffer.from(key), reply: Buffer.from(`reply of ${key}`) }] }, repl_rs_res)

/** A flush gate the test opens: the standby's APPEND is applied but not acknowledged until then. */
function gateFlushes(target: RecordingTarget): () => void {
  let open: () => void = () => undefined
  const gate = new Promise<void>((resolve) => {
    open = resolve
  })
  target.flushGate = () => gate
  return () => {
    target.flushGate = null
    open()
  }
}

t.test('an entry is usable only once its change is durable on the standby; seq 0 at once', async (t) => {
  const { s, target, c } = await attached(t)
  const c2 = await open(t, s.port)
  t.same(await held(c2, 0n, 'k0'), { status: repl_stat.REPL_OK }, 'seq 0 (no change to wait for): stored at once')
  t.same(s.service.replies.all().map(([k]) => k), ['k0'])

  const answer = held(c2, 1n, 'k1')
  await until('the entry of change 1 waits', () => s.service.durableWaits.waiting === 1)
  t.same(s.service.replies.all().map(([k]) => k), ['k0'], 'change 1 not here: the reply is not usable')
  const release = gateFlushes(target)
  const appended = append(c, 1n, 1)
  await until('change 1 applied (not yet flushed)', () => target.applied.length === 1)
  t.equal(s.service.durableWaits.waiting, 1, 'applied but not durable: still waiting')
  t.same(s.service.replies.all().map(([k]) => k), ['k0'], 'and still not usable')
  release()
  t.same(await appended, { status: repl_stat.REPL_OK, durable: 1n })
  t.same(await answer, { status: repl_stat.REPL_OK }, 'answered once the change is durable and the entry written')
  t.same(s.service.replies.all().map(([k]) => k), ['k0', 'k1'])
  t.same(await held(c2, 1n, 'k1b'), { status: repl_stat.REPL_OK }, 'a change already durable: usable at once')
})

t.test('the entry is written while its change is flushed, not after; answered once both are done', async (t) => {
  const { s, target, c } = await attached(t)
  const c2 = await open(t, s.port)
  const file = join(s.service.stateDir, REPLIES_FILE)
  const release = gateFlushes(target)
  const appended = append(c, 1n, 1)
  await until('change 1 applied, its flush held', () => target.applied.length === 1)
  let answered = false
  const answer = held(c2, 1n, 'overlap').then((r) => {
    answered = true
    return r
  })
  // Before the change: the reply waited for the flush, so this never came while the flush was held.
  await until('the entry is in replies.drc while the change\'s flush is still held', async () => (await readFile(file)).includes('reply of overlap'), 10_000)
  t.equal(target.flushes, 0, 'the flush has not finished')
  t.notOk(answered, 'not answered: its change is not durable yet')
  t.same(s.service.replies.all().map(([k]) => k), [], 'nor usable')
  release()
  t.same(await appended, { status: repl_stat.REPL_OK, durable: 1n })
  t.same(await answer, { status: repl_stat.REPL_OK }, 'answered once the change is durable too')
  t.same(s.service.replies.all().map(([k]) => k), ['overlap'])
})

t.test('a takeover releases entries whose change never came: not usable, REPL_BUSY', async (t) => {
  const { s, c } = await attached(t)
  t.same(await append(c, 1n, 2), { status: repl_stat.REPL_OK, durable: 2n })
  const c2 = await open(t, s.port)
  t.same(await held(c2, 2n, 'had'), { status: repl_stat.REPL_OK })
  const answer = held(c2, 3n, 'never')
  await until('the entry of change 3 waits', () => s.service.durableWaits.waiting === 1)
  t.equal((await s.service.takeover({ force: true })).status, repl_stat.REPL_OK, 'TAKEOVER')
  t.same(await answer, { status: repl_stat.REPL_BUSY }, 'the waiting entry is refused')
  t.same(s.service.replies.all().map(([k]) => k), ['had'], 'only the reply whose change the node has')
})

t.test('a new primary (higher epoch): entries whose change never came are dropped before its log is counted', async (t) => {
  const { s, c } = await attached(t)
  const file = join(s.service.stateDir, REPLIES_FILE)
  t.same(await append(c, 1n, 2), { status: repl_stat.REPL_OK, durable: 2n })
  const c2 = await open(t, s.port)
  t.same(await held(c2, 2n, 'had'), { status: repl_stat.REPL_OK })
  const answer = held(c2, 3n, 'never')
  await until('the entry of change 3 written, waiting for its change', async () => s.service.durableWaits.waiting === 1 && (await readFile(file)).includes('reply of never'))
  const c3 = await open(t, s.port)
  t.equal((await hello(c3, 2n, 'primary-2')).status, repl_stat.REPL_OK, 'HELLO of epoch 2: attached')
  // Its log starts over: a seq 3 of it must not find the old primary's entry usable.
  t.equal(s.service.replies.size, 1, 'the entry whose change never came is gone')
  t.notOk((await readFile(file)).includes('reply of never'), 'from the file too')
  t.same(s.service.replies.all().map(([k]) => k), ['had'], 'the one whose change came is kept')
  t.same(await answer, { status: repl_stat.REPL_BUSY }, 'and the call that waited for the change is refused')
})

t.test("a new primary's entries wait for its own log: not the old log's position, but the full resync's end, then APPENDs", async (t) => {
  const target = new RecordingTarget()
  const ends: bigint[] = []
  // The tree's side of a resync is not what this test is about: RESYNC_END's position is.
  const resync: ResyncTarget = {
    begin: () => Promise.resolve(),
    dir: () => Promise.resolve([]),
    sums: () => Promise.resolve([]),
    data: () => Promise.resolve(),
    end: (p0) => {
      ends.push(p0)
      return Promise.resolve()
    },
  }
  const exp = { id: 1, path: '/a', target, resync }
  const s = await startStandby(t, { dir: t.testdir(), targets: [exp] })
  const c = await open(t, s.port)
  t.equal((await hello(c, 1n, 'primary-1')).status, repl_stat.REPL_OK)
  t.same(await append(c, 1n, 5), { status: repl_stat.REPL_OK, durable: 5n }, 'the old log reached 5 here')
  t.equal((await hello(c, 2n, 'primary-2')).status, repl_stat.REPL_OK, 'HELLO of epoch 2')
  t.equal(s.service.durableWaits.position(1), 0n, "nothing of the new log is durable here: the old log's 5 does not count")
  const held2 = (seq: bigint, key: string): Promise<RsRes> =>
    c.call(at(V1.REPL_DRC_HELD.proc), repl_drc_held_args, { epoch: 2n, entries: [{ export_id: 1, seq, key: Buffer.from(key), reply: Buffer.from(`reply of ${key}`) }] }, repl_rs_res)
  const early = held2(3n, 'early')
  await until('the entry for the new log\'s change 3 waits', () => s.service.durableWaits.waiting === 1)
  t.same(s.service.replies.all().map(([k]) => k), [], 'written, but not usable')
  const begin = await c.call(at(V1.REPL_RESYNC_BEGIN.proc), repl_rs_begin_args, { epoch: 2n, export_id: 1, p0: 4n }, repl_rs_res)
  t.same(begin, { status: repl_stat.REPL_OK }, 'RESYNC_BEGIN at 4')
  const end = await c.call(at(V1.REPL_RESYNC_END.proc), repl_rs_end_args, { epoch: 2n, export_id: 1, p0: 4n, walked_until: 4n }, repl_rs_res)
  t.same(end, { status: repl_stat.REPL_OK }, 'RESYNC_END at 4')
  t.same(ends, [4n])
  t.equal(s.service.durableWaits.position(1), 4n, 'the resync made the new log durable here up to 4')
  t.same(await early, { status: repl_stat.REPL_OK }, 'the entry of change 3 is answered once the resync covered it')
  t.same(await held2(4n, 'at-p0'), { status: repl_stat.REPL_OK }, 'and one of change 4 at once')
  const later = held2(6n, 'later')
  await until('the entry of change 6 waits for its APPEND', () => s.service.durableWaits.waiting === 1)
  t.same(s.service.replies.all().map(([k]) => k).sort(), ['at-p0', 'early'], 'usable: those the resync covered, not change 6')
  t.same(await c.call(at(V1.REPL_APPEND.proc), repl_append_args, { epoch: 2n, export_id: 1, first: 5n, changes: [5, 6].map((n) => changeToRepl(changeNo(n))) }, repl_append_res), { status: repl_stat.REPL_OK, durable: 6n })
  t.same(await later, { status: repl_stat.REPL_OK }, 'answered once its APPEND is durable')
})

t.test("restarted while a new primary's resync is due: its entries do not count the old log's position", async (t) => {
  const target = new RecordingTarget()
  const dir = t.testdir()
  const s = await startStandby(t, { dir, targets: [{ id: 1, path: '/a', target }] })
  const c = await open(t, s.port)
  t.equal((await hello(c, 1n, 'primary-1')).status, repl_stat.REPL_OK)
  t.same(await append(c, 1n, 5), { status: repl_stat.REPL_OK, durable: 5n }, 'the old log reached 5 here')
  t.equal((await hello(c, 2n, 'primary-2')).status, repl_stat.REPL_OK, 'HELLO of epoch 2: a full resync is due')
  const file = join(s.service.stateDir, REPLIES_FILE)
  const ghost = c.call(at(V1.REPL_DRC_HELD.proc), repl_drc_held_args, { epoch: 2n, entries: [{ export_id: 1, seq: 3n, key: Buffer.from('ghost'), reply: Buffer.from('reply of ghost') }] }, repl_rs_res)
  ghost.catch(() => undefined)
  await until('the new log\'s entry for change 3 written, waiting', async () => s.service.durableWaits.waiting === 1 && (await readFile(file)).includes('reply of ghost'))
  await s.close()
  // The same tree (target) and state directory: the tree still holds the old log's 5 changes.
  const again = await startStandby(t, { dir, targets: [{ id: 1, path: '/a', target }] })
  t.equal(again.service.durableWaits.position(1), 0n, 'marked for a resync: no position counts until it ends')
  t.equal(again.service.replies.size, 0, 'the entry whose change never came here is dropped at load')
  t.notOk((await readFile(file)).includes('reply of ghost'), 'from the file too')
})

t.test('the shipper sends an entry before its change is acknowledged; the hold ends once it is stored', async (t) => {
  const { s, c } = await attached(t)
  const shipper = new RepliesShipper({ host: '127.0.0.1', port: s.port, epoch: () => 1n, log: silentLogger, waited: () => true })
  shipper.start()
  t.teardown(() => shipper.stop())
  // Never acknowledged in this test: the shipper must not wait for it.
  const replicated = new Promise<void>(() => undefined)
  let done = false
  const hold = shipper.pushAndWait({ key: 'k1', reply: Buffer.from('r1'), exportId: 1, seq: 1n, replicated }).then(() => {
    done = true
  })
  await until('the entry reached the standby, ahead of its change', () => s.service.durableWaits.waiting === 1)
  t.notOk(done, 'the reply is still held')
  t.same(await append(c, 1n, 1), { status: repl_stat.REPL_OK, durable: 1n })
  await hold
  t.same(s.service.replies.all().map(([k]) => k), ['k1'], 'usable once change 1 was durable there')
  t.equal(shipper.legacy, false)
})

t.test('a standby of an older build (PROC_UNAVAIL): REPL_DRC, sent only once the change is acknowledged', async (t) => {
  const { s, c } = await attached(t)
  const prog = createReplicationProgram(s.service)
  // An older build registered no procedure 13: the dispatcher answers PROC_UNAVAIL.
  const procs = prog.versions.get(1)?.procs as Map<number, unknown> | undefined
  t.ok(procs?.delete(V1.REPL_DRC_HELD.proc), 'procedure 13 removed')
  const older = new RpcServer({ programs: [prog], logger: silentLogger, limits: STANDBY_RPC_LIMITS })
  const { port } = await older.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => older.close())
  const shipper = new RepliesShipper({ host: '127.0.0.1', port, epoch: () => 1n, log: silentLogger, waited: () => true })
  shipper.start()
  t.teardown(() => shipper.stop())
  let ack: () => void = () => undefined
  const replicated = new Promise<void>((resolve) => {
    ack = resolve
  })
  let done = false
  const hold = shipper.pushAndWait({ key: 'k1', reply: Buffer.from('r1'), exportId: 1, seq: 1n, replicated }).then(() => {
    done = true
  })
  await until('the shipper found the standby older', () => shipper.legacy)
  t.same(await append(c, 1n, 1), { status: repl_stat.REPL_OK, durable: 1n })
  // The standby has the change, but the primary has not seen its acknowledgement: nothing goes yet.
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(done, 'held until the change is acknowledged')
  t.equal(s.service.replies.size, 0, 'nothing sent before the acknowledgement')
  ack()
  await hold
  t.same(s.service.replies.all().map(([k]) => k), ['k1'], 'sent by REPL_DRC after it, and stored')
})
