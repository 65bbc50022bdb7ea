/*
 * vfs/snapdir over a real engine on an OriginDevice (MemoryDevices): the composed ids, `..` at
 * both ends, hidden and visible `.snapshot`, EROFS for every change inside it, ESTALE after a
 * delete, and a reused table slot that does not answer the deleted snapshot's handles.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import { VfsError } from '../../../vfs/errors.ts'
import { SNAPDIR_ID, SnapdirVfs } from '../../../vfs/snapdir/snapdir-vfs.ts'
import type { FileRef, Vfs } from '../../../vfs/types.ts'
import { OriginDevice } from '../../../vfs/volume/snapshot.ts'
import { SnapshotStore } from '../../../vfs/volume/snapshot-store.ts'
import { createVolumeSnapshot, deleteVolumeSnapshot, snapshotSource, volumeSnapshotsOf, wrapSnapshots } from '../../../server/volume-snapshots.ts'

const owner = { uid: 0, gid: 0 }
const MiB = 1024 * 1024
const b = (s: string): Buffer => Buffer.from(s)

async function setup(t: Test, visible = false): Promise<{ view: SnapdirVfs; live: Awaited<ReturnType<typeof openEngineOn>>; origin: OriginDevice; v: { config: { name: string }; origin: OriginDevice } }> {
  const data = new MemoryDevice(32 * MiB)
  await makeFileSystem(data, { zeroed: true })
  const store = await SnapshotStore.format(new MemoryDevice(8 * MiB), { chunkSize: 4096 })
  const origin = new OriginDevice(data, store)
  const live = await openEngineOn(origin)
  const view = new SnapdirVfs(live, snapshotSource(origin), { visible })
  t.teardown(() => view.close())
  return { view, live, origin, v: { config: { name: 'test' }, origin } }
}

async function names(vfs: Vfs, dir: FileRef): Promise<string[]> {
  const out: string[] = []
  let cookie = 0n
  for (;;) {
    const page = await vfs.readdir(dir, cookie, 2)
    for (const e of page.entries) {
      out.push(e.name.toString())
      cookie = e.cookie
    }
    if (page.eof) return out
  }
}

t.test('ids, lookups, `..` and listings of .snapshot and a snapshot', async (t) => {
  const { view, v, live } = await setup(t)
  const root = view.root()
  const f = await view.create(root, b('f'), { how: 'guarded', attr: {} }, owner)
  await view.write(f.ref, 0n, b('old bytes'), 'unstable')
  const made = await createVolumeSnapshot(v, 'nightly', live)
  t.equal(made.id, 0)
  await view.write(f.ref, 0n, b('NEW'), 'file_sync')

  const sd = await view.lookup(root, b('.snapshot'))
  t.equal(sd.ref.id, SNAPDIR_ID, '.snapshot has the reserved id 2^40 - 1')
  t.equal(sd.attr.fileid, SNAPDIR_ID)
  t.equal(sd.attr.type, 'dir')
  t.equal(sd.attr.mode & 0o777, 0o555)
  t.notOk((await names(view, root)).includes('.snapshot'), 'hidden from the root listing by default')
  t.strictSame(await names(view, sd.ref), ['.', '..', 'nightly'], '.snapshot lists its snapshots')

  const snapRoot = await view.lookup(sd.ref, b('nightly'))
  t.equal(snapRoot.ref.id, (1n << 40n) | root.id, "the snapshot's root: (id + 1) << 40 | the live root's id")
  t.equal(snapRoot.attr.fileid, snapRoot.ref.id, 'fileid is the composed id')
  const sf = await view.lookup(snapRoot.ref, b('f'))
  t.equal(sf.ref.id, (1n << 40n) | f.ref.id, 'a file in the snapshot: the same composition')
  t.equal(sf.attr.fileid, sf.ref.id)
  t.equal((await view.read(sf.ref, 0n, 100)).data.toString(), 'old bytes', 'reads the bytes as they were')
  t.equal((await view.read(f.ref, 0n, 100)).data.toString(), 'NEW bytes', 'the live file has the new ones')
  t.equal((await view.getattr(sf.ref)).fileid, sf.ref.id)

  t.equal((await view.lookup(snapRoot.ref, b('..'))).ref.id, SNAPDIR_ID, "`..` of a snapshot's root is .snapshot")
  t.strictSame(await view.lookup(sd.ref, b('..')).then((r) => r.ref), root, '`..` of .snapshot is the export root')
  t.equal((await view.lookup(sd.ref, b('.'))).ref.id, SNAPDIR_ID)
  const listed = await view.readdir(snapRoot.ref, 0n, 100)
  t.equal(listed.entries.find((e) => e.name.equals(b('..')))?.fileid, SNAPDIR_ID, "READDIR's `..` in a snapshot root is .snapshot")
  t.equal(listed.entries.find((e) => e.name.equals(b('f')))?.fileid, sf.ref.id, 'READDIR entries carry the composed ids')
  await t.rejects(view.lookup(sd.ref, b('nope')), new VfsError('ENOENT'))
  const both = await Promise.all([createVolumeSnapshot(v, 'a', live), createVolumeSnapshot(v, 'b', live)])
  t.strictSame(both.map((s) => s.name), ['a', 'b'], 'two creates at once queue (the second does not meet a frozen engine)')
  t.equal((await view.fsstat(sd.ref)).totalBytes, (await view.fsstat(root)).totalBytes, 'FSSTAT of .snapshot is the live one')
})

t.test('a snapshot taken under concurrent writers is an e2fsck-clean file system holding every answered write', async (t) => {
  const { view, v, live, origin } = await setup(t)
  const root = view.root()
  const answered: string[] = []
  let stop = false
  const writers = Array.from({ length: 4 }, async (_, w) => {
    // Bounded: on memory devices the writers would fill the file system within the wait.
    for (let i = 0; !stop && i < 400; i++) {
      const name = `w${w}-${i}`
      const f = await view.create(root, b(name), { how: 'guarded', attr: {} }, owner)
      await view.write(f.ref, 0n, Buffer.alloc(1000 + i, w + 1), 'unstable')
      answered.push(name)
      if (i % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
  })
  await new Promise((resolve) => setTimeout(resolve, 30))
  const before = answered.length
  const made = createVolumeSnapshot(v, 'busy', live)
  const seen = [...answered.slice(0, before)]
  await made
  stop = true
  await Promise.all(writers)
  const image = join(t.testdir(), 'busy.img')
  const snap = origin.snapshot('busy')
  writeFileSync(image, await snap.read(0, snap.size))
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(r.status, 0, `e2fsck -fn of the snapshot is clean\n${r.stdout}${r.stderr}`)
  const sr = (await view.lookup((await view.lookup(root, b('.snapshot'))).ref, b('busy'))).ref
  let missing = 0
  for (const name of seen) if (await view.lookup(sr, b(name)).then(() => false, () => true)) missing++
  t.ok(seen.length > 0 && answered.length > seen.length, `writers ran before and after the create (${seen.length}, ${answered.length})`)
  t.equal(missing, 0, `each of the ${seen.length} files answered before the create is in the snapshot`)
})

t.test('every change inside .snapshot is EROFS; .snapshot in the root cannot be made or removed', async (t) => {
  const { view, v, live } = await setup(t)
  const root = view.root()
  const f = await view.create(root, b('f'), { how: 'guarded', attr: {} }, owner)
  const d = await view.mkdir(root, b('d'), {}, owner)
  await createVolumeSnapshot(v, 's', live)
  const sd = (await view.lookup(root, b('.snapshot'))).ref
  const sr = (await view.lookup(sd, b('s'))).ref
  const sf = (await view.lookup(sr, b('f'))).ref
  const rofs = new VfsError('EROFS')
  await t.rejects(view.write(sf, 0n, b('x'), 'file_sync'), rofs, 'write')
  await t.rejects(view.setattr(sf, { mode: 0o600 }), rofs, 'setattr')
  await t.rejects(view.commit(sf, 0n, 0), rofs, 'commit')
  await t.rejects(view.create(sr, b('n'), { how: 'guarded', attr: {} }, owner), rofs, 'create in a snapshot')
  await t.rejects(view.create(sd, b('n'), { how: 'guarded', attr: {} }, owner), rofs, 'create in .snapshot')
  await t.rejects(view.mkdir(sr, b('n'), {}, owner), rofs, 'mkdir')
  await t.rejects(view.symlink(sr, b('n'), b('t'), {}, owner), rofs, 'symlink')
  await t.rejects(view.mknod(sr, b('n'), 'fifo', { major: 0, minor: 0 }, {}, owner), rofs, 'mknod')
  await t.rejects(view.remove(sr, b('f')), rofs, 'remove')
  await t.rejects(view.rmdir(sr, b('d')), rofs, 'rmdir')
  await t.rejects(view.rmdir(sd, b('s')), rofs, 'rmdir of a snapshot')
  await t.rejects(view.rename(sr, b('f'), root, b('g')), rofs, 'rename out of a snapshot')
  await t.rejects(view.rename(root, b('f'), sr, b('g')), rofs, 'rename into a snapshot')
  await t.rejects(view.link(sf, root, b('g')), rofs, 'link of a snapshot file')
  await t.rejects(view.link(f.ref, sr, b('g')), rofs, 'link into a snapshot')
  await t.rejects(view.rmdir(root, b('.snapshot')), rofs, 'rmdir .snapshot')
  await t.rejects(view.mkdir(root, b('.snapshot'), {}, owner), new VfsError('EEXIST'), 'mkdir .snapshot in the root')
  t.ok((await view.lookup(d.ref, b('..'))).ref.id === root.id, 'live `..` untouched')
})

t.test('snapdir=visible lists .snapshot at the end of the root; paging resumes across it', async (t) => {
  const { view } = await setup(t, true)
  const root = view.root()
  for (const n of ['a', 'b', 'c']) await view.create(root, b(n), { how: 'guarded', attr: {} }, owner)
  const all = await names(view, root)
  t.equal(all.at(-1), '.snapshot', 'listed last')
  t.equal(all.filter((n) => n === '.snapshot').length, 1, 'once')
  t.ok(['a', 'b', 'c', '.', '..'].every((n) => all.includes(n)))
})

t.test('after a delete its handles are ESTALE; a reused table slot does not answer them', async (t) => {
  const { view, v, live, origin } = await setup(t)
  const root = view.root()
  const f = await view.create(root, b('f'), { how: 'guarded', attr: {} }, owner)
  await view.write(f.ref, 0n, b('first'), 'file_sync')
  await createVolumeSnapshot(v, 'one', live)
  const sd = (await view.lookup(root, b('.snapshot'))).ref
  const old = (await view.lookup((await view.lookup(sd, b('one'))).ref, b('f'))).ref
  await deleteVolumeSnapshot(v, 'one')
  await origin.whenIdle()
  const stale = new VfsError('ESTALE')
  await t.rejects(view.getattr(old), stale, 'getattr of a deleted snapshot\'s file')
  await t.rejects(view.read(old, 0n, 10), stale, 'read')
  t.strictSame(await names(view, sd), ['.', '..'], 'gone from the listing')
  await t.rejects(view.lookup(sd, b('one')), new VfsError('ENOENT'))

  await view.write(f.ref, 0n, b('second'), 'file_sync')
  const two = await createVolumeSnapshot(v, 'two', live)
  t.equal(two.id, 0, 'the new snapshot reuses table slot 0')
  await t.rejects(view.getattr(old), stale, 'the old handle stays ESTALE (its generation carries the creation sequence)')
  const now = (await view.lookup((await view.lookup(sd, b('two'))).ref, b('f'))).ref
  t.equal(now.id, old.id, 'same composed id')
  t.not(now.gen, old.gen, 'another generation')
  t.equal((await view.read(now, 0n, 10)).data.toString(), 'second')
  await t.rejects(view.getattr({ id: SNAPDIR_ID, gen: 7 }), stale, 'a .snapshot handle of another generation')
  await t.rejects(view.getattr({ id: 5n << 40n, gen: 0 }), stale, 'a snapshot id never made')
})

t.test('wrapSnapshots: the view and its operations; a volume without a store gets the engine and a refusal', async (t) => {
  const data = new MemoryDevice(16 * MiB)
  await makeFileSystem(data, { zeroed: true })
  const plain = await openEngineOn(data)
  const vfs = wrapSnapshots(plain, { config: { name: 'plain' } })
  t.equal(vfs, plain, 'no store: the engine itself')
  await t.rejects(volumeSnapshotsOf(vfs)?.create('s') ?? Promise.resolve(undefined), {
    code: 'VOLUME_SNAPSHOT', message: 'VOLUME_SNAPSHOT: volume plain has no snapshot store (create it with --snapshot-store SIZE)',
  })
  await plain.close()

  const { live, origin } = await setup(t)
  const view = wrapSnapshots(live, { config: { name: 'kept' }, origin }, { snapdirVisible: true })
  t.ok(view instanceof SnapdirVfs, 'a store: the .snapshot view')
  const ops = volumeSnapshotsOf(view)
  await ops?.create('x')
  t.strictSame(ops?.list().map((s) => s.name), ['x'])
  t.ok((await names(view, view.root())).includes('.snapshot'), 'visible as asked')
  await ops?.delete('x')
  t.strictSame(ops?.list().map((s) => [s.name, s.state]), [['x', 'deleting']], 'deleting at once, durably')
  await origin.whenIdle()
  t.strictSame(ops?.list(), [], 'gone once the background delete is done')
})
