/*
 * One mount, several identities (client.as(cred)): a view's calls carry
 * its credential over the shared connection and caches; what depends on
 * who asks does not leak between identities: ACCESS answers are kept per
 * identity, and the shared name cache answers a caller only in directories
 * it was seen to search. An open file's data goes out as its opener.
 */
import t from 'tap'
import type { Test } from 'tap'
import { ACCESS3_LOOKUP } from '../../xdr/generated/nfs3.ts'
import { NfsClient } from '../../client/nfs-client.ts'
import { identityKey } from '../../client/identity.ts'
import type { AuthSys } from '../../client/rpc/auth.ts'
import { startServer } from '../helpers/server.ts'
import type { ServerFixture } from '../helpers/server.ts'

const ALICE: AuthSys = { uid: 1000, gid: 1000, gids: [50] }
const BOB: AuthSys = { uid: 1001, gid: 1001, gids: [] }

async function mount(t: Test, fx: ServerFixture): Promise<NfsClient> {
  const c = await NfsClient.mount(fx.url('/export'), { uid: 0, gid: 0 })
  t.teardown(() => c.umount())
  return c
}

async function callsDuring(c: NfsClient, fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = c.stats().nfs
  await fn()
  const after = c.stats().nfs
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0)
  return out
}

t.test('a view acts as its identity, sharing the connection and caches', async t => {
  const fx = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const c = await mount(t, fx)
  await c.chmod('/', 0o777)
  const alice = c.as(ALICE)
  const bob = c.as(BOB)
  await alice.mkdir('a', 0o700)
  await alice.writeFile('a/f', Buffer.from('secret'))
  await bob.writeFile('b', Buffer.from('bob'), { mode: 0o600 })
  const [a, f, b] = await Promise.all([c.stat('a'), c.stat('a/f'), c.stat('b')])
  t.strictSame([a.uid, a.gid, f.uid, f.gid, b.uid, b.gid], [1000, 1000, 1000, 1000, 1001, 1001], 'each made its own')
  t.equal(alice.attrs, c.attrs, 'one attribute cache')
  t.equal(alice.files, c.files, 'one data path')
  t.equal(alice.nfs.transport, c.nfs.transport, 'one connection')
  await t.rejects(bob.readFile('a/f'), { code: 'NFS3ERR_ACCES', errno: 'EACCES' }, "root's cached names do not let bob into alice's 0700 directory")
  await t.rejects(alice.readFile('b'), { code: 'NFS3ERR_ACCES', errno: 'EACCES' }, 'nor alice read a 0600 file of bob')
  t.equal((await alice.readFile('a/f')).toString(), 'secret')
  t.equal(c.attrs.accessOf(a.fh, identityKey(BOB), ACCESS3_LOOKUP), 0, "bob's refusal is remembered for bob")
  t.equal(c.attrs.accessOf(a.fh, identityKey(ALICE), ACCESS3_LOOKUP), ACCESS3_LOOKUP, "alice's grant for alice")
  t.strictSame(await callsDuring(c, () => alice.stat('a/f')), {}, 'alice is answered from the shared caches')
  t.strictSame(await callsDuring(c, () => t.rejects(bob.stat('a/f'), { code: 'NFS3ERR_ACCES', errno: 'EACCES' })), {}, 'and bob is refused from them, without asking')
  await c.chmod('a', 0o755)
  t.equal(c.attrs.accessOf(a.fh, identityKey(BOB), ACCESS3_LOOKUP), undefined, 'a mode change drops what was known')
  t.equal((await bob.stat('a/f')).size, 6n, 'and bob may now look')
})

t.test("an open file's reads, delayed writes and truncation go as its opener", async t => {
  const fx = await startServer(t, '/export *(rw,insecure,no_root_squash,backend=memory)\n')
  const c = await mount(t, fx)
  await c.chmod('/', 0o777)
  const alice = c.as(ALICE)
  const f = await alice.open('mine', 'w+', 0o600)
  await f.write(Buffer.alloc(100_000, 7))
  await f.truncate(50_000)
  await f.fsync()
  t.equal((await f.read(10, 0)).length, 10)
  await f.close()
  t.equal((await c.stat('mine')).size, 50_000n, "the WRITEs and the SETATTR went as alice (the file's owner, 0600)")
  await t.rejects(c.as(BOB).open('mine', 'r+'), { code: 'NFS3ERR_ACCES', errno: 'EACCES' }, 'bob may not open it')
})
