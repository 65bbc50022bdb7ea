/*
 * The handle key of a server with cluster exports (issue 17 §3), wired
 * through createServer with the cluster factory replaced by one that records
 * a key as the real one does (the real one reads it from the database; the
 * e2e tests run that): two servers with different state directories mint the
 * same handles; cluster exports of two keys refuse to start; a reload cannot
 * bring another key; write verifiers differ even when made in one millisecond.
 */
import t from 'tap'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { BackendFactory } from '../../server/backends.ts'
import { WriteVerifier } from '../../server/state.ts'
import { parseExports } from '../../server/exports/parse.ts'
import type { Test } from 'tap'
import { connect, mountRoot, startServer } from '../helpers/server.ts'

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
      ctx.clusterKeys?.set(exp.id, { key, meta })
      return shared()
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

t.test('cluster exports on two databases with different keys refuse to start; a reload cannot switch keys', async (t) => {
  const keys = new Map([['db1', Buffer.alloc(32, 1)], ['db2', Buffer.alloc(32, 2)]])
  await t.rejects(startServer(t, line('/a', 'db1') + line('/b', 'db2'), { backends: fakeCluster(keys), locking: false }), {
    message: 'cluster exports /a (meta=postgres://u@h/db1) and /b (meta=postgres://u@h/db2) have different handle keys: every cluster export of one server must be on the same cluster database',
  })
  const s = await startServer(t, line('/a', 'db1'), { backends: fakeCluster(keys), locking: false })
  await t.rejects(s.server.reload(parseExports(line('/b', 'db2'), 'exports')), { message: /handle key differs from the one this server serves with/ })
  const root = await rootHandle(t, s.port, '/a')
  t.equal(root.length > 0, true, 'the refused reload left /a served')
})

t.test('write verifiers made in the same millisecond differ', async (t) => {
  const made = Array.from({ length: 64 }, () => new WriteVerifier().current().toString('hex'))
  t.equal(new Set(made).size, 64, '64 verifiers, 64 values (8 random bytes each, not a clock)')
})
