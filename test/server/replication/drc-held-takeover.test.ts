/*
 * The hazard REPL_DRC_HELD must not open (server/replication/README.md, "The
 * duplicate request cache across a takeover"): a sync primary ships a reply's
 * cached copy before the change it describes is on the standby. If the primary
 * dies in between, the standby would hold "OK" for a CREATE it never made, and
 * after a takeover a client's retransmission would get that answer while the
 * file does not exist. Over real servers: standby B attached to primary A; the
 * test sends B, as A's epoch, a REPL_DRC_HELD entry for a CREATE naming a
 * change A never made; A is stopped; B takes over; the client's CREATE with that
 * xid reaches B, which runs it (the file is made, the answer is B's own), not
 * the cached "OK". With REPL_DRC's semantics (stored at once) the test fails.
 */
import t from 'tap'
import { join } from 'node:path'
import { authSys } from '../../../client/rpc/auth.ts'
import { encodeCall } from '../../../server/callback/message.ts'
import { StreamCaller } from '../../../server/callback/stream.ts'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import { silentLogger } from '../../../server/logger.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import { StandbyNode } from '../../../server/replication/standby-node.ts'
import { DuplicateRequestCache } from '../../../server/rpc/drc.ts'
import type { BackendFactory } from '../../../server/backends.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { CREATE3args } from '../../../xdr/generated/nfs3.ts'
import { TSNFS_REPL_PROG, repl_drc_held_args, repl_rs_res, repl_stat } from '../../../xdr/generated/replication.ts'
import { frameRecord, totalLength } from '../../../xdr/record.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'
import { NFS3, Nfs3, ROOT_CRED, S } from '../../helpers/local.ts'
import { until } from './resync-fixtures.ts'
import { callRaw, statusOf } from './raw-call.ts'

const NFS = { prog: 100003, vers: 3 }


t.test('a reply shipped ahead of a change the standby never got is not replayed after a takeover: the call runs', async (t) => {
  const dir = t.testdir({ export: {}, copy: {} })
  const exportPath = join(dir, 'export')
  const exportsText = `${exportPath} *(rw,insecure,no_root_squash)\n`
  const bBackend: ReadonlyMap<string, BackendFactory> = new Map([['local', (exp, ctx) => new LocalVfs({ root: join(dir, 'copy'), stateDir: join(ctx.stateDir, 'local', String(exp.id)) })]])
  const b = await StandbyNode.open({
    stateDir: join(dir, 'b-state'),
    node: 'b',
    listen: { host: '127.0.0.1', port: 0 },
    exports: parseExports(exportsText, 'exports'),
    serve: { port: 0, host: '127.0.0.1', locking: false },
    log: silentLogger,
    backends: bBackend,
    asPrimary: { standbys: [], mode: 'sync' },
  })
  t.teardown(() => b.close())
  const aRepl = await PrimaryReplication.open({ stateDir: join(dir, 'a-state'), cluster: 'tsnfs', node: 'a', standbys: [{ host: '127.0.0.1', port: b.port }], mode: 'sync', heartbeatMs: 100, timeoutMs: 2000, log: silentLogger })
  const a = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: join(dir, 'a-state'), port: 0, host: '127.0.0.1', locking: false, replication: aRepl })
  t.teardown(() => a.close().catch(() => undefined))
  await until('B joins A', () => aRepl.view().peers[0]?.state === 'streaming')

  const nfs = await Nfs3.connect(t, a.port)
  const root = await nfs.mount(exportPath)
  t.equal((await nfs.create(root, 'before')).status, S.OK, 'a CREATE through A')
  nfs.c.close()
  const pos = aRepl.view().positions[0]
  if (pos === undefined) return t.fail('A replicates one export')
  await until('B has A\'s changes', () => aRepl.view().peers[0]?.acked === pos.applied)

  // The CREATE a client sends (and, its reply lost, sends again): its cache key as the server makes it.
  const xid = 0x6e1d0001
  const args = { where: { dir: { data: root }, name: Buffer.from('ghost') }, how: { mode: 2 as const, verf: Buffer.from('verifier') } }
  const w = new XdrWriter(256)
  CREATE3args.encode(w, args)
  const key = DuplicateRequestCache.key('127.0.0.1', xid, NFS.prog, NFS.vers, NFS3.NFSPROC3_CREATE.proc, w.toBuffer())
  const body = encodeCall(xid, { ...NFS, proc: NFS3.NFSPROC3_CREATE.proc }, CREATE3args, args, authSys(ROOT_CRED))
  const rec = Buffer.concat([frameRecord(body, totalLength(body)), ...body])
  const cachedOk = Buffer.from('the cached OK of a CREATE that never reached B')

  // What A would send for that CREATE ahead of its change; the change never comes (A dies first).
  const c = await StreamCaller.open({ host: '127.0.0.1', port: b.port }, { timeoutMs: 10_000 })
  t.teardown(() => {
    c.close()
  })
  const shipped = c.call({ prog: TSNFS_REPL_PROG.prog, vers: 1, proc: TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs.REPL_DRC_HELD.proc }, repl_drc_held_args, {
    epoch: aRepl.epoch,
    entries: [{ export_id: pos.exportId, seq: pos.applied + 1n, key: Buffer.from(key), reply: cachedOk }],
  }, repl_rs_res)
  const storedOnB = (): boolean => b.service.replies.all().some(([k]) => k === key)
  await until('B has the entry (waiting for its change, or stored)', () => b.service.durableWaits.waiting === 1 || storedOnB())
  t.notOk(storedOnB(), 'not stored: B lacks the change')
  await a.close()

  t.equal((await b.service.takeover({ force: true })).status, 0, 'B: TAKEOVER REPL_OK')
  t.same(await shipped, { status: repl_stat.REPL_BUSY }, 'the entry is refused at the takeover, never stored')
  const served = b.server
  if (served === null) return t.fail('B serves')
  const again = await callRaw(served.port, rec)
  t.notOk(again.includes(cachedOk), 'the retransmission is not answered with the cached reply')
  t.equal(again.readUInt32BE(0), xid, 'B answers the call')
  t.equal(statusOf(again), S.OK, 'B ran the CREATE: OK')
  const nfsB = await Nfs3.connect(t, served.port)
  const rootB = await nfsB.mount(exportPath)
  t.equal((await nfsB.lookup(rootB, 'ghost')).status, S.OK, 'and the file exists on B now')
  nfsB.c.close()
})
