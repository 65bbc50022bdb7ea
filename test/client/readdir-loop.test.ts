/*
 * A server whose READDIR cookies lead back to a page already read (a buggy
 * or hostile server, or a proxy between): the listing would go round for
 * ever, gathering the same entries until memory runs out, in the library and
 * in the mount, whose listings come from the same pages. Linux's client
 * stops such a listing with ELOOP ("directory contains a readdir loop");
 * ours does too: a listing never asks for a cookie it asked for before.
 */
import t from 'tap'
import type { Test } from 'tap'
import { NfsClient } from '../../client/index.ts'
import { isNfsError } from '../../client/errors.ts'
import { startServer } from '../helpers/server.ts'
import { nfsArgsAt, startProxy } from './proxy.ts'
import type { TcpProxy } from './proxy.ts'

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const READDIR = 16
const READDIRPLUS = 17

/** Every READDIR and READDIRPLUS after the first of a listing asks for `cookie` instead (0: the first page again). */
function sendBackTo(proxy: TcpProxy, cookie: (asked: bigint) => bigint): { rewritten: number } {
  const seen = { rewritten: 0 }
  proxy.rewrite = (call) => {
    const at = Math.max(nfsArgsAt(call, READDIR), nfsArgsAt(call, READDIRPLUS))
    if (at < 0) return call
    // READDIR3args / READDIRPLUS3args: nfs_fh3 (opaque<64>), cookie (uint64), cookieverf (8 bytes), ...
    const cookieAt = at + 4 + Math.ceil(call.readUInt32BE(at) / 4) * 4
    const asked = call.readBigUInt64BE(cookieAt)
    if (asked === 0n) return call
    const out = Buffer.from(call)
    out.writeBigUInt64BE(cookie(asked), cookieAt)
    seen.rewritten++
    return out
  }
  return seen
}

async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`not settled within ${ms} ms: the listing went round`)) }, ms)
  })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

async function setup(t: Test): Promise<{ direct: NfsClient; looped: NfsClient; proxy: TcpProxy }> {
  const fx = await startServer(t, EXPORTS)
  const direct = await NfsClient.mount(fx.url('/export'), {})
  t.teardown(() => direct.umount())
  await direct.mkdir('/d')
  // Long names and a small dirsize: the listing takes many pages.
  for (let i = 0; i < 120; i++) await direct.writeFile(`/d/entry-with-a-long-name-${String(i).padStart(4, '0')}`, Buffer.alloc(0))
  const proxy = await startProxy(t, fx.port)
  const looped = await NfsClient.mount(`nfs://127.0.0.1/export?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`, { dirsize: 1024 })
  t.teardown(() => looped.umount())
  return { direct, looped, proxy }
}

const LISTINGS: [string, (c: NfsClient) => Promise<unknown[]>][] = [
  ['READDIR', (c) => c.readdir('/d')],
  ['READDIRPLUS', (c) => c.readdirPlus('/d')],
]

for (const [name, list] of LISTINGS) {
  t.test(`${name}: a server that sends the listing back to its first page fails it with ELOOP`, async (t) => {
    const { direct, looped, proxy } = await setup(t)
    t.equal((await list(looped)).length, 120, 'through the proxy untouched, the whole listing')
    const r = sendBackTo(proxy, () => 0n)
    const err = await within(10_000, list(looped)).then(() => null, (e: unknown) => e)
    t.ok(isNfsError(err, 'NFS_CLIENT_ELOOP'), `NFS_CLIENT_ELOOP (${String(err)})`)
    t.match(err, { errno: 'ELOOP', procedure: name, path: '/d' })
    t.equal(r.rewritten, 1, 'the first cookie that went back was the last asked')
    proxy.rewrite = null
    t.equal((await list(looped)).length, 120, 'the next listing through a good server is whole')
    t.equal((await list(direct)).length, 120)
  })

  t.test(`${name}: a server whose pages cycle among earlier cookies fails it with ELOOP`, async (t) => {
    const { looped, proxy } = await setup(t)
    const asked: bigint[] = []
    // The third request and after go back to the second's cookie: pages 2, 3, 2, 3, ... are different pages in turn.
    sendBackTo(proxy, (cookie) => {
      asked.push(cookie)
      return asked.length >= 3 ? (asked[0] ?? 0n) : cookie
    })
    const err = await within(10_000, list(looped)).then(() => null, (e: unknown) => e)
    t.ok(isNfsError(err, 'NFS_CLIENT_ELOOP'), `NFS_CLIENT_ELOOP (${String(err)})`)
    t.ok(asked.length >= 3 && asked.length <= 4, `stopped at the first cookie asked again (${String(asked.length)} rewritten calls)`)
  })
}
