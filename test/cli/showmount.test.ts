/*
 * tsnfs showmount against a whole server: the export list with its client
 * groups, mount points after MNT, through the portmapper (here: the server's
 * own PORTMAP on its port) or straight to --port, and its failures.
 */
import t from 'tap'
import { MOUNT_PROGRAM } from '../../xdr/generated/mount.ts'
import { connect, mountRoot, startServer, MOUNT3 } from '../helpers/server.ts'
import { b } from '../helpers/e2e.ts'
import { formatMounts, splitHostPort } from '../../cli/showmount.ts'
import { tsnfs } from './cli.ts'

const LIST = `
/export     *(rw,insecure,backend=memory)
/lab        10.0.0.0/8(ro,backend=memory) *.lab.test(rw,insecure,backend=memory) 127.0.0.1(rw,insecure,backend=memory)
/a/b        127.0.0.1(rw,insecure,backend=memory)
`

t.test('-e: the export list, via --port and via the portmapper', async (t) => {
  const { port } = await startServer(t, LIST)
  const expected = 'Export list for 127.0.0.1:\n/export (everyone)\n/lab    10.0.0.0/8,*.lab.test,127.0.0.1\n/a/b    127.0.0.1\n'
  const direct = await tsnfs(['showmount', '-e', '--port', String(port), '127.0.0.1'])
  t.equal(direct.code, 0, direct.stderr)
  t.equal(direct.stdout, expected)
  const viaPortmapper = await tsnfs(['showmount', '-e', `127.0.0.1:${String(port)}`])
  t.equal(viaPortmapper.code, 0, viaPortmapper.stderr)
  t.equal(viaPortmapper.stdout, expected, 'GETPORT of MOUNT v3/tcp on the given portmapper port')
})

t.test('-a, -d and the default host list follow MNT and UMNT', async (t) => {
  const { port } = await startServer(t, LIST)
  const args = ['--port', String(port), '127.0.0.1']
  t.equal((await tsnfs(['showmount', '-a', ...args])).stdout, 'All mount points on 127.0.0.1:\n', 'nothing mounted')
  const c = await connect(t, port)
  await mountRoot(c, '/export')
  await mountRoot(c, '/a/b')
  await mountRoot(c, '/export')
  t.equal((await tsnfs(['showmount', '-a', ...args])).stdout, 'All mount points on 127.0.0.1:\n127.0.0.1:/a/b\n127.0.0.1:/export\n', 'sorted, no duplicates')
  // -d and the host list format the same DUMP reply (in process: each spawn costs a second).
  const dump = await c.call(MOUNT_PROGRAM.prog, 3, MOUNT3.MOUNTPROC3_DUMP, undefined)
  t.equal(formatMounts('127.0.0.1', 'directories', dump), 'Directories on 127.0.0.1:\n/a/b\n/export\n')
  t.equal(formatMounts('127.0.0.1', 'hosts', dump), 'Hosts on 127.0.0.1:\n127.0.0.1\n')
  await c.call(MOUNT_PROGRAM.prog, 3, MOUNT3.MOUNTPROC3_UMNT, b('/a/b'))
  t.equal((await tsnfs(['showmount', '-a', ...args])).stdout, 'All mount points on 127.0.0.1:\n127.0.0.1:/export\n', 'after UMNT')
})

t.test('HOST[:PORT] forms', async (t) => {
  t.same(splitHostPort('server'), { host: 'server', port: undefined })
  t.same(splitHostPort('server:2049'), { host: 'server', port: 2049 })
  t.same(splitHostPort('[::1]:111'), { host: '::1', port: 111 })
  t.same(splitHostPort('[::1]'), { host: '::1', port: undefined })
  t.same(splitHostPort('fe80::1'), { host: 'fe80::1', port: undefined }, 'a bare IPv6 address has no port')
  t.throws(() => splitHostPort('server:http'), /not a port number: http/)
})

t.test('failures: nobody listening, usage', async (t) => {
  const { port, server } = await startServer(t, LIST)
  await server.close()
  const down = await tsnfs(['showmount', '-e', '--port', String(port), '127.0.0.1'])
  t.equal(down.code, 1)
  t.equal(down.stderr, `tsnfs: MOUNT at 127.0.0.1:${String(port)}: connection refused\n`, 'names what it tried')
  const noPortmapper = await tsnfs(['showmount', '-e', `127.0.0.1:${String(port)}`])
  t.equal(noPortmapper.stderr, `tsnfs: portmapper at 127.0.0.1:${String(port)}: connection refused\n`)
  const usage = await tsnfs(['showmount'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /usage: tsnfs showmount/)
  const badPort = await tsnfs(['showmount', '-e', '127.0.0.1:0'])
  t.equal(badPort.code, 1)
  t.match(badPort.stderr, /not a port number: 0/)
})
