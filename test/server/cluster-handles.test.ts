/*
 * Handle keys per export (issue 17 §3), wired through createServer with the
 * cluster factory replaced by one that claims a key as the real one does (the
 * real one reads it from the database; the e2e tests run that): two servers
 * with different state directories mint the same cluster handles; local
 * exports keep the state directory's key, so a reload may add and remove a
 * cluster export without changing their handles; a handle of one export does
 * not verify under another's key; cluster exports on databases of different
 * keys serve side by side; a pending key answers JUKEBOX; write verifiers
 * differ even when made in one millisecond.
 */
import t from 'tap'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { BackendFactory } from '../../server/backends.ts'
import { WriteVerifier } from '../../server/state.ts'
import { parseExports } from '../../server/exports/parse.ts'
import type { Test } from 'tap'
import { connect, mountRoot, startServer } from '../helpers/server.ts'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { HandleCodec } from '../../server/nfs3/filehandle.ts'
import { ExportTable } from '../../server/exports/table.ts'
import { Nfs3, S } from '../helpers/local.ts'


/** A 'cluster' factory whose "database" is the meta= URL's last path part, with a key per name. */
function fakeCluster(keys: ReadonlyMap<string, Buffer>, tree = new MemoryVfs()): ReadonlyMap<string, BackendFactory> {
  // One tree for every server, as one database is; never closed by a server.
  const shared = (): MemoryVfs => new Proxy(tree, {
      get(target, prop): unknown {
        if (prop === 'close') return () => Promise.resolve()
        const v: unknown = Reflect.get(target, prop)
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
      },
    })
  return new Map<string, BackendFactory>([
    ['cluster', (exp, ctx) => {
      const meta = exp.entry.cluster?.meta ?? ''
      const key = keys.get(meta.slice(meta.lastIndexOf('/') + 1))
      if (key === undefined) throw new Error(`no key for ${meta}`)
      const owner = {}
      ctx.clusterKeys?.set(exp.id, owner, key)
      const vfs = shared()
      return new Proxy(vfs, {
        get(target, prop): unknown {
          if (prop === 'close') return () => { ctx.clusterKeys?.release(exp.id, owner); return Promise.resolve() }
          return Reflect.get(target, prop)
        },
      })
    }],
    // The same tree as a plain export: handles then carry the state directory's key.
    ['memory', () => shared()],
  ])
}

const line = (path: string, db: string): string => `${path} *(rw,insecure,backend=cluster,meta=postgres://u@h/${db},data=postgres)\n`

async function rootHandle(t: Test, port: number, path: string): Promise<Buffer> {
  return mountRoot(await connect(t, port), path)
}

t.test('two servers of one cluster mint the same handles; the state directory key is not used', async (t) => {
  const keys = new Map([['db1', Buffer.alloc(32, 7)]])
  const tree = new MemoryVfs()
  const a = await startServer(t, line('/shared', 'db1'), { backends: fakeCluster(keys, tree), locking: false })
  const b = await startServer(t, line('/shared', 'db1'), { backends: fakeCluster(keys, tree), locking: false })
  t.not(a.stateDir, b.stateDir)
  t.ok((await rootHandle(t, a.port, '/shared')).equals(await rootHandle(t, b.port, '/shared')), 'same root handle bytes on both servers')
  const plain = await startServer(t, '/shared *(rw,insecure,backend=memory)\n', { backends: fakeCluster(keys, tree), locking: false })
  t.notOk((await rootHandle(t, plain.port, '/shared')).equals(await rootHandle(t, a.port, '/shared')), 'the same tree as a plain export: the state directory key, other handle bytes')
})

t.test('cluster exports on databases of different keys serve side by side; a handle moved to another export is refused', async (t) => {
  const k1 = Buffer.alloc(32, 1)
  const k2 = Buffer.alloc(32, 2)
  const keys = new Map([['db1', k1], ['db2', k2]])
  const text = line('/a', 'db1') + line('/b', 'db2') + '/c *(rw,insecure,backend=memory)\n'
  const s = await startServer(t, text, { backends: fakeCluster(keys), locking: false })
  const ids = new Map(new ExportTable(parseExports(text, 'exports')).all().map((e) => [e.path, e.id]))
  const c = await Nfs3.connect(t, s.port)
  const fa = await c.mount('/a')
  const fb = await c.mount('/b')
  const fc = await c.mount('/c')
  for (const f of [fa, fb, fc]) t.equal((await c.getattr(f)).status, S.OK, 'every export serves')
  // Which key made which handle: the database's for cluster exports, the state directory's for /c.
  const own = new HandleCodec(readFileSync(join(s.stateDir, 'handle.key')))
  t.match(new HandleCodec(k1).decode(fa), { ok: true, exportId: ids.get('/a') }, '/a: made with db1\'s key')
  t.match(new HandleCodec(k2).decode(fb), { ok: true, exportId: ids.get('/b') }, '/b: made with db2\'s key')
  t.match(own.decode(fc), { ok: true, exportId: ids.get('/c') }, '/c: made with the state directory\'s key')
  t.strictSame(new HandleCodec(k1).decode(fb), { ok: false, reason: 'badhandle' }, "/b's handle does not verify under /a's key")
  t.strictSame(own.decode(fa), { ok: false, reason: 'badhandle' }, "/a's handle does not verify under the server's key")
  // The export id edited to another export's: checked with that export's key, refused.
  for (const [from, to] of [[fa, '/b'], [fb, '/c'], [fc, '/a']] as const) {
    const moved = Buffer.from(from)
    moved.writeUInt32BE(ids.get(to) ?? 0, 4)
    t.equal((await c.getattr(moved)).status, S.BADHANDLE, `a handle moved to ${to} is BADHANDLE`)
  }
})

t.test('a reload adds and removes a cluster export; the local export keeps its handles', async (t) => {
  const k1 = Buffer.alloc(32, 1)
  const keys = new Map([['db1', k1]])
  const local = '/c *(rw,insecure,backend=memory)\n'
  const s = await startServer(t, local, { backends: fakeCluster(keys), locking: false })
  const c = await Nfs3.connect(t, s.port)
  const root = await c.mount('/c')
  const file = (await c.create(root, 'f')).fh ?? Buffer.alloc(0)
  t.equal(file.length, 32)
  await s.server.reload(parseExports(local + line('/a', 'db1'), 'exports'))
  t.ok((await c.mount('/c')).equals(root), 'after adding a cluster export: the same root handle')
  t.ok((await c.walk(await c.mount('/c'), 'f')).equals(file), 'and the same file handle')
  t.equal((await c.getattr(file)).status, S.OK, 'the old handle still serves')
  const fa = await c.mount('/a')
  t.match(new HandleCodec(k1).decode(fa), { ok: true }, 'the new cluster export mints with its database\'s key')
  await s.server.reload(parseExports(local, 'exports'))
  // Its key went with it: the handle cannot be verified any more (the server's key does not make it).
  t.equal((await c.getattr(fa)).status, S.BADHANDLE, 'the removed cluster export\'s handles are refused')
  t.ok((await c.mount('/c')).equals(root), 'after removing it: still the same root handle')
  t.equal((await c.getattr(file)).status, S.OK)
})

t.test("an export whose key is pending answers JUKEBOX, not BADHANDLE; it cannot mint", async (t) => {
  const codec = new HandleCodec(Buffer.alloc(32, 3))
  const k = Buffer.alloc(32, 4)
  codec.setExportKey(5, k)
  const fh = codec.encode(5, { id: 9n, gen: 1 })
  codec.setExportKey(5, 'pending')
  t.strictSame(codec.decode(fh), { ok: false, reason: 'pending', exportId: 5 })
  t.throws(() => codec.encode(5, { id: 9n, gen: 1 }), { message: 'export 5: no handle key yet (its cluster database has not been reached)' })
  t.match(codec.decode(codec.encode(6, { id: 9n, gen: 1 })), { ok: true, exportId: 6 }, 'other exports are unaffected')
  codec.setExportKey(5, Buffer.from(k))
  t.match(codec.decode(fh), { ok: true, exportId: 5 }, 'the key in place: the old handle verifies again')
  codec.setExportKey(5, null)
  t.strictSame(codec.decode(fh), { ok: false, reason: 'badhandle' }, 'back to the server key: the cluster handle no longer verifies')
})

t.test('write verifiers made in the same millisecond differ', async (t) => {
  const made = Array.from({ length: 64 }, () => new WriteVerifier().current().toString('hex'))
  t.equal(new Set(made).size, 64, '64 verifiers, 64 values (8 random bytes each, not a clock)')
})
