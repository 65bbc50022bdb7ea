/*
 * vfs/replica/replicating-vfs.ts, call by call: vids everywhere, ESTALE for an unknown vid,
 * failed calls append nothing, stable replies wait for durable(seq), objects met unbound get a
 * vid made durable, the vids survive reopen over a local backend, a READDIR resumed after a
 * removal neither repeats nor skips, and readRange returns the primary's bytes (null once gone).
 */
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { IdMap, ROOT_VID } from '../../../vfs/replica/id-map.ts'
import { ReplicatingVfs } from '../../../vfs/replica/replicating-vfs.ts'
import { ArraySink, list, node } from './replica-helpers.ts'

const b = (s: string): Buffer => Buffer.from(s)
const owner = { uid: 0, gid: 0 }

t.test('vids in every ref, attr and entry; the change log; stable replies wait', async (t) => {
  const { layer, sink, map } = await node(t, 'memory', t.testdir())
  const root = layer.root()
  t.strictSame(root, ROOT_VID)
  const f = await layer.create(root, b('f'), { how: 'guarded', attr: { mode: 0o600 } }, { uid: 5, gid: 6 })
  t.equal(f.ref.id >> 40n, 1n, 'a vid of epoch 1')
  t.equal(f.attr.fileid, f.ref.id)
  t.equal(f.attr.gen, f.ref.gen)
  t.equal(f.dir.after.fileid, 1n)
  const c1 = sink.changes[0]!.change
  t.match(c1, { op: 'create', obj: { dir: root, ref: f.ref, mode: 0o600, uid: 5, gid: 6 }, exclusive: null })
  t.strictSame(c1.times.map((x) => x.ref.id), [f.ref.id, 1n], 'times of the new file and its directory')
  t.strictSame(sink.durableAsked, [1n], 'a CREATE reply waits for its change')

  await layer.write(f.ref, 0n, b('hello'), 'unstable')
  t.match(sink.changes[1]!.change, { op: 'write', ref: f.ref, offset: 0n, length: 5, data: null })
  t.strictSame(sink.durableAsked, [1n], 'an UNSTABLE write waits for nothing')
  await layer.write(f.ref, 5n, b('!'), 'file_sync')
  t.strictSame(sink.durableAsked, [1n, 3n])
  await layer.commit(f.ref, 0n, 0)
  t.strictSame(sink.durableAsked, [1n, 3n, 3n], 'COMMIT waits for everything logged before it')
  const got = await layer.setattr(f.ref, { mtime: 'now' })
  t.match(sink.changes[3]!.change, { op: 'setattr', set: { mtime: got.after.mtime } }, "'now' resolved to the primary's time")
  t.equal((await layer.readRange(f.ref, 0n, 100))?.toString(), 'hello!')
  t.equal(await layer.readRange({ id: 999n, gen: 1 }, 0n, 1), null)
  await t.rejects(layer.readRange(f.ref, 0n, 1e9), { code: 'EINVAL' })

  const verifier = b('verifier')
  const x = await layer.create(root, b('x'), { how: 'exclusive', verifier }, owner)
  const again = await layer.create(root, b('x'), { how: 'exclusive', verifier }, owner)
  t.strictSame(again.ref, x.ref, 'a retransmitted exclusive create: the same vid')
  t.match(sink.changes.at(-1)!.change, { op: 'create', obj: { ref: x.ref }, exclusive: verifier }, 'the verifier kept in the change')

  const d = await layer.mkdir(root, b('d'), { mode: 0o755 }, owner)
  await layer.rename(root, b('f'), d.ref, b('g'))
  const ren = sink.changes.at(-1)!.change
  t.match(ren, { op: 'rename', fromDir: root, toDir: d.ref })
  t.equal(ren.times[0]?.ref.id, f.ref.id, 'the moved object first in times')
  const entries = await list(layer, d.ref, 10)
  t.strictSame(entries.map((e) => [e.name, e.fileid]), [['.', d.ref.id], ['..', 1n], ['g', f.ref.id]])
  t.equal((await layer.lookup(d.ref, b('..'))).ref.id, 1n)
  t.equal(map.size, 4)
  await layer.remove(d.ref, b('g'))
  t.equal(map.local(f.ref), undefined, 'the removed file is unbound')
  await t.rejects(layer.getattr(f.ref), { code: 'ESTALE' }, 'and its vid is stale')
  t.match(sink.changes.at(-1)!.change, { op: 'remove', dir: d.ref, name: b('g') })
  t.equal(sink.changes.at(-1)!.change.times[0]?.ref.id, f.ref.id, 'the removed object named in times')
})

t.test('unknown vids are ESTALE; failed calls append nothing', async (t) => {
  const { layer, sink } = await node(t, 'memory', t.testdir())
  const root = layer.root()
  const ghost = { id: (1n << 40n) | 77n, gen: 1 }
  await t.rejects(layer.getattr(ghost), { code: 'ESTALE', message: /not bound/ })
  await t.rejects(layer.getattr({ id: 1n, gen: 2 }), { code: 'ESTALE' }, 'another generation of the root')
  await t.rejects(layer.create(ghost, b('x'), { how: 'guarded', attr: {} }, owner), { code: 'ESTALE' })
  await t.rejects(layer.readdir(ghost, 0n, 10), { code: 'ESTALE' })
  await layer.create(root, b('x'), { how: 'guarded', attr: {} }, owner)
  const n = sink.changes.length
  await t.rejects(layer.create(root, b('x'), { how: 'guarded', attr: {} }, owner), { code: 'EEXIST' })
  await t.rejects(layer.remove(root, b('nope')), { code: 'ENOENT' })
  await t.rejects(layer.rmdir(root, b('x')), { code: 'ENOTDIR' })
  await t.rejects(layer.rename(root, b('nope'), root, b('y')), { code: 'ENOENT' })
  await t.rejects(layer.mkdir(root, b('x'), {}, owner), { code: 'EEXIST' })
  await t.rejects(layer.link(root, root, b('z')), { code: 'EPERM' })
  await t.rejects(layer.setattr(root, { size: 1n }), { code: 'EISDIR' })
  await t.rejects(layer.write(root, 0n, b('a'), 'file_sync'), { code: 'EINVAL' })
  t.equal(sink.changes.length, n, 'nothing appended')
  await layer.write((await layer.lookup(root, b('x'))).ref, 0n, Buffer.alloc(0), 'file_sync')
  t.equal(sink.changes.length, n, 'a WRITE of nothing changes nothing')
})

t.test('a READDIR resumed after removals neither repeats nor skips; cookies are name hashes', async (t) => {
  const { layer } = await node(t, 'memory', t.testdir())
  const root = layer.root()
  for (let i = 0; i < 60; i++) await layer.create(root, b(`n${i}`), { how: 'guarded', attr: {} }, owner)
  const seen: string[] = []
  const removed = new Set<string>()
  let cookie = 0n
  for (;;) {
    const page = await layer.readdir(root, cookie, 7)
    for (const e of page.entries) seen.push(e.name.toString())
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) break
    cookie = last.cookie
    // Remove the entry just returned and one not yet returned.
    const all = await list(layer, root, 1000)
    const at = all.findIndex((e) => e.cookie === cookie)
    for (const e of [all[at], all[at + 3]]) {
      if (e === undefined || e.name.startsWith('.')) continue
      await layer.remove(root, b(e.name))
      removed.add(e.name)
    }
  }
  t.equal(new Set(seen).size, seen.length, 'no entry twice')
  for (let i = 0; i < 60; i++) if (!removed.has(`n${i}`)) t.ok(seen.includes(`n${i}`), `n${i} listed`)
  const first = await layer.readdir(root, 0n, 3)
  t.strictSame(first.entries.map((e) => e.cookie).slice(0, 2), [1n, 2n], '`.` is 1 and `..` is 2')
})

t.test('over a local backend: objects made before replication get vids on first sight, durable; vids survive reopen', async (t) => {
  const base = t.testdir()
  const root = join(base, 'data')
  mkdirSync(join(root, 'old'), { recursive: true })
  writeFileSync(join(root, 'old', 'file'), 'before replication')
  const open = async (): Promise<{ layer: ReplicatingVfs; map: IdMap; sink: ArraySink; backend: LocalVfs }> => {
    const backend = new LocalVfs({ root, stateDir: join(base, 'local-state') })
    const map = await IdMap.open({ dir: join(base, 'map'), root: backend.root() })
    const sink = new ArraySink()
    return { layer: new ReplicatingVfs({ backend, map, sink }), map, sink, backend }
  }
  const one = await open()
  const old = await one.layer.lookup(one.layer.root(), b('old'))
  const listed = await list(one.layer, old.ref, 10)
  const file = listed.find((e) => e.name === 'file')!
  t.ok(file.ref !== undefined && file.fileid === file.ref.id && file.fileid >> 40n === 1n, 'a vid in the listing')
  t.equal(one.sink.changes.length, 0, 'seeing an object is not a change')
  const made = await one.layer.create(old.ref, b('new'), { how: 'guarded', attr: { mode: 0o644 } }, owner)
  // No close of the map: a crash after the replies; what they showed must be on disk.
  await one.layer.close()

  const two = await open()
  t.teardown(async () => {
    await two.layer.close()
    await two.map.close()
    await one.map.close()
  })
  t.strictSame((await two.layer.lookup(two.layer.root(), b('old'))).ref, old.ref, 'same vid after reopen')
  t.strictSame((await two.layer.lookup(old.ref, b('file'))).ref, file.ref)
  t.strictSame((await two.layer.lookup(old.ref, b('new'))).ref, made.ref)
  t.equal((await two.layer.getattr(made.ref)).fileid, made.ref.id)
  const again = await two.layer.create(old.ref, b('newer'), { how: 'guarded', attr: {} }, owner)
  t.ok(again.ref.id > made.ref.id, 'the counter went on')
})
