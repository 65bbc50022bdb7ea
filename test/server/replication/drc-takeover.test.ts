/*
 * The duplicate request cache survives a takeover (issue 15 §4; RFC 1813
 * §4.5), over real sockets: a client's REMOVE, RENAME and CREATE (EXCLUSIVE)
 * reach primary A (sync mode) through a relay that drops A's replies (and
 * keeps them); the moment each reply leaves A, standby B already holds it (A
 * held the reply until B had it on disk); A is stopped at once, no grace;
 * B takes over, once as it is and once after a restart (its copies come from
 * its file); the client retransmits each call with the same xid to B and gets
 * the reply A sent, byte for byte, not NOENT or EXIST. A new xid for the same
 * REMOVE gets NOENT: the replay came from the cache, not a second run.
 * Also the store's bounds: entries and bytes, oldest out first.
 */
import t from 'tap'
import type { Test } from 'tap'
import { connect, createServer as netServer } from 'node:net'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { authSys } from '../../../client/rpc/auth.ts'
import { encodeCall } from '../../../server/callback/message.ts'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import { silentLogger } from '../../../server/logger.ts'
import { ReplyStore } from '../../../server/replication/drc-store.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import { StandbyNode } from '../../../server/replication/standby-node.ts'
import type { BackendFactory } from '../../../server/backends.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { CREATE3args, REMOVE3args, RENAME3args } from '../../../xdr/generated/nfs3.ts'
import type { Codec } from '../../../xdr/runtime/codec.ts'
import { frameRecord, totalLength } from '../../../xdr/record.ts'
import { NFS3, Nfs3, ROOT_CRED, S } from '../../helpers/local.ts'
import { until } from './resync-fixtures.ts'
import { callRaw, statusOf } from './raw-call.ts'

const NFS = { prog: 100003, vers: 3 }

interface DropRelay {
  port: number
  drop: boolean
  kept: Buffer[]
  /** Called as each dropped reply arrives, before anything else runs. */
  onKept: (() => void) | null
}

/** A relay in front of `port` that, while `drop` is set, forwards calls but keeps replies instead of passing them on. */
async function dropRelay(t: Test, port: number): Promise<DropRelay> {
  const state: DropRelay = { port: 0, drop: false, kept: [], onKept: null }
  const sockets = new Set<Socket>()
  const server = netServer((a) => {
    const b = connect({ host: '127.0.0.1', port })
    sockets.add(a).add(b)
    a.on('data', (d: Buffer) => b.write(d))
    b.on('data', (d: Buffer) => {
      if (state.drop) {
        state.kept.push(Buffer.from(d))
        state.onKept?.()
      } else a.write(d)
    })
    const end = (): void => {
      a.destroy()
      b.destroy()
    }
    a.on('error', end).on('close', end)
    b.on('error', end).on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  state.port = typeof addr === 'object' && addr !== null ? addr.port : 0
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return state
}

/** One framed call record. */
function record<A>(xid: number, proc: number, codec: Codec<A>, args: A): Buffer {
  const body = encodeCall(xid, { ...NFS, proc }, codec, args, authSys(ROOT_CRED))
  return Buffer.concat([frameRecord(body, totalLength(body)), ...body])
}


for (const restart of [false, true]) {
  const what = restart ? ', B restarted before it takes over' : ''
  t.test(`a retransmission of a call the old primary answered (reply lost, primary stopped at once${what}) gets that answer from the new primary`, async (t) => {
    const dir = t.testdir({ export: {}, copy: {} })
    const exportPath = join(dir, 'export')
    const exportsText = `${exportPath} *(rw,insecure,no_root_squash)\n`
    const bBackend: ReadonlyMap<string, BackendFactory> = new Map([['local', (exp, ctx) => new LocalVfs({ root: join(dir, 'copy'), stateDir: join(ctx.stateDir, 'local', String(exp.id)) })]])
    const openB = (): Promise<StandbyNode> => StandbyNode.open({
      stateDir: join(dir, 'b-state'),
      node: 'b',
      listen: { host: '127.0.0.1', port: 0 },
      exports: parseExports(exportsText, 'exports'),
      serve: { port: 0, host: '127.0.0.1', locking: false },
      log: silentLogger,
      backends: bBackend,
      // Once it has taken over, B replicates to a standby of its own (none answers here) with these timings.
      asPrimary: { standbys: [{ host: '127.0.0.1', port: 9 }], mode: 'sync', heartbeatMs: 150, timeoutMs: 1500 },
    })
    let b = await openB()
    t.teardown(() => b.close())
    const aRepl = await PrimaryReplication.open({ stateDir: join(dir, 'a-state'), cluster: 'tsnfs', node: 'a', standbys: [{ host: '127.0.0.1', port: b.port }], mode: 'sync', heartbeatMs: 100, timeoutMs: 2000, log: silentLogger })
    const a = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: join(dir, 'a-state'), port: 0, host: '127.0.0.1', locking: false, replication: aRepl })
    t.teardown(() => a.close().catch(() => undefined))
    await until('B joins A', () => aRepl.view().peers[0]?.state === 'streaming')

    const nfs = await Nfs3.connect(t, a.port)
    const root = await nfs.mount(exportPath)
    for (const name of ['victim', 'from']) t.equal((await nfs.create(root, name)).status, S.OK)
    nfs.c.close()

    const relay = await dropRelay(t, a.port)
    const dirop = (name: string): { dir: { data: Buffer }; name: Buffer } => ({ dir: { data: root }, name: Buffer.from(name) })
    const calls = [
      { what: 'REMOVE', rec: record(0x5eed0001, NFS3.NFSPROC3_REMOVE.proc, REMOVE3args, { object: dirop('victim') }) },
      { what: 'RENAME', rec: record(0x5eed0002, NFS3.NFSPROC3_RENAME.proc, RENAME3args, { from: dirop('from'), to: dirop('to') }) },
      { what: 'CREATE EXCLUSIVE', rec: record(0x5eed0003, NFS3.NFSPROC3_CREATE.proc, CREATE3args, { where: dirop('made'), how: { mode: 2, verf: Buffer.from('verifier') } }) },
    ]
    relay.drop = true
    const lost: Buffer[] = []
    // What B held the moment each reply left A (taken in the relay's data event, before anything else runs).
    const heldAtReply: Buffer[][] = []
    relay.onKept = () => {
      heldAtReply.push(b.service.replies.all().map(([, r]) => r))
    }
    for (const c of calls) {
      const before = relay.kept.length
      const s = connect({ host: '127.0.0.1', port: relay.port })
      s.write(c.rec)
      await until(`${c.what} answered (and the answer dropped)`, () => relay.kept.length > before)
      s.destroy()
      const kept = Buffer.concat(relay.kept.slice(before))
      const reply = kept.subarray(4, 4 + (kept.readUInt32BE(0) & 0x7fffffff))
      lost.push(reply)
      t.equal(statusOf(reply), S.OK, `${c.what}: A did it and answered OK (the client never saw it)`)
      t.ok(heldAtReply[before]?.some((r) => r.equals(reply)), `${c.what}: B held the reply before it left A`)
    }
    // Stopped at once: no time for anything A would still ship.
    await a.close()

    if (restart) {
      await b.close()
      b = await openB()
      t.ok(b.service.replies.size >= calls.length, 'B restarted: the replies are back from its file')
    }
    t.equal((await b.service.takeover({ force: true })).status, 0, 'B: TAKEOVER REPL_OK')
    const served = b.server
    if (served === null) return t.fail('B serves')
    for (const [i, c] of calls.entries()) {
      const again = await callRaw(served.port, c.rec)
      t.ok(again.equals(lost[i] ?? Buffer.alloc(0)), `${c.what} retransmitted to B (same xid): A's reply, byte for byte`)
    }
    const fresh = await callRaw(served.port, record(0x5eed0009, NFS3.NFSPROC3_REMOVE.proc, REMOVE3args, { object: dirop('victim') }))
    t.equal(statusOf(fresh), S.NOENT, 'the same REMOVE with a new xid: NOENT (it ran once, on A)')
    const fresh2 = await callRaw(served.port, record(0x5eed000a, NFS3.NFSPROC3_RENAME.proc, RENAME3args, { from: dirop('from'), to: dirop('to') }))
    t.equal(statusOf(fresh2), S.NOENT, 'the same RENAME with a new xid: NOENT')
    t.equal(b.service.replies.size, 0, 'taken over: the store is emptied (the cache holds them now)')
    t.same(b.asPrimary?.senderTimings(), [{ peer: '127.0.0.1:9', heartbeatMs: 150, timeoutMs: 1500 }], 'B\'s own sender runs with the heartbeat options it was given')
  })
}

t.test('the store keeps the latest entries within its bounds, oldest out first; a key sent again replaces its entry', (t) => {
  const s = new ReplyStore({ maxEntries: 3, maxBytes: 100 })
  for (let i = 0; i < 5; i++) s.add(`k${String(i)}`, Buffer.alloc(10, i))
  t.same(s.all().map(([k]) => k), ['k2', 'k3', 'k4'], 'three entries at most')
  s.add('k2', Buffer.alloc(10, 9))
  t.same(s.all().map(([k]) => k), ['k3', 'k4', 'k2'], 'resent: moved to the newest')
  t.same(s.all().at(-1)?.[1], Buffer.alloc(10, 9))
  s.add('big', Buffer.alloc(80))
  t.same(s.all().map(([k]) => k), ['k2', 'big'], 'bytes bounded too (12 + 83 ≤ 100)')
  s.add('huge', Buffer.alloc(200))
  t.same(s.all().map(([k]) => k), [], 'an entry over the byte bound alone is not kept')
  t.end()
})
