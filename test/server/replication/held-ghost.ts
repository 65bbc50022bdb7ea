/*
 * The scene of the REPL_DRC_HELD hazard tests (drc-held-takeover,
 * drc-held-restart): standby B attached to sync primary A, one CREATE made
 * through A and on B, then, as A's epoch, a REPL_DRC_HELD entry sent to B for
 * a CREATE ("ghost") naming a change A never made: B writes it (it does not
 * know yet that the change will not come) and waits for the change.
 */
import type { Test } from 'tap'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { authSys } from '../../../client/rpc/auth.ts'
import { encodeCall } from '../../../server/callback/message.ts'
import { StreamCaller } from '../../../server/callback/stream.ts'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import { silentLogger } from '../../../server/logger.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import { StandbyNode } from '../../../server/replication/standby-node.ts'
import type { StandbyNodeOptions } from '../../../server/replication/standby-node.ts'
import { DuplicateRequestCache } from '../../../server/rpc/drc.ts'
import type { BackendFactory } from '../../../server/backends.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { CREATE3args } from '../../../xdr/generated/nfs3.ts'
import { TSNFS_REPL_PROG, repl_drc_held_args, repl_rs_res } from '../../../xdr/generated/replication.ts'
import type { repl_rs_res as RsRes } from '../../../xdr/generated/replication.ts'
import { frameRecord, totalLength } from '../../../xdr/record.ts'
import { XdrWriter } from '../../../xdr/runtime/writer.ts'
import { NFS3, Nfs3, ROOT_CRED, S } from '../../helpers/local.ts'
import { until } from './resync-fixtures.ts'
import { callRaw, statusOf } from './raw-call.ts'

const NFS = { prog: 100003, vers: 3 }

export interface Ghost {
  exportPath: string
  /** B's options, to open it again over the same state (a restart). */
  bOptions: StandbyNodeOptions
  /** B (the test may replace it by a restarted one: the teardown closes this one). */
  b: StandbyNode
  /** A's NFS server (stopped by the test: A dies). */
  a: { close: () => Promise<void> }
  /** The CREATE's cache key on the server, its call as bytes (xid 0x6e1d0001), and the cached "OK" shipped for it. */
  key: string
  xid: number
  rec: Buffer
  cachedOk: Buffer
  /** B's answer to the REPL_DRC_HELD (pending while B waits for the change). */
  shipped: Promise<RsRes>
}

export async function shipGhost(t: Test): Promise<Ghost> {
  // Our own directory and one teardown that stops everything before removing it (tap would
  // remove a t.testdir() before the teardowns that stop the servers using it).
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-held-ghost-'))
  await mkdir(join(dir, 'export'))
  await mkdir(join(dir, 'copy'))
  const stops: (() => Promise<void>)[] = []
  t.teardown(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  })
  const exportPath = join(dir, 'export')
  const exportsText = `${exportPath} *(rw,insecure,no_root_squash)\n`
  const bBackend: ReadonlyMap<string, BackendFactory> = new Map([['local', (exp, ctx) => new LocalVfs({ root: join(dir, 'copy'), stateDir: join(ctx.stateDir, 'local', String(exp.id)) })]])
  const bOptions: StandbyNodeOptions = {
    stateDir: join(dir, 'b-state'),
    node: 'b',
    listen: { host: '127.0.0.1', port: 0 },
    exports: parseExports(exportsText, 'exports'),
    serve: { port: 0, host: '127.0.0.1', locking: false },
    log: silentLogger,
    backends: bBackend,
    asPrimary: { standbys: [], mode: 'sync' },
  }
  const b = await StandbyNode.open(bOptions)
  const g: Partial<Ghost> & { b: StandbyNode } = { b }
  stops.push(() => g.b.close())
  const aRepl = await PrimaryReplication.open({ stateDir: join(dir, 'a-state'), cluster: 'tsnfs', node: 'a', standbys: [{ host: '127.0.0.1', port: b.port }], mode: 'sync', heartbeatMs: 100, timeoutMs: 2000, log: silentLogger })
  const a = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: join(dir, 'a-state'), port: 0, host: '127.0.0.1', locking: false, replication: aRepl })
  stops.push(() => a.close())
  await until('B joins A', () => aRepl.view().peers[0]?.state === 'streaming')

  const nfs = await Nfs3.connect(t, a.port)
  const root = await nfs.mount(exportPath)
  t.equal((await nfs.create(root, 'before')).status, S.OK, 'a CREATE through A')
  nfs.c.close()
  const pos = aRepl.view().positions[0]
  if (pos === undefined) throw new Error('A replicates one export')
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
  stops.push(() => {
    c.close()
    return Promise.resolve()
  })
  const shipped = c.call({ prog: TSNFS_REPL_PROG.prog, vers: 1, proc: TSNFS_REPL_PROG.versions.TSNFS_REPL_V1.procs.REPL_DRC_HELD.proc }, repl_drc_held_args, {
    epoch: aRepl.epoch,
    entries: [{ export_id: pos.exportId, seq: pos.applied + 1n, key: Buffer.from(key), reply: cachedOk }],
  }, repl_rs_res)
  return Object.assign(g, { exportPath, bOptions, a, key, xid, rec, cachedOk, shipped })
}

/**
 * B, now serving, gets the client's retransmission of the ghost CREATE: it must run it (its own
 * answer, the file made), not answer the cached "OK" for a change it never made.
 */
export async function retransmissionRuns(t: Test, b: StandbyNode, g: Ghost): Promise<void> {
  const served = b.server
  if (served === null) {
    t.fail('B serves')
    return
  }
  const again = await callRaw(served.port, g.rec)
  t.notOk(again.includes(g.cachedOk), 'the retransmission is not answered with the cached reply')
  t.equal(again.readUInt32BE(0), g.xid, 'B answers the call')
  t.equal(statusOf(again), S.OK, 'B ran the CREATE: OK')
  const nfsB = await Nfs3.connect(t, served.port)
  const rootB = await nfsB.mount(g.exportPath)
  t.equal((await nfsB.lookup(rootB, 'ghost')).status, S.OK, 'and the file exists on B now')
  nfsB.c.close()
}
