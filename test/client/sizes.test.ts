/*
 * Transfer sizes and the receive limit (issue 11 point 1): a server that
 * advertises 64 MiB transfers is asked 1 MiB, as the Linux client asks; a
 * reply over the limit fails its call alone, at once; a hard mount says
 * when its server stops and starts answering.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { NfsClient } from '../../client/nfs-client.ts'
import { resolveOptions } from '../../client/options.ts'
import { RpcError } from '../../client/rpc/errors.ts'
import { RpcTcpTransport } from '../../client/rpc/tcp-transport.ts'
import { MAX_DIR_SIZE, REPLY_HEADROOM, limitsOf, readdirplusMax } from '../../client/session.ts'
import type { FSINFO3resok } from '../../xdr/generated/nfs3.ts'
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import { startServer } from '../helpers/server.ts'
import { startProxy } from './proxy.ts'

const MIB = 1024 * 1024
const SIXTY_FOUR_MIB = 64 * MIB
const NULL = NFS_PROGRAM.versions.NFS_V3.procs.NFSPROC3_NULL
const READ_PROC = NFS_PROGRAM.versions.NFS_V3.procs.NFSPROC3_READ.proc

function fsinfo(o: Partial<FSINFO3resok>): FSINFO3resok {
  return {
    obj_attributes: null,
    rtmax: MIB,
    rtpref: MIB,
    rtmult: 4096,
    wtmax: MIB,
    wtpref: MIB,
    wtmult: 4096,
    dtpref: 8192,
    maxfilesize: 1n << 62n,
    time_delta: { seconds: 0, nseconds: 1 },
    properties: 0,
    ...o,
  }
}

t.test('limitsOf: the option or the preference, never over the maximum nor 1 MiB (32 KiB on UDP)', async t => {
  const ganesha = fsinfo({ rtmax: SIXTY_FOUR_MIB, rtpref: SIXTY_FOUR_MIB, wtmax: SIXTY_FOUR_MIB, wtpref: SIXTY_FOUR_MIB, dtpref: 16384 })
  const l = limitsOf(ganesha, resolveOptions())
  t.strictSame([l.rsize, l.wsize, l.dirsize], [MIB, MIB, 16384], 'a 64 MiB preference is asked as 1 MiB')
  t.equal(l.maxReply, MIB + REPLY_HEADROOM, 'the receive limit admits a full READ')
  t.strictSame(
    [limitsOf(ganesha, resolveOptions({ rsize: 4 * MIB, wsize: 300_000 })).rsize, limitsOf(ganesha, resolveOptions({ wsize: 300_000 })).wsize],
    [MIB, 299_008],
    'asked sizes: capped at 1 MiB, rounded down to 4 KiB',
  )
  t.equal(limitsOf(fsinfo({ rtmax: 65536, rtpref: 32768 }), resolveOptions({ rsize: MIB })).rsize, 65536, 'asked more than the preference: the maximum caps it')
  t.equal(limitsOf(fsinfo({ rtpref: 32768 }), resolveOptions()).rsize, 32768, 'nothing asked: the preference')
  t.equal(limitsOf(fsinfo({ rtpref: 0, rtmax: 0 }), resolveOptions()).rsize, MIB, 'a server that states nothing gets 1 MiB')
  t.equal(limitsOf(ganesha, resolveOptions({ proto: 'udp' })).rsize, 32 * 1024, 'UDP: a reply fits one datagram')
  const dirs = limitsOf(fsinfo({ dtpref: SIXTY_FOUR_MIB }), resolveOptions())
  t.equal(dirs.dirsize, MAX_DIR_SIZE, 'dtpref capped')
  t.equal(dirs.maxReply, readdirplusMax(MAX_DIR_SIZE) + REPLY_HEADROOM, 'the limit admits the largest READDIRPLUS asked')
  t.equal(limitsOf(fsinfo({ rtmax: 8192, rtpref: 8192, dtpref: 65536 }), resolveOptions()).dirsize, 8192, 'dirsize at most rsize')
  t.equal(limitsOf(fsinfo({}), resolveOptions({ dirsize: 10 })).dirsize, 1024, 'dirsize at least 1 KiB')
})

t.test('a server advertising 64 MiB transfers: the client asks 1 MiB and copies work both ways', async t => {
  const fx = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n', {
    nfs3Limits: { rtmax: SIXTY_FOUR_MIB, rtpref: SIXTY_FOUR_MIB, wtmax: SIXTY_FOUR_MIB, wtpref: SIXTY_FOUR_MIB },
    // So that it would accept (and send) 64 MiB records, as Ganesha does.
    rpcLimits: { maxRecordSize: SIXTY_FOUR_MIB + MIB },
  })
  const c = await NfsClient.mount(fx.url('/export'))
  t.teardown(() => c.umount())
  t.equal(c.limits.fsinfo.rtpref, SIXTY_FOUR_MIB, 'the server prefers 64 MiB')
  t.strictSame([c.limits.rsize, c.limits.wsize], [MIB, MIB])
  t.equal(c.nfs.transport.maxReplySize, c.limits.maxReply, 'the transport takes the limit from FSINFO')
  const data = randomBytes(20 * MIB + 12345)
  await pipeline(Readable.from([data.subarray(0, 7 * MIB), data.subarray(7 * MIB)]), c.createWriteStream('/big'))
  // A second mount reads it, so nothing comes from the writer's cache.
  const reader = await NfsClient.mount(fx.url('/export'))
  t.teardown(() => reader.umount())
  const parts: Buffer[] = []
  await pipeline(
    reader.createReadStream('/big'),
    new Writable({
      write(chunk: Buffer, _e, cb) {
        parts.push(chunk)
        cb()
      },
    }),
  )
  t.ok(Buffer.concat(parts).equals(data), '20 MiB read back byte-exact')
  t.ok((c.stats().nfs.WRITE ?? 0) >= 21, `at least 21 WRITEs of at most 1 MiB (${String(c.stats().nfs.WRITE)})`)
  t.ok((reader.stats().nfs.READ ?? 0) >= 21, `at least 21 READs of at most 1 MiB (${String(reader.stats().nfs.READ)})`)
  t.strictSame([reader.stats().rpc.retransmits, reader.stats().rpc.reconnects], [0, 0], 'no call was re-sent')
})

t.test('a READ reply over the limit fails that READ with RPC_REPLY_TOO_LARGE, once; the next call works', async t => {
  const fx = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const proxy = await startProxy(t, fx.port)
  const c = await NfsClient.mount({ host: '127.0.0.1', exportPath: '/export' }, { nfsport: proxy.port, mountport: fx.port, timeoutMs: 60_000, retrans: 5 })
  t.teardown(() => c.umount())
  // Written by another mount: c has nothing of it cached and must READ.
  const other = await NfsClient.mount(fx.url('/export'))
  t.teardown(() => other.umount())
  await other.writeFile('/f', Buffer.from('hello'))
  let oversized = 0
  proxy.intercept = call => {
    if (call.readUInt32BE(20) !== READ_PROC) return null
    oversized++
    // The call's xid and then 2 MiB: a reply no READ of this mount can draw.
    const reply = Buffer.alloc(2 * MIB)
    call.copy(reply, 0, 0, 4)
    return reply
  }
  const err = await c.readFile('/f').then(() => null, (e: unknown) => e)
  t.ok(err instanceof RpcError, `an RpcError (${String(err)})`)
  t.match(err, { code: 'RPC_REPLY_TOO_LARGE', message: /exceeds the receive limit of/ })
  t.equal(oversized, 1, 'sent once: not retried into a loop')
  t.strictSame([c.stats().rpc.retransmits, c.stats().rpc.reconnects, c.stats().rpc.timeouts], [0, 0, 0], 'no timeout, no re-send, no reconnect')
  proxy.intercept = null
  t.ok((await c.stat('/f')).isFile(), 'the next call on the same connection works')
  t.equal((await c.readFile('/f')).toString(), 'hello', 'and so does a READ')
})

t.test('a hard mount logs "not responding, still trying" once, and "OK" when its server is back', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-hard-'))
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true })
  })
  const exportsText = `${dir} *(rw,insecure,no_root_squash)\n`
  const first = await startServer(t, exportsText)
  const lines: string[] = []
  const c = await NfsClient.mount(first.url(dir), { hard: true, timeoutMs: 40, retrans: 1, maxTimeoutMs: 80, maxReconnectDelayMs: 40, log: { warn: msg => lines.push(msg) } })
  t.teardown(() => c.umount())
  await c.writeFile('/f', Buffer.from('before'))
  await first.server.close()
  let done = false
  const read = c.readFile('/f').finally(() => {
    done = true
  })
  while (lines.length === 0) await sleep(10)
  t.strictSame(lines, ['nfs: server 127.0.0.1 not responding, still trying'])
  // Several more major timeouts pass: still one line.
  const timeouts = c.stats().rpc.timeouts
  while (c.stats().rpc.timeouts < timeouts + 4) await sleep(10)
  t.equal(lines.length, 1, 'logged once')
  t.equal(done, false, 'the call still waits')
  await startServer(t, exportsText, { port: first.port, stateDir: first.stateDir })
  t.equal((await read).toString(), 'before', 'the call completes once the server is back')
  t.strictSame(lines, ['nfs: server 127.0.0.1 not responding, still trying', 'nfs: server 127.0.0.1 OK'])
})

t.test('RpcTcpTransport: a soft transport logs nothing; a hard one logs through its own log', async t => {
  const fx = await startServer(t)
  const proxy = await startProxy(t, fx.port)
  const soft: string[] = []
  const hard: string[] = []
  const s = await RpcTcpTransport.connect('127.0.0.1', proxy.port, { policy: { timeoutMs: 20, retrans: 1, hard: false, maxReconnectDelayMs: 20 }, log: { warn: m => soft.push(m) } })
  t.teardown(() => s.close())
  const h = await RpcTcpTransport.connect('127.0.0.1', proxy.port, { policy: { timeoutMs: 20, retrans: 1, hard: true, maxTimeoutMs: 40, maxReconnectDelayMs: 20 }, log: { warn: m => hard.push(m) } })
  t.teardown(() => h.close())
  proxy.refuse = true
  proxy.cut()
  await t.rejects(s.call(NFS_PROGRAM.prog, 3, NULL, undefined), { code: 'RPC_TIMEOUT' })
  t.strictSame(soft, [], 'soft: the error says it')
  const call = h.call(NFS_PROGRAM.prog, 3, NULL, undefined)
  while (h.responding) await sleep(5)
  proxy.refuse = false
  await call
  t.strictSame(hard, ['nfs: server 127.0.0.1 not responding, still trying', 'nfs: server 127.0.0.1 OK'])
  t.equal(h.responding, true)
})
