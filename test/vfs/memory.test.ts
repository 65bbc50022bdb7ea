import t from 'tap'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { Timespec } from '../../vfs/types.ts'
import { vfsConformance } from './conformance.ts'
import { b, mkdir, mkfile, OWNER, rejectsCode } from './conformance-helpers.ts'
import { listAll } from './conformance-readdir.ts'

t.test('conformance', async t => {
  vfsConformance(t, () => new MemoryVfs())
})

function fakeClock(): { now: () => Timespec; set: (sec: number) => void } {
  let sec = 1000
  return { now: () => ({ sec, nsec: 5 }), set: s => { sec = s } }
}

t.test('ENOSPC at capacity writes nothing', async t => {
  const vfs = new MemoryVfs({ capacityBytes: 1024n * 1024n })
  const f = await mkfile(vfs, vfs.root(), 'f')
  await vfs.write(f, 0n, Buffer.alloc(512 * 1024, 1), 'unstable')
  const free = (await vfs.fsstat(f)).freeBytes
  t.ok(free < 512n * 1024n)
  await rejectsCode(t, vfs.write(f, 512n * 1024n, Buffer.alloc(600 * 1024, 2), 'unstable'), 'ENOSPC')
  const attr = await vfs.getattr(f)
  t.equal(attr.size, 512n * 1024n, 'size unchanged')
  t.equal((await vfs.fsstat(f)).freeBytes, free, 'no space taken')
  t.same((await vfs.read(f, 512n * 1024n - 1n, 10)).data, Buffer.from([1]))
  // A sparse extension costs nothing, and freeing data returns the space.
  await vfs.setattr(f, { size: 10n * 1024n ** 3n })
  await vfs.setattr(f, { size: 0n })
  t.ok((await vfs.fsstat(f)).freeBytes > free + 500n * 1024n, 'truncate frees the chunks')
  await vfs.write(f, 0n, Buffer.alloc(900 * 1024, 3), 'unstable')
  t.pass('the space is usable again')
})

t.test('maxFiles limits inodes', async t => {
  const vfs = new MemoryVfs({ maxFiles: 3n })
  await mkfile(vfs, vfs.root(), 'a')
  await mkdir(vfs, vfs.root(), 'b')
  await rejectsCode(t, vfs.create(vfs.root(), b('c'), { how: 'guarded', attr: {} }, OWNER), 'ENOSPC')
  const st = await vfs.fsstat(vfs.root())
  t.same([st.totalFiles, st.freeFiles], [3n, 0n])
})

t.test('a ref from another instance is ESTALE', async t => {
  const one = new MemoryVfs()
  const two = new MemoryVfs()
  t.equal(one.root().id, two.root().id, 'same ids')
  t.not(one.root().gen, two.root().gen, 'random generations differ')
  await rejectsCode(t, two.getattr(one.root()), 'ESTALE')
  const f = await mkfile(one, one.root(), 'f')
  await mkfile(two, two.root(), 'f')
  await rejectsCode(t, two.getattr(f), 'ESTALE')
  await rejectsCode(t, one.getattr({ id: 12345n, gen: 1 }), 'ESTALE', 'unknown id')
  t.not(one.root().gen, 0)
})

t.test('ids are never reused', async t => {
  const vfs = new MemoryVfs()
  const a = await mkfile(vfs, vfs.root(), 'a')
  await vfs.remove(vfs.root(), b('a'))
  const a2 = await mkfile(vfs, vfs.root(), 'a')
  t.not(a2.id, a.id)
})

t.test('10,000-entry directory pages completely', async t => {
  const vfs = new MemoryVfs()
  const d = await mkdir(vfs, vfs.root(), 'd')
  for (let i = 0; i < 10_000; i++) await mkfile(vfs, d, `e${i}`)
  const all = await listAll(vfs, d, 100)
  t.equal(all.length, 10_002)
  t.equal(new Set(all.map(e => e.name.toString())).size, 10_002)
})

t.test('readdir cookies', async t => {
  const vfs = new MemoryVfs()
  const d = await mkdir(vfs, vfs.root(), 'd')
  await mkfile(vfs, d, 'a')
  await mkfile(vfs, d, 'b')
  const page = await vfs.readdir(d, 0n, 10)
  t.same(page.entries.map(e => e.cookie), [1n, 2n, 3n, 4n])
  t.same((await vfs.readdir(d, 1n, 10)).entries.map(e => e.name.toString()), ['..', 'a', 'b'])
  t.same((await vfs.readdir(d, 0n, 1)).entries.map(e => e.name.toString()), ['.'])
  t.same((await vfs.readdir(d, 0n, 0)).entries.length, 1, 'max 0 still makes progress')
  const beyond = await vfs.readdir(d, 1000n, 10)
  t.same([beyond.entries.length, beyond.eof], [0, true])
  t.same((await vfs.readdir(d, 2n ** 64n - 1n, 10)).eof, true)
  await vfs.remove(d, b('a'))
  await mkfile(vfs, d, 'a')
  t.same((await vfs.readdir(d, 3n, 10)).entries.map(e => [e.name.toString(), e.cookie]), [['b', 4n], ['a', 5n]])
  await vfs.rename(d, b('b'), d, b('c'))
  t.same((await vfs.readdir(d, 4n, 10)).entries.map(e => [e.name.toString(), e.cookie]), [['a', 5n], ['c', 6n]])
})

t.test('timestamps come from the clock', async t => {
  const clock = fakeClock()
  const vfs = new MemoryVfs({ now: clock.now })
  const root = await vfs.getattr(vfs.root())
  t.same(root.mtime, { sec: 1000, nsec: 5 })
  t.same([root.mode, root.uid, root.gid], [0o1777, 0, 0])
  clock.set(2000)
  const f = await mkfile(vfs, vfs.root(), 'f', 'x')
  clock.set(3000)
  const r = await vfs.read(f, 0n, 1)
  t.same(r.attr.atime, { sec: 2000, nsec: 5 }, 'noatime: read leaves atime')
  const w = await vfs.write(f, 0n, b('y'), 'unstable')
  t.same([w.after.mtime.sec, w.after.ctime.sec, w.before.mtime.sec], [3000, 3000, 2000])
  clock.set(4000)
  const s = await vfs.setattr(f, { atime: 'now' })
  t.same([s.after.atime.sec, s.after.ctime.sec, s.after.mtime.sec], [4000, 4000, 3000])
  await rejectsCode(t, vfs.setattr(f, { mtime: { sec: 1, nsec: 1e9 } }), 'EINVAL')
})

t.test('create attributes override the owner', async t => {
  const vfs = new MemoryVfs()
  const owner = { uid: 1000, gid: 100 }
  const c = await vfs.create(vfs.root(), b('f'), { how: 'guarded', attr: { uid: 7 } }, owner)
  t.same([c.attr.uid, c.attr.gid, c.attr.mode], [7, 100, 0o644])
  const d = await vfs.mkdir(vfs.root(), b('d'), { gid: 9 }, owner)
  t.same([d.attr.uid, d.attr.gid, d.attr.mode], [1000, 9, 0o755])
  const l = await vfs.symlink(vfs.root(), b('l'), b('t'), {}, owner)
  t.equal(l.attr.mode, 0o777)
  const e = await vfs.create(vfs.root(), b('e'), { how: 'exclusive', verifier: b('abcdefgh') }, owner)
  t.same([e.attr.uid, e.attr.mode], [1000, 0o644])
})

t.test('data across chunk boundaries', async t => {
  const vfs = new MemoryVfs()
  const f = await mkfile(vfs, vfs.root(), 'f')
  const data = Buffer.alloc(200_000)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff
  await vfs.write(f, 1000n, data, 'unstable')
  t.same((await vfs.read(f, 1000n, 200_000)).data, data)
  await vfs.setattr(f, { size: 70_000n })
  await vfs.setattr(f, { size: 300_000n })
  const r = await vfs.read(f, 0n, 300_000)
  t.same(r.data.subarray(1000, 70_000), data.subarray(0, 69_000))
  t.same(r.data.subarray(70_000), Buffer.alloc(230_000), 'zeros after the cut')
  t.equal(r.eof, true)
})

t.test('symlink target limits and close', async t => {
  const vfs = new MemoryVfs()
  await rejectsCode(t, vfs.symlink(vfs.root(), b('l'), Buffer.alloc(0), {}, OWNER), 'ENOENT')
  await rejectsCode(t, vfs.symlink(vfs.root(), b('l'), Buffer.alloc(4096, 0x61), {}, OWNER), 'ENAMETOOLONG')
  await vfs.close()
  await rejectsCode(t, vfs.getattr(vfs.root()), 'ESTALE', 'close drops everything')
})

t.test('readdir resumes correctly after the entry array is compacted', async t => {
  const vfs = new MemoryVfs()
  const d = await mkdir(vfs, vfs.root(), 'd')
  for (let i = 0; i < 300; i++) await mkfile(vfs, d, `e${i}`)
  const first = await vfs.readdir(d, 0n, 10)
  t.same(first.entries.map(e => e.name.toString()).slice(2), ['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7'])
  for (let i = 0; i < 250; i++) await vfs.remove(d, b(`e${i}`))
  const rest = []
  let cookie = first.entries.at(-1)!.cookie
  for (;;) {
    const page = await vfs.readdir(d, cookie, 7)
    rest.push(...page.entries.map(e => e.name.toString()))
    if (page.eof) break
    cookie = page.entries.at(-1)!.cookie
  }
  t.same(rest, Array.from({ length: 50 }, (_, i) => `e${i + 250}`))
  const again = await vfs.readdir(d, 0n, 3)
  t.same(again.entries.map(e => e.name.toString()), ['.', '..', 'e250'])
  t.equal(again.entries[2]?.ref?.gen, (await vfs.lookup(d, b('e250'))).ref.gen, 'entries carry refs')
})

t.test('create attributes may set size and times', async t => {
  const vfs = new MemoryVfs()
  const mtime = { sec: 12345, nsec: 678 }
  const c = await vfs.create(vfs.root(), b('f'), { how: 'unchecked', attr: { size: 10n, mtime } }, OWNER)
  t.same([c.attr.size, c.attr.mtime], [10n, mtime])
  const d = await vfs.mkdir(vfs.root(), b('d'), { atime: mtime }, OWNER)
  t.same(d.attr.atime, mtime)
  await rejectsCode(t, vfs.mkdir(vfs.root(), b('e'), { size: 0n }, OWNER), 'EISDIR')
})

t.test('space of symlinks and files comes back on removal', async t => {
  const vfs = new MemoryVfs()
  const root = vfs.root()
  const free0 = (await vfs.fsstat(root)).freeBytes
  await vfs.symlink(root, b('l'), Buffer.alloc(1000, 0x61), {}, OWNER)
  await mkfile(vfs, root, 'f', 'x'.repeat(100_000))
  const free1 = (await vfs.fsstat(root)).freeBytes
  t.ok(free1 < free0 - 100_000n)
  await vfs.remove(root, b('l'))
  await vfs.remove(root, b('f'))
  t.equal((await vfs.fsstat(root)).freeBytes, free0)
})

t.test('the root mode is configurable', async (t) => {
  const v = new MemoryVfs({ rootMode: 0o755 })
  t.equal((await v.getattr(v.root())).mode, 0o755)
})
