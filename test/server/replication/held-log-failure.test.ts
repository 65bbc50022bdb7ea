/*
 * A primary (sync or async) builds a non-idempotent call's reply before its change is
 * flushed in the local log (vfs/replica/held-changes.ts), so the reply can
 * ride in the change's APPEND (sync) and the backend's commit of the change
 * runs beside the log's write (both); what it promises holds only once that flush is
 * done. When the flush fails (the log fails: EIO), the reply must not go out:
 * over a real server with the change log's writes failing on demand (as
 * change-log.test.ts injects them), a CREATE gets no answer, its duplicate
 * request cache entry is dropped, and a retransmission of the same xid runs
 * the call again (the file is there: EXIST), instead of an "OK" for a change
 * the log never made durable.
 */
import t from 'tap'
import { connect } from 'node:net'
import { join } from 'node:path'
import { authSys } from '../../../client/rpc/auth.ts'
import { encodeCall } from '../../../server/callback/message.ts'
import { parseExports } from '../../../server/exports/parse.ts'
import { createServer } from '../../../server/index.ts'
import { silentLogger } from '../../../server/logger.ts'
import { PrimaryReplication } from '../../../server/replication/primary.ts'
import type { LogIo } from '../../../server/replication/change-log.ts'
import { fdatasync, writeAll } from '../../../server/replication/log-segment.ts'
import { CREATE3args } from '../../../xdr/generated/nfs3.ts'
import { frameRecord, totalLength } from '../../../xdr/record.ts'
import { NFS3, Nfs3, ROOT_CRED, S, attrs } from '../../helpers/local.ts'
import { statusOf } from './raw-call.ts'

for (const mode of ['sync', 'async'] as const) t.test(`${mode} mode: a held reply whose change the local log failed to flush is not sent; a retransmission runs the call again`, async (t) => {
  const dir = t.testdir({ export: {} })
  const exportPath = join(dir, 'export')
  const exportsText = `${exportPath} *(rw,insecure,no_root_squash)\n`
  let failing = false
  const io: LogIo = {
    durableWrites: true,
    async write(fd, data, position) {
      if (failing) throw Object.assign(new Error('EIO: injected write failure'), { code: 'EIO' })
      await writeAll(fd, data, position)
    },
    sync: (fd) => fdatasync(fd),
  }
  // No standby: the reply is still held for the local log's flush, in either mode (async mode
  // holds it so that the backend's commit of the change runs beside the log's write).
  const repl = await PrimaryReplication.open({ stateDir: join(dir, 'state'), cluster: 'tsnfs', node: 'a', standbys: [], mode, log: silentLogger, logIo: io })
  const server = await createServer({ exports: parseExports(exportsText, 'exports'), stateDir: join(dir, 'state'), port: 0, host: '127.0.0.1', locking: false, replication: repl })
  t.teardown(() => server.close().catch(() => undefined))
  const nfs = await Nfs3.connect(t, server.port)
  const root = await nfs.mount(exportPath)
  t.equal((await nfs.create(root, 'before')).status, S.OK, 'while the log works: created and answered')
  nfs.c.close()

  failing = true
  // GUARDED (mode 1): run again on a name that exists, it answers EXIST.
  const body = encodeCall(0x10f0001, { prog: 100003, vers: 3, proc: NFS3.NFSPROC3_CREATE.proc }, CREATE3args, { where: { dir: { data: root }, name: Buffer.from('lost') }, how: { mode: 1, obj_attributes: attrs({}) } }, authSys(ROOT_CRED))
  const rec = Buffer.concat([frameRecord(body, totalLength(body)), ...body])
  const s = connect({ host: '127.0.0.1', port: server.port })
  t.teardown(() => s.destroy())
  const replies: Buffer[] = []
  let got = Buffer.alloc(0)
  s.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d])
    while (got.length >= 4 && got.length >= 4 + (got.readUInt32BE(0) & 0x7fffffff)) {
      const len = got.readUInt32BE(0) & 0x7fffffff
      replies.push(got.subarray(4, 4 + len))
      got = got.subarray(4 + len)
    }
  })
  s.write(rec)
  // The log's write fails within a few ms; give the reply far longer than that to (wrongly) arrive.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.equal(replies.length, 0, 'no reply: its change never became durable in the log')
  s.write(rec)
  const end = Date.now() + 10_000
  while (replies.length === 0 && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(replies.length, 1, 'the retransmission (same xid) is answered: the cache entry was dropped, not kept in progress')
  t.equal(statusOf(replies[0] ?? Buffer.alloc(28)), S.EXIST, 'the call ran again: the file is there (EXIST), not a replayed OK')
})
