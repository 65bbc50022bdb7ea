/*
 * vfs/replica/applier.ts, rule by rule: a create whose name exists binds to it (exclusive: same
 * verifier), a remove of a missing name is done, a rename whose source is gone and whose target
 * holds the moved vid is done, a write to an unbound vid is skipped, an unknown directory vid is
 * an error asking for a resync, a WRITE without data is an error, times are set at flush, and the
 * position survives reopen.
 */
import t from 'tap'
import type { Test } from 'tap'
import { cpSync } from 'node:fs'
import { join } from 'node:path'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { Applier } from '../../../vfs/replica/applier.ts'
import type { Change, ChangeTimes } from '../../../vfs/replica/change.ts'
import { IdMap, ROOT_VID } from '../../../vfs/replica/id-map.ts'
import type { FileRef } from '../../../vfs/types.ts'

const b = (s: string): Buffer => Buffer.from(s)
const V = (n: number): FileRef => ({ id: (1n << 40n) | BigInt(n), gen: 1 })
const T = { sec: 1_500_000_000, nsec: 42 }
const times = (...refs: FileRef[]): ChangeTimes[] => refs.map((ref) => ({ ref, atime: T, mtime: T }))
const obj = (dir: FileRef, name: string, ref: FileRef, mode = 0o644) => ({ dir, name: b(name), ref, mode, uid: 7, gid: 8 })

async function setup(t: Test): Promise<{ backend: MemoryVfs; map: IdMap; applier: Applier; dir: string }> {
  const dir = t.testdir()
  const backend = new MemoryVfs()
  const map = await IdMap.open({ dir: join(dir, 'map'), root: backend.root() })
  t.teardown(() => map.close())
  return { backend, map, dir, applier: new Applier({ backend, map }) }
}

t.test('changes applied: objects bound, data written, times set at flush, position kept', async (t) => {
  const { backend, map, applier, dir } = await setup(t)
  const root = backend.root()
  const changes: Change[] = [
    { op: 'mkdir', obj: obj(ROOT_VID, 'd', V(1), 0o750), times: times(V(1), ROOT_VID) },
    { op: 'create', obj: obj(V(1), 'f', V(2)), exclusive: null, times: times(V(2), V(1)) },
    { op: 'write', ref: V(2), offset: 2n, length: 3, data: b('abc'), times: times(V(2)) },
    { op: 'symlink', obj: obj(V(1), 's', V(3), 0o777), target: b('f'), times: times(V(3), V(1)) },
    { op: 'link', ref: V(2), dir: ROOT_VID, name: b('hard'), times: times(V(2), ROOT_VID) },
  ]
  for (const [i, c] of changes.entries()) await applier.apply(BigInt(i + 1), c)
  t.equal(await applier.flush(), 5n)
  const d = await backend.lookup(root, b('d'))
  t.match(d.attr, { type: 'dir', mode: 0o750, uid: 7, gid: 8, mtime: T })
  t.strictSame(map.local(V(1)), d.ref)
  const f = await backend.lookup(d.ref, b('f'))
  t.match(f.attr, { size: 5n, nlink: 2, mtime: T })
  t.equal((await backend.read(f.ref, 0n, 10)).data.toString('latin1'), '\0\0abc')
  t.equal((await backend.readlink(map.local(V(3))!)).toString(), 'f')
  t.strictSame((await backend.lookup(root, b('hard'))).ref, f.ref)
  await map.close()
  const again = await IdMap.open({ dir: join(dir, 'map'), root })
  t.teardown(() => again.close())
  t.equal(again.position(), 5n)
  t.equal(new Applier({ backend, map: again }).position(), 5n)
})

t.test('idempotent rules', async (t) => {
  const { backend, map, applier } = await setup(t)
  const root = backend.root()
  let seq = 0n
  const apply = (c: Change): Promise<void> => applier.apply(++seq, c)

  // A create whose name exists (made before a crash, the bind lost) binds to it.
  const made = await backend.create(root, b('x'), { how: 'guarded', attr: {} }, { uid: 0, gid: 0 })
  await apply({ op: 'create', obj: obj(ROOT_VID, 'x', V(1)), exclusive: null, times: [] })
  t.strictSame(map.local(V(1)), made.ref)
  // Exclusive: the same verifier finds the same file.
  const verifier = b('12345678')
  await apply({ op: 'create', obj: obj(ROOT_VID, 'e', V(2)), exclusive: verifier, times: [] })
  const e = map.local(V(2))!
  map.unbind(V(2))
  await apply({ op: 'create', obj: obj(ROOT_VID, 'e', V(2)), exclusive: verifier, times: [] })
  t.strictSame(map.local(V(2)), e, 'bound to the file it made before')
  // A name holding another vid's object: not taken over.
  await apply({ op: 'create', obj: obj(ROOT_VID, 'x', V(3)), exclusive: null, times: [] })
  t.equal(map.local(V(3)), undefined)
  t.strictSame(map.local(V(1)), made.ref)

  // A remove of a missing name is done.
  await apply({ op: 'remove', dir: ROOT_VID, name: b('missing'), times: times(V(9)) })
  // A remove of a name holding another vid's object is done.
  await apply({ op: 'remove', dir: ROOT_VID, name: b('x'), times: times(V(9), ROOT_VID) })
  t.strictSame(map.local(V(1)), made.ref, 'x kept')
  await apply({ op: 'remove', dir: ROOT_VID, name: b('x'), times: times(V(1), ROOT_VID) })
  t.equal(map.local(V(1)), undefined, 'removed and unbound')
  await t.rejects(backend.lookup(root, b('x')), { code: 'ENOENT' })

  // A rename whose source is gone and whose target holds the moved vid is done.
  const rename: Change = { op: 'rename', fromDir: ROOT_VID, fromName: b('e'), toDir: ROOT_VID, toName: b('r'), times: times(V(2), ROOT_VID) }
  await apply(rename)
  t.strictSame((await backend.lookup(root, b('r'))).ref, e)
  await apply(rename)
  t.strictSame((await backend.lookup(root, b('r'))).ref, e, 'applied twice, the same')
  t.strictSame(map.local(V(2)), e)

  // A write or setattr of an unbound vid is skipped; a link of one too.
  await apply({ op: 'write', ref: V(50), offset: 0n, length: 1, data: b('z'), times: [] })
  await apply({ op: 'setattr', ref: V(50), set: { size: 0n }, times: [] })
  await apply({ op: 'link', ref: V(50), dir: ROOT_VID, name: b('l'), times: [] })
  await t.rejects(backend.lookup(root, b('l')), { code: 'ENOENT' })
  t.equal(await applier.flush(), seq)
})

t.test('errors: an unknown directory, a WRITE without data, a gap', async (t) => {
  const { applier } = await setup(t)
  await t.rejects(applier.apply(1n, { op: 'create', obj: obj(V(77), 'f', V(78)), exclusive: null, times: [] }), {
    code: 'ESTALE', message: 'replica: change 1 names directory vid 1000000004d/1, unknown on this node: a full resync is needed',
  })
  await t.rejects(applier.apply(1n, { op: 'write', ref: V(1), offset: 0n, length: 4, data: null, times: [] }), {
    code: 'EINVAL', message: 'replica: write change 1 carries no data',
  })
  await t.rejects(applier.apply(3n, { op: 'remove', dir: ROOT_VID, name: b('a'), times: [] }), {
    code: 'EINVAL', message: 'replica: change 3 does not follow 0',
  })
  t.equal(applier.position(), 0n)
})

/** Counts name lookups: a standby's apply of a new object should need none. */
class CountingMemory extends MemoryVfs {
  lookups = 0
  override lookup(...a: Parameters<MemoryVfs['lookup']>): ReturnType<MemoryVfs['lookup']> {
    this.lookups++
    return super.lookup(...a)
  }
}

t.test('a new object costs no lookup of its name; a taken name is still judged (EEXIST, then the rules above)', async (t) => {
  const dir = t.testdir()
  const backend = new CountingMemory()
  const map = await IdMap.open({ dir: join(dir, 'map'), root: backend.root() })
  t.teardown(() => map.close())
  const applier = new Applier({ backend, map })
  let seq = 0n
  const apply = (c: Change): Promise<void> => applier.apply(++seq, c)
  await apply({ op: 'mkdir', obj: obj(ROOT_VID, 'd', V(1), 0o755), times: [] })
  for (let i = 0; i < 10; i++) await apply({ op: 'create', obj: obj(V(1), `f${i}`, V(10 + i)), exclusive: null, times: [] })
  await apply({ op: 'symlink', obj: obj(V(1), 's', V(30), 0o777), target: b('f0'), times: [] })
  await apply({ op: 'mknod', obj: obj(V(1), 'p', V(31)), type: 'fifo', rdev: { major: 0, minor: 0 }, times: [] })
  t.equal(backend.lookups, 0, 'no lookups for 13 new objects')
  t.equal(map.size, 14, 'each bound (and the root)')

  // A name taken by an unbound object of another kind: not adopted, not replaced.
  const root = backend.root()
  const other = await backend.mkdir(root, b('y'), {}, { uid: 0, gid: 0 })
  await apply({ op: 'create', obj: obj(ROOT_VID, 'y', V(40)), exclusive: null, times: [] })
  t.equal(map.local(V(40)), undefined)
  t.strictSame((await backend.lookup(root, b('y'))).ref, other.ref)
  // Of the same kind and unbound: adopted.
  const file = await backend.create(root, b('z'), { how: 'guarded', attr: {} }, { uid: 0, gid: 0 })
  await apply({ op: 'create', obj: obj(ROOT_VID, 'z', V(41)), exclusive: null, times: [] })
  t.strictSame(map.local(V(41)), file.ref)
  t.equal(await applier.flush(), seq)
})

t.test('a WRITE or SETATTR is not written through alone (it replays exactly); a process crash after them replays them', async (t) => {
  const dir = t.testdir()
  const backend = new MemoryVfs()
  const mapDir = join(dir, 'map')
  const map = await IdMap.open({ dir: mapDir, root: backend.root() })
  t.teardown(() => map.close())
  const applier = new Applier({ backend, map })
  const changes: Change[] = [
    { op: 'mkdir', obj: obj(ROOT_VID, 'd', V(1), 0o755), times: [] },
    { op: 'create', obj: obj(V(1), 'f', V(2)), exclusive: null, times: [] },
    { op: 'write', ref: V(2), offset: 0n, length: 3, data: b('abc'), times: [] },
    { op: 'setattr', ref: V(2), set: { mode: 0o600 }, times: [] },
    { op: 'write', ref: V(2), offset: 3n, length: 2, data: b('de'), times: [] },
  ]
  for (const [i, c] of changes.entries()) await applier.apply(BigInt(i + 1), c)
  // The crash (a process's: what was written is in the files, nothing was flushed).
  const crashed = join(dir, 'crashed-map')
  cpSync(mapDir, crashed, { recursive: true })
  const reopened = await IdMap.open({ dir: crashed, root: backend.root() })
  t.teardown(() => reopened.close())
  t.equal(reopened.position(), 0n)
  t.equal(reopened.appliedHint(), 2n, 'written through up to the create; the WRITEs and the SETATTR ride with the next')
  const again = new Applier({ backend, map: reopened })
  for (const [i, c] of changes.entries()) await again.apply(BigInt(i + 1), c)
  t.equal(await again.flush(), 5n)
  const f = await backend.lookup(reopened.local(V(1))!, b('f'))
  t.strictSame(f.ref, reopened.local(V(2)), 'the create was not made twice')
  t.match(f.attr, { size: 5n, mode: 0o600 })
  t.equal((await backend.read(f.ref, 0n, 10)).data.toString(), 'abcde')
})

t.test('times from before 1970 (a local primary reports them negative) are kept, those before 1901 clamped, and the flush goes on', async (t) => {
  // Every backend refused negative seconds: the flush failed with EINVAL on every try, and the
  // standby's export stopped advancing (the replication fuzzer, session 43).
  const { backend, applier } = await setup(t)
  const old = { sec: -86_400 * 365, nsec: 5 }
  const older = { sec: -(2 ** 31) - 86_400, nsec: 7 }
  await applier.apply(1n, { op: 'create', obj: obj(ROOT_VID, 'old', V(1)), exclusive: null, times: [{ ref: V(1), atime: old, mtime: T }, { ref: ROOT_VID, atime: T, mtime: older }] })
  await applier.apply(2n, { op: 'write', ref: V(1), offset: 0n, length: 1, data: b('x'), times: [{ ref: V(1), atime: old, mtime: T }] })
  t.equal(await applier.flush(), 2n, 'flushed, position recorded')
  const f = await backend.lookup(backend.root(), b('old'))
  t.same({ atime: f.attr.atime, mtime: f.attr.mtime }, { atime: old, mtime: T }, 'atime before 1970 kept, mtime as sent')
  t.same((await backend.getattr(backend.root())).mtime, { sec: -(2 ** 31), nsec: 7 }, "the directory's mtime before 1901 as ext4 holds it (1901-12-13)")
  await applier.apply(3n, { op: 'write', ref: V(1), offset: 1n, length: 1, data: b('y'), times: times(V(1)) })
  t.equal(await applier.flush(), 3n, 'later changes flush as before')
})
