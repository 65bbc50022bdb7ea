/*
 * A mount connects to NFS while MOUNT's EXPORT and MNT run, and unmounts
 * with UMNT while the NFS connection closes (client/session.ts
 * mountAndConnect, umountEndpoint). Overlapped, the failures must read as
 * they did in sequence: a refused MNT is the MountError even when NFS is not
 * there either, and it leaves no NFS connection open on the server; a
 * mount and umount leave neither a connection nor an entry in the server's
 * mount list (MOUNT DUMP).
 */
import t from 'tap'
import { MountError, NfsClient } from '../../client/index.ts'
import { MountClient } from '../../client/mount.ts'
import { RpcTcpTransport } from '../../client/rpc/tcp-transport.ts'
import { closedPort } from '../helpers/ports.ts'
import { startServer } from '../helpers/server.ts'

/** Poll `cond` every 10 ms for up to 10 s (a socket's close reaches the server a moment after the client's). */
async function until(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return true
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return cond()
}

const mountError = async (p: Promise<unknown>): Promise<MountError> => {
  const err = await p.then(() => null, (e: unknown) => e)
  if (!(err instanceof MountError)) throw new Error(`expected a MountError, got ${String(err)}`)
  return err
}

t.test('MNT refused and no NFS at its port: the MNT refusal is the error', async (t) => {
  const fx = await startServer(t)
  const nfs = await closedPort()
  const err = await mountError(NfsClient.mount({ host: '127.0.0.1', exportPath: '/nope' }, { mountport: fx.port, nfsport: nfs }))
  t.equal(err.code, 'MNT3ERR_NOENT')
  t.equal(err.path, '/nope')
})

t.test('MNT refused: the NFS connection made beside it is closed', async (t) => {
  const fx = await startServer(t)
  const err = await mountError(NfsClient.mount({ host: '127.0.0.1', exportPath: '/nope' }, { mountport: fx.port, nfsport: fx.port }))
  t.equal(err.code, 'MNT3ERR_NOENT')
  t.ok(await until(() => fx.server.stats.connectionsOpen === 0), `no connection left open (open: ${String(fx.server.stats.connectionsOpen)})`)
})

t.test('mount then umount: no connection left, and no entry in the mount list', async (t) => {
  const fx = await startServer(t)
  const c = await NfsClient.mount(fx.url('/export'))
  await c.writeFile('/f', Buffer.from('x'))
  await c.umount()
  t.ok(await until(() => fx.server.stats.connectionsOpen === 0), `no connection left open (open: ${String(fx.server.stats.connectionsOpen)})`)
  const m = new MountClient(await RpcTcpTransport.connect('127.0.0.1', fx.port))
  t.teardown(() => m.close())
  t.strictSame(await m.dump(), [], 'UMNT removed the entry MNT made')
})
