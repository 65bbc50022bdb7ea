import t from 'tap'
import type { Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { NfsClient } from '../../client/nfs-client.ts'
import type { ClientOptions } from '../../client/options.ts'
import { startServer } from '../helpers/server.ts'
import type { ServerFixture } from '../helpers/server.ts'

async function mount(t: Test, fx: ServerFixture, opts: ClientOptions = {}): Promise<NfsClient> {
  const c = await NfsClient.mount(fx.url('/export'), opts)
  t.teardown(() => c.umount())
  return c
}

/** NFS calls made while fn runs, by procedure. */
async function callsDuring(c: NfsClient, fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = c.stats().nfs
  await fn()
  const after = c.stats().nfs
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0)
  return out
}

t.test('a second stat inside the expiry sends nothing; after it, exactly one GETATTR', async t => {
  const fx = await startServer(t)
  const w = await mount(t, fx)
  await w.create('file')
  const c = await mount(t, fx, { acregmin: 0.2, acregmax: 0.2 })
  t.strictSame(await callsDuring(c, () => c.stat('file')), { LOOKUP: 1 }, 'LOOKUP brings the attributes')
  t.strictSame(await callsDuring(c, () => c.stat('file')), {}, 'served from the caches')
  t.equal(c.stats().attrCache.hits, 2, 'the LOOKUP attributes answered the first getattr too')
  await sleep(250)
  t.strictSame(await callsDuring(c, () => c.stat('file')), { GETATTR: 1 }, 'the name is still cached (directory fresh), the attributes are not')
  t.equal(c.stats().attrCache.misses, 1)
})

t.test('a walk of a/b/c/file: 4 LOOKUPs the first time, none the second', async t => {
  const fx = await startServer(t)
  const w = await mount(t, fx)
  await w.mkdir('a/b/c', { recursive: true })
  await w.create('a/b/c/file')
  const c = await mount(t, fx)
  t.strictSame(await callsDuring(c, () => c.stat('a/b/c/file')), { LOOKUP: 4 })
  t.strictSame(await callsDuring(c, () => c.stat('a/b/c/file')), {})
  t.strictSame(await callsDuring(c, () => c.stat('/a/./b/../b/c/file')), {}, '. and .. cost nothing')
  t.equal(c.stats().nameCache.hits, 4 + 5)
})

t.test('a negative entry avoids a second LOOKUP of a missing name', async t => {
  const fx = await startServer(t)
  const c = await mount(t, fx)
  t.strictSame(await callsDuring(c, () => t.rejects(c.stat('missing'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })), { LOOKUP: 1 })
  t.strictSame(await callsDuring(c, () => t.rejects(c.stat('missing'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })), {})
  t.equal(c.stats().nameCache.negativeHits, 1)
  await c.create('missing')
  t.strictSame(await callsDuring(c, () => c.stat('missing')), {}, 'our own CREATE replaced the negative entry')
})

t.test('lookupcache=positive keeps no negative entries', async t => {
  const fx = await startServer(t)
  const c = await mount(t, fx, { lookupcache: 'positive' })
  await t.rejects(c.stat('missing'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })
  t.strictSame(await callsDuring(c, () => t.rejects(c.stat('missing'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })), { LOOKUP: 1 })
})

t.test("another client's change to a directory is seen once the directory's attributes expire", async t => {
  const fx = await startServer(t)
  const c = await mount(t, fx, { acdirmin: 0.5, acdirmax: 0.5 })
  const other = await mount(t, fx)
  await t.rejects(c.stat('late'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })
  await other.create('late')
  await t.rejects(c.stat('late'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' }, 'still the cached answer')
  await sleep(600)
  t.ok((await c.stat('late')).isFile())
  t.equal(c.stats().attrCache.changes >= 1, true, 'the directory change was detected')
  t.ok(c.stats().nameCache.dirDrops >= 1, 'and dropped its names')
})

t.test('a directory we made answers for names never created in it; a change by another client ends that', async t => {
  const fx = await startServer(t)
  const c = await mount(t, fx, { acdirmin: 0.5, acdirmax: 0.5 })
  const other = await mount(t, fx)
  await c.mkdir('made')
  t.strictSame(await callsDuring(c, () => t.rejects(c.stat('made/none'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })), {}, 'absent without a LOOKUP')
  await c.create('made/mine')
  t.strictSame(await callsDuring(c, () => c.stat('made/mine')), {}, 'our own create is known')
  t.strictSame(await callsDuring(c, () => t.rejects(c.stat('made/none2'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })), {}, 'still complete after our create')
  await other.create('made/theirs')
  await sleep(600)
  t.ok((await c.stat('made/theirs')).isFile(), "another client's name is seen once the directory's attributes expire")
  t.strictSame(await callsDuring(c, () => t.rejects(c.stat('made/none3'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })), { LOOKUP: 1 }, 'no longer complete: asks')
  await c.mkdir('closed', 0o600)
  t.strictSame(await callsDuring(c, () => t.rejects(c.stat('closed/none'), { errno: 'EACCES', code: 'NFS3ERR_ACCES' })), { LOOKUP: 1 }, 'a directory its owner may not search: the server decides (and refuses)')
  const pos = await mount(t, fx, { lookupcache: 'positive' })
  await pos.mkdir('made2')
  t.strictSame(await callsDuring(pos, () => t.rejects(pos.stat('made2/none'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })), { LOOKUP: 1 }, 'lookupcache=positive: always asks')
})

t.test('noac sends a GETATTR every time', async t => {
  const fx = await startServer(t)
  const c = await mount(t, fx, { noac: true })
  await c.create('f')
  for (let i = 0; i < 3; i++) t.equal((await callsDuring(c, () => c.stat('f'))).GETATTR, 1)
  t.equal(c.stats().attrCache.hits, 0)
})

t.test('ESTALE during a walk restarts it from the root once', async t => {
  const fx = await startServer(t)
  const c = await mount(t, fx)
  const other = await mount(t, fx)
  // (Made by the other client: directories c made itself would be known complete, and a name never
  // created in them absent without asking, until their attributes expire.)
  await other.mkdir('d/sub', { recursive: true })
  await other.create('d/sub/f')
  t.ok((await c.stat('d/sub/f')).isFile())
  await other.rm('d', { recursive: true })
  await other.mkdir('d/sub', { recursive: true })
  await other.create('d/sub/g')
  // c still maps d and d/sub to the removed directories: the LOOKUP of g is STALE, then the walk restarts.
  const calls = await callsDuring(c, async () => {
    t.ok((await c.stat('d/sub/g')).isFile())
  })
  t.equal(calls.LOOKUP, 1 + 3, 'one stale LOOKUP, then d, sub, g from the root')
  await t.rejects(c.stat('d/sub/f'), { errno: 'ENOENT', code: 'NFS3ERR_NOENT' })
})

t.test('revalidate forces a GETATTR (close-to-open)', async t => {
  const fx = await startServer(t)
  const c = await mount(t, fx)
  const f = await c.create('f')
  t.strictSame(await callsDuring(c, () => c.getattr(f.fh)), {})
  t.strictSame(await callsDuring(c, () => c.getattr(f.fh, { revalidate: true })), { GETATTR: 1 })
})

t.test('READDIRPLUS primes the name and attribute caches', async t => {
  const fx = await startServer(t)
  const w = await mount(t, fx)
  await w.mkdir('d')
  for (let i = 0; i < 5; i++) await w.create(`d/f${i}`)
  const c = await mount(t, fx)
  const entries = await c.readdirPlus('d')
  t.equal(entries.length, 5)
  // One LOOKUP: a READDIRPLUS does not show that this caller may search d (walk.ts); its first LOOKUP there does.
  t.strictSame(await callsDuring(c, async () => {
    for (let i = 0; i < 5; i++) await c.stat(`d/f${i}`)
  }), { LOOKUP: 1 })
})
