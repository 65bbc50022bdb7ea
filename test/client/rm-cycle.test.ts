/*
 * A recursive removal through a server whose LOOKUP of a name gives back the
 * directory itself (a buggy or hostile server, or a proxy between: here the
 * proxy turns LOOKUP "self" into LOOKUP "."). Each level would list the same
 * name again, and the removal would go down for ever. The client stops with
 * ELOOP at the first directory that is one of those it is inside, as fts
 * reports a directory cycle to rm(1).
 */
import t from 'tap'
import { NfsClient } from '../../client/index.ts'
import { isNfsError } from '../../client/errors.ts'
import { startServer } from '../helpers/server.ts'
import { nfsArgsAt, startProxy } from './proxy.ts'

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const LOOKUP = 3

t.test('rm -r of a directory whose entry "self" leads back to it: ELOOP, not a descent for ever', async (t) => {
  const fx = await startServer(t, EXPORTS)
  const direct = await NfsClient.mount(fx.url('/export'), {})
  t.teardown(() => direct.umount())
  await direct.mkdir('/d/self', { recursive: true })
  await direct.writeFile('/d/keep', Buffer.from('x'))
  const proxy = await startProxy(t, fx.port)
  let turned = 0
  proxy.rewrite = (call) => {
    const at = nfsArgsAt(call, LOOKUP)
    if (at < 0) return call
    // diropargs3: nfs_fh3 (opaque<64>), then the name (string: length, bytes padded to 4).
    const nameAt = at + 4 + Math.ceil(call.readUInt32BE(at) / 4) * 4
    if (call.readUInt32BE(nameAt) !== 4 || call.toString('latin1', nameAt + 4, nameAt + 8) !== 'self') return call
    const out = Buffer.from(call)
    out.writeUInt32BE(1, nameAt)
    out.write('.\0\0\0', nameAt + 4, 'latin1')
    turned++
    return out
  }
  const c = await NfsClient.mount(`nfs://127.0.0.1/export?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`, {})
  t.teardown(() => c.umount())
  t.same((await c.stat('/d/self')).fileid, (await c.stat('/d')).fileid, 'through the proxy, /d/self is /d')
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>((resolve) => { timer = setTimeout(() => { resolve('not settled within 10 s: the removal went down for ever') }, 10_000) })
  const err = await Promise.race([c.rm('/d', { recursive: true }).then(() => null, (e: unknown) => e), late])
  clearTimeout(timer)
  t.ok(isNfsError(err, 'NFS_CLIENT_ELOOP'), `NFS_CLIENT_ELOOP (${String(err)})`)
  t.match(err, { errno: 'ELOOP', procedure: 'rm', path: '/d/self' })
  t.ok(turned >= 1, 'LOOKUPs of "self" were turned into "."')
  t.ok((await direct.readdir('/d')).includes('self'), 'the directory and its entry "self" are still there (nothing was removed past the cycle)')
})
