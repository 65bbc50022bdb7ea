/*
 * READ replies that break RFC 1813 §3.3.6 (a buggy or hostile server, or a
 * proxy between): more data than the call asked for, or a count that is not
 * the data's length. Taken as they came, the extra bytes would land past the
 * block asked for (a cached block of the wrong size, a download's next block
 * written over). The client fails such a READ with EIO, as Linux does for a
 * count that does not match its data, and the next good READ works. A
 * READLINK whose target holds a NUL (no path does) fails the same way.
 */
import t from 'tap'
import type { Test } from 'tap'
import { NfsClient } from '../../client/index.ts'
import { isNfsError } from '../../client/errors.ts'
import { startServer } from '../helpers/server.ts'
import { nfsArgsAt, startProxy } from './proxy.ts'
import type { TcpProxy } from './proxy.ts'
import { KIB, random } from './file-helpers.ts'

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const READ = 6
const BS = 64 * KIB

/** Where READ3resok's count is in an accepted, successful READ reply with attributes, else -1. */
function readCountAt(reply: Buffer): number {
  // xid, REPLY, MSG_ACCEPTED, verf (flavor, length, body), SUCCESS; then nfsstat3 and post_op_attr.
  const statAt = 20 + Math.ceil(reply.readUInt32BE(16) / 4) * 4
  if (reply.readUInt32BE(statAt) !== 0 || reply.readUInt32BE(statAt + 4) !== 0) return -1
  const hasAttr = reply.readUInt32BE(statAt + 8) === 1
  return statAt + 12 + (hasAttr ? 84 : 0)
}

async function setup(t: Test): Promise<{ data: Buffer; proxy: TcpProxy; reads: Set<number>; url: string }> {
  const fx = await startServer(t, EXPORTS)
  const data = random(3 * BS)
  const writer = await NfsClient.mount(fx.url('/export'), {})
  t.teardown(() => writer.umount())
  await writer.writeFile('/f', data)
  const proxy = await startProxy(t, fx.port)
  const reads = new Set<number>()
  const url = `nfs://127.0.0.1/export?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`
  return { data, proxy, reads, url }
}

t.test('a READ answered with more data than asked fails with EIO; the next good one works', async (t) => {
  const { data, proxy, url } = await setup(t)
  let asked = 0
  // The server is asked for 1,000 bytes more than the client asked: it answers them.
  proxy.rewrite = (call) => {
    const at = nfsArgsAt(call, READ)
    if (at < 0) return call
    const countAt = at + 4 + Math.ceil(call.readUInt32BE(at) / 4) * 4 + 8
    const out = Buffer.from(call)
    out.writeUInt32BE(call.readUInt32BE(countAt) + 1000, countAt)
    asked++
    return out
  }
  const c = await NfsClient.mount(url, { rsize: BS, wsize: BS })
  t.teardown(() => c.umount())
  const err = await c.readFile('/f').then(() => null, (e: unknown) => e)
  t.ok(isNfsError(err, 'NFS3ERR_IO'), `NFS3ERR_IO (${String(err)})`)
  t.match(err, { errno: 'EIO', procedure: 'READ' })
  t.ok(asked >= 1, 'the READ went out asking for more')
  proxy.rewrite = null
  const back = await c.readFile('/f')
  t.ok(back.equals(data), 'read again through a good server: byte-exact')
})

t.test('a READ whose count is not its data\'s length fails with EIO', async (t) => {
  const { data, proxy, reads, url } = await setup(t)
  proxy.rewrite = (call) => {
    if (nfsArgsAt(call, READ) >= 0) reads.add(call.readUInt32BE(0))
    return call
  }
  let lied = 0
  proxy.rewriteReply = (reply) => {
    if (!reads.has(reply.readUInt32BE(0))) return reply
    const at = readCountAt(reply)
    if (at < 0 || lied > 0) return reply
    const out = Buffer.from(reply)
    out.writeUInt32BE(reply.readUInt32BE(at) - 1, at)
    lied++
    return out
  }
  const c = await NfsClient.mount(url, { rsize: BS, wsize: BS })
  t.teardown(() => c.umount())
  const err = await c.readFile('/f').then(() => null, (e: unknown) => e)
  t.ok(isNfsError(err, 'NFS3ERR_IO'), `NFS3ERR_IO (${String(err)})`)
  t.equal(lied, 1, 'one reply said a count one short of its data')
  const back = await c.readFile('/f')
  t.ok(back.equals(data), 'the next READs, told the truth: byte-exact')
})

t.test('a READLINK whose target holds a NUL fails with EIO', async (t) => {
  const { proxy, url } = await setup(t)
  const direct = await NfsClient.mount(url, {})
  t.teardown(() => direct.umount())
  await direct.symlink('target-abcd', '/l')
  t.equal(await direct.readlink('/l'), 'target-abcd', 'told the truth: the target')
  let lied = 0
  proxy.rewriteReply = (reply) => {
    const at = reply.indexOf('target-abcd')
    if (at < 0) return reply
    const out = Buffer.from(reply)
    out.write('target-a\0cd', at, 'latin1')
    lied++
    return out
  }
  const c = await NfsClient.mount(url, {})
  t.teardown(() => c.umount())
  const err = await c.readlink('/l').then(() => null, (e: unknown) => e)
  t.ok(isNfsError(err, 'NFS3ERR_IO'), `NFS3ERR_IO (${String(err)})`)
  t.match(err, { errno: 'EIO', procedure: 'READLINK' })
  t.ok(lied >= 1, 'the target was changed on the way')
})
