/*
 * vfs/local/dir-sync.ts: commitMetadata's fsyncs grouped per object. A
 * request while an object's fsync runs joins the one next round (32 requests
 * at once: two rounds, not 32); distinct objects run in parallel up to the
 * limit; a failed round is EIO for each of its requests and the next round
 * starts clean. Then LocalVfs.commitMetadata on real directories and files.
 */
import t from 'tap'
import { CoalescingSync } from '../../vfs/local/dir-sync.ts'
import { VfsError } from '../../vfs/errors.ts'
import { localDirs, openLocal } from './local-helpers.ts'

/** A run function whose rounds end when the test says, recording what ran. */
function gated(): { run: (k: string) => Promise<void>; started: string[]; finish: (err?: Error) => void; running: () => number } {
  const started: string[] = []
  const waiting: { resolve: () => void; reject: (e: Error) => void }[] = []
  return {
    started,
    run: (k) => {
      started.push(k)
      return new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }))
    },
    finish: (err) => {
      const w = waiting.shift()
      if (w === undefined) throw new Error('no round running')
      if (err === undefined) w.resolve()
      else w.reject(err)
    },
    running: () => waiting.length,
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('32 requests for one object while its round runs: one more round, shared', async (t) => {
  const g = gated()
  const s = new CoalescingSync<string, string>(g.run, 2)
  const first = s.sync('d', 'd')
  const later = Array.from({ length: 32 }, () => s.sync('d', 'd'))
  await tick()
  t.strictSame(g.started, ['d'], 'one round running, the rest wait')
  g.finish()
  await first
  await tick()
  t.strictSame(g.started, ['d', 'd'], 'the waiting requests share the second round')
  g.finish()
  await Promise.all(later)
  t.equal(s.rounds, 2)
})

t.test('distinct objects run in parallel up to the limit, the rest in order', async (t) => {
  const g = gated()
  const s = new CoalescingSync<string, string>(g.run, 2)
  const all = ['a', 'b', 'c', 'd'].map((k) => s.sync(k, k))
  await tick()
  t.strictSame(g.started, ['a', 'b'])
  t.equal(g.running(), 2)
  g.finish()
  await tick()
  t.strictSame(g.started, ['a', 'b', 'c'])
  g.finish()
  g.finish()
  await tick()
  g.finish()
  await Promise.all(all)
  t.strictSame(g.started, ['a', 'b', 'c', 'd'])
})

t.test('a failed round is EIO for each of its requests; the next round starts clean', async (t) => {
  const g = gated()
  const s = new CoalescingSync<string, string>(g.run, 2)
  const running = s.sync('d', 'd')
  const joined = [s.sync('d', 'd'), s.sync('d', 'd')]
  await tick()
  g.finish()
  await running
  await tick()
  g.finish(Object.assign(new Error('fsync: EIO'), { code: 'EIO' }))
  for (const p of joined) await t.rejects(p, { code: 'EIO', message: 'fsync failed' })
  const again = s.sync('d', 'd')
  await tick()
  g.finish()
  await again
  t.equal(s.rounds, 3)
  // A VfsError EIO passes as it is.
  const own = s.sync('e', 'e')
  await tick()
  g.finish(new VfsError('EIO', 'own'))
  await t.rejects(own, { code: 'EIO', message: 'own' })
})

t.test('LocalVfs.commitMetadata: directories and files, grouped; a gone object needs nothing', async (t) => {
  const vfs = openLocal(localDirs())
  t.teardown(() => vfs.close())
  const root = vfs.root()
  const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }
  const d = await vfs.mkdir(root, Buffer.from('d'), {}, owner)
  const f = await vfs.create(d.ref, Buffer.from('f'), { how: 'guarded', attr: {} }, owner)
  const before = vfs.metadataSyncs
  await vfs.commitMetadata([d.ref, f.ref, root, d.ref])
  t.equal(vfs.metadataSyncs - before, 3, 'one round per object, the repeated one once')
  const start = vfs.metadataSyncs
  await Promise.all(Array.from({ length: 32 }, () => vfs.commitMetadata([root])))
  t.equal(vfs.metadataSyncs - start, 2, '32 at once: the running round and one more')
  await vfs.remove(d.ref, Buffer.from('f'))
  await vfs.commitMetadata([f.ref])
  t.pass('a removed file: nothing to commit, no error')
})
