import t from 'tap'
import { MountError, NfsClient, RpcError, UrlError, getPort, parseNfsUrl, splitExportPath } from '../../client/index.ts'
import { MountClient } from '../../client/mount.ts'
import { dumpPorts } from '../../client/portmap.ts'
import { connectTransport } from '../../client/rpc/connect.ts'
import { startServer } from '../helpers/server.ts'

const TWO_EXPORTS = '/export *(rw,insecure,root_squash,backend=memory)\n/export/deep *(rw,insecure,backend=memory)\n'

t.test('mount through the portmapper (the server answers PORTMAP on its own port)', async t => {
  const fx = await startServer(t)
  const c = await NfsClient.mount(`nfs://127.0.0.1/export?portmapport=${fx.port}`)
  t.teardown(() => c.umount())
  t.strictSame(c.stats().portmap, { GETPORT: 2 })
  t.equal(c.exportPath, '/export')
  t.ok(c.limits.rsize > 0 && c.limits.rsize <= c.limits.fsinfo.rtmax)
  t.ok(c.limits.wsize <= c.limits.fsinfo.wtmax)
  t.ok((await c.stat('/')).isDirectory())
  const ports = await dumpPorts({ host: '127.0.0.1', portmapPort: fx.port, protocol: 'tcp' })
  t.ok(ports.some(p => p.prog === 100003 && p.vers === 3 && p.protocol === 'tcp' && p.port === fx.port))
  await t.rejects(getPort({ host: '127.0.0.1', portmapPort: fx.port, protocol: 'tcp' }, 399_999, 1), { code: 'RPC_PROG_NOT_REGISTERED' })
})

t.test('explicit ports; rsize/wsize capped by FSINFO', async t => {
  const fx = await startServer(t)
  const c = await NfsClient.mount({ host: '127.0.0.1', exportPath: '/export', path: '/x' }, { nfsport: fx.port, mountport: fx.port, rsize: 1 << 30, wsize: 4096 })
  t.teardown(() => c.umount())
  t.equal(c.path, '/x')
  t.equal(c.limits.rsize, c.limits.fsinfo.rtmax)
  t.equal(c.limits.wsize, 4096)
  t.strictSame(c.stats().portmap, {})
})

t.test('the URL port alone: MOUNT on the same port when no portmapper answers', async t => {
  const fx = await startServer(t)
  const c = await NfsClient.mount(`nfs://127.0.0.1:${fx.port}/export/a/b?portmapport=1`)
  t.teardown(() => c.umount())
  t.equal(c.exportPath, '/export')
  t.equal(c.path, '/a/b')
})

t.test('a bad export is a MountError MNT3ERR_NOENT; UMNT on umount; DUMP lists mounts', async t => {
  const fx = await startServer(t)
  await t.rejects(NfsClient.mount({ host: '127.0.0.1', exportPath: '/nope' }, { nfsport: fx.port, mountport: fx.port }), { name: 'MountError', code: 'MNT3ERR_NOENT', errno: 'ENOENT', path: '/nope' })
  await t.rejects(NfsClient.mount(fx.url('/nope')), MountError)
  const c = await NfsClient.mount(fx.url('/export'))
  const m = new MountClient(await connectTransport('127.0.0.1', fx.port, { protocol: 'tcp', cred: { uid: 0, gid: 0 } }))
  t.teardown(() => m.close())
  await m.null()
  t.ok((await m.dump()).some(e => e.directory === '/export'))
  await c.umount()
  await c.umount()
  t.notOk((await m.dump()).some(e => e.directory === '/export'), 'UMNT removed the entry')
  t.equal(c.stats().mount.UMNT, 1)
})

t.test('EXPORT list, and the URL path split on the longest export', async t => {
  const fx = await startServer(t, TWO_EXPORTS)
  t.strictSame(await NfsClient.exportList('127.0.0.1', { portmapPort: fx.port }), [ // '*' goes out as no group
    { dir: '/export', groups: [] },
    { dir: '/export/deep', groups: [] },
  ])
  t.strictSame((await NfsClient.exportList(fx.url('/export'))).length, 2)
  const c = await NfsClient.mount(fx.url('/export/deep', '/in/side'))
  t.teardown(() => c.umount())
  t.equal(c.exportPath, '/export/deep')
  t.equal(c.path, '/in/side')
  t.strictSame(splitExportPath('/exportx/a', ['/export']), null, 'whole components only')
  t.strictSame(splitExportPath('/a/b', ['/']), { exportPath: '/', rest: '/a/b' })
  t.strictSame(splitExportPath('/e', ['/e/']), { exportPath: '/e', rest: '/' })
})

t.test('parseNfsUrl', async t => {
  t.strictSame(parseNfsUrl('nfs://[::1]:2049/ex/p%20q?uid=5&gid=6&gids=1,2&proto=udp&timeo=7&retrans=1&hard&actimeo=2&noac=0&lookupcache=pos&rsize=8192&wsize=4096&dirsize=1024&readdirplus=0&auth=none&version=3&mountport=3&nfsport=4&portmapport=5&acregmin=1&acregmax=2&acdirmin=3&acdirmax=4.5'), {
    host: '::1',
    path: '/ex/p q',
    options: {
      nfsport: 4, uid: 5, gid: 6, gids: [1, 2], proto: 'udp', timeoutMs: 700, retrans: 1, hard: true, actimeo: 2, noac: false,
      lookupcache: 'positive', rsize: 8192, wsize: 4096, dirsize: 1024, readdirplus: false, auth: 'none', mountport: 3, portmapPort: 5,
      acregmin: 1, acregmax: 2, acdirmin: 3, acdirmax: 4.5,
    },
  })
  t.strictSame(parseNfsUrl('nfs://1000@host').options, { uid: 1000 })
  t.equal(parseNfsUrl('nfs://host').path, '/')
  t.equal(parseNfsUrl('nfs://host/x?soft').options.hard, false)
  t.strictSame(parseNfsUrl('nfs://h/x?clientaddr=127.0.0.2&callername=c1&nlmport=7&lockaddr=127.0.0.3&lockport=8&lockportmapport=9&lockstatedir=%2Ftmp%2Fs&nolock').options, {
    clientAddress: '127.0.0.2', callerName: 'c1', nlmport: 7, lockAddress: '127.0.0.3', lockPort: 8, lockPortmapPort: 9, lockStateDir: '/tmp/s', lock: false,
  }, 'the lock options')
  t.equal(parseNfsUrl('nfs://host/x?lock=1').options.lock, true)
  for (const [url, code] of [
    ['http://host/x', 'NFS_URL_INVALID'],
    ['nfs:///x', 'NFS_URL_INVALID'],
    ['not a url', 'NFS_URL_INVALID'],
    ['nfs://h/%zz', 'NFS_URL_INVALID'],
    ['nfs://h/x?bogus=1', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?uid=-1', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?uid=1.5', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?proto=sctp', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?hard=maybe', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?nlmport=x', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?version=4', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?lookupcache=some', 'NFS_URL_BAD_OPTION'],
    ['nfs://h/x?auth=krb5', 'NFS_URL_BAD_OPTION'],
  ] as const) {
    t.throws(() => parseNfsUrl(url), { name: 'UrlError', code }, url)
  }
  t.ok(new UrlError('NFS_URL_INVALID', 'x') instanceof Error)
})

t.test('a port with nothing behind it fails the mount with a typed RpcError', async t => {
  await t.rejects(NfsClient.mount({ host: '127.0.0.1', exportPath: '/x' }, { nfsport: 1, mountport: 1 }), { code: 'RPC_CONNECTION_CLOSED' })
  await t.rejects(NfsClient.mount('nfs://127.0.0.1/x?portmapport=1'), RpcError)
})
