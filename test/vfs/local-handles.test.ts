/* Local backend: handles across restarts, renames, host changes, inode reuse; the persistent index. */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import type { LocalVfs } from '../../vfs/local/local-vfs.ts'
import { b, mkdir, mkfile, OWNER, readAll, rejectsCode } from './conformance-helpers.ts'
import { listAll } from './conformance-readdir.ts'
import { localDirs, openLocal } from './local-helpers.ts'

function track(t: Test, vfs: LocalVfs): LocalVfs {
  t.teardown(() => vfs.close())
  return vfs
}

t.test('handles survive a restart, also after renames of the file and its parent', async t => {
  const dirs = localDirs()
  const one = openLocal(dirs)
  const root = one.root()
  const a = await mkdir(one, root, 'a')
  const b1 = await mkdir(one, a, 'b')
  const f = await mkfile(one, b1, 'f', 'payload')
  await one.rename(root, b('a'), root, b('a2'))
  await one.rename(b1, b('f'), b1, b('g'))
  t.equal(await readAll(one, f), 'payload', 'works before the restart')
  await one.close()

  const two = track(t, openLocal(dirs))
  t.same(two.root(), root, 'the root ref is stable')
  t.equal(await readAll(two, f), 'payload', 'the old handle still reads the file')
  t.same((await two.lookup(b1, b('..'))).ref, a, '.. of b is the renamed a')
  t.same((await two.lookup(a, b('b'))).ref, b1)
  t.equal(two.stats().searches, 0, 'resolved from the index, no search')
})

t.test('a SIGKILL-like stop (no close) keeps handles flushed before a FILE_SYNC reply', async t => {
  const dirs = localDirs()
  const one = openLocal(dirs)
  const d = await mkdir(one, one.root(), 'd')
  const f = await mkfile(one, d, 'f')
  await one.rename(d, b('f'), d, b('renamed'))
  await one.write(f, 0n, b('durable'), 'file_sync')
  // `one` is never closed: the next instance sees only what reached the log.
  const two = track(t, openLocal(dirs))
  t.equal(await readAll(two, f), 'durable')
  t.equal(two.stats().searches, 0, 'the rename was in the log')
  t.teardown(() => one.close())
})

t.test('index deleted: refs are found by searching the tree', async t => {
  const dirs = localDirs()
  const one = openLocal(dirs)
  const d = await mkdir(one, one.root(), 'd')
  const deep = await mkdir(one, d, 'deep')
  const f = await mkfile(one, deep, 'f', 'found')
  await one.close()
  fs.rmSync(dirs.stateDir, { recursive: true })
  // Also move things on the host, so no old path would help.
  fs.renameSync(path.join(dirs.root, 'd'), path.join(dirs.root, 'moved'))
  const two = track(t, openLocal(dirs))
  t.equal(await readAll(two, f), 'found')
  t.ok(two.stats().searches >= 1, 'a search ran')
  t.same((await two.lookup(deep, b('..'))).ref, d)
  const searches = two.stats().searches
  t.equal((await two.getattr(deep)).type, 'dir', 'the search indexed what it saw')
  t.equal(two.stats().searches, searches, 'no second search')
})

t.test('a torn index log is cut at the last whole record', async t => {
  const dirs = localDirs()
  const one = openLocal(dirs)
  const f = await mkfile(one, one.root(), 'f', 'x')
  await one.close()
  fs.appendFileSync(path.join(dirs.stateDir, 'index.log'), Buffer.from([1, 0, 0, 0]))
  const two = track(t, openLocal(dirs))
  t.equal(await readAll(two, f), 'x')
  await mkfile(two, two.root(), 'g', 'y')
  await two.close()
  const three = track(t, openLocal(dirs))
  t.equal(await readAll(three, (await three.lookup(three.root(), b('g'))).ref), 'y', 'appends after the cut are readable')
})

t.test('changes made on the host are seen', async t => {
  const dirs = localDirs()
  const vfs = track(t, openLocal(dirs))
  const root = vfs.root()
  const f = await mkfile(vfs, root, 'f', 'data')
  const before = await listAll(vfs, root, 100)
  fs.writeFileSync(path.join(dirs.root, 'host-made'), 'from the host')
  await new Promise(r => setTimeout(r, 60))
  const after = (await listAll(vfs, root, 100)).map(e => e.name.toString())
  t.ok(after.includes('host-made') && !before.some(e => e.name.toString() === 'host-made'), 'new file listed')
  const h = await vfs.lookup(root, b('host-made'))
  t.equal(await readAll(vfs, h.ref), 'from the host')

  fs.unlinkSync(path.join(dirs.root, 'f'))
  await rejectsCode(t, vfs.getattr(f), 'ESTALE', 'deleted on the host: stale')
  await rejectsCode(t, vfs.read(f, 0n, 10), 'ESTALE')
  await rejectsCode(t, vfs.lookup(root, b('f')), 'ENOENT')

  fs.renameSync(path.join(dirs.root, 'host-made'), path.join(dirs.root, 'host-renamed'))
  t.equal(await readAll(vfs, h.ref), 'from the host', 'renamed on the host: still the same file')
})

t.test('an inode number reused on the host is ESTALE, never the other file', async t => {
  const dirs = localDirs()
  const first = openLocal(dirs)
  const f = await mkfile(first, first.root(), 'victim', 'old')
  // Our cached fds would keep the deleted inode alive (and its number taken): start from a closed backend.
  await first.close()
  const vfs = track(t, openLocal(dirs))
  const root = vfs.root()
  const p = path.join(dirs.root, 'victim')
  fs.unlinkSync(p)
  // ext4 hands out the lowest free inode of the group once the deletion reached the disk:
  // fill the free numbers below ours until ours comes back.
  execFileSync('sync', ['-f', dirs.root])
  let reused = false
  const fillers: string[] = []
  for (let i = 0; i < 5000 && !reused; i++) {
    const q = path.join(dirs.root, `n${i}`)
    fs.writeFileSync(q, 'new')
    if (fs.lstatSync(q, { bigint: true }).ino === f.id) reused = true
    else fillers.push(q)
  }
  for (const q of fillers) fs.unlinkSync(q)
  if (reused) {
    await rejectsCode(t, vfs.getattr(f), 'ESTALE', 'same inode number, other birth time')
    await rejectsCode(t, vfs.read(f, 0n, 3), 'ESTALE')
    await rejectsCode(t, vfs.write(f, 0n, b('overwrite'), 'unstable'), 'ESTALE')
    const names = fs.readdirSync(dirs.root).filter(n => n.startsWith('n'))
    t.equal(names.length, 1)
    t.equal(fs.readFileSync(path.join(dirs.root, names[0]!), 'utf8'), 'new', 'the other file is untouched')
  } else {
    t.comment('the file system did not reuse the inode number; simulating with a forged generation')
  }
  // Either way: a ref with the right inode and a wrong generation never resolves.
  const g = await mkfile(vfs, root, 'g', 'x')
  await rejectsCode(t, vfs.getattr({ id: g.id, gen: (g.gen + 1) >>> 0 }), 'ESTALE')
  await rejectsCode(t, vfs.getattr({ id: root.id, gen: (root.gen + 1) >>> 0 }), 'ESTALE', 'the root too')
})

t.test('exclusive create verifier and readdir cookies survive a restart', async t => {
  const dirs = localDirs()
  const one = openLocal(dirs)
  const root = one.root()
  const e = await one.create(root, b('e'), { how: 'exclusive', verifier: b('ABCDEFGH') }, OWNER)
  const d = await mkdir(one, root, 'd')
  for (let i = 0; i < 50; i++) await mkfile(one, d, `f${i}`)
  const first = await one.readdir(d, 0n, 20)
  await one.close()
  const two = track(t, openLocal(dirs))
  const replay = await two.create(root, b('e'), { how: 'exclusive', verifier: b('ABCDEFGH') }, OWNER)
  t.equal(replay.attr.fileid, e.attr.fileid, 'retransmitted EXCLUSIVE after restart: same file')
  await rejectsCode(t, two.create(root, b('e'), { how: 'exclusive', verifier: b('HGFEDCBA') }, OWNER), 'EEXIST')
  const names = first.entries.map(x => x.name.toString())
  let cookie = first.entries.at(-1)!.cookie
  for (;;) {
    const page = await two.readdir(d, cookie, 20)
    names.push(...page.entries.map(x => x.name.toString()))
    if (page.eof) break
    cookie = page.entries.at(-1)!.cookie
  }
  t.equal(names.length, 52, 'every entry once, across the restart')
  t.equal(new Set(names).size, 52)
})

t.test('state dir of another root is not used', async t => {
  const dirs = localDirs()
  const other = localDirs()
  const one = openLocal(dirs)
  const f = await mkfile(one, one.root(), 'f', 'x')
  await one.close()
  const two = track(t, openLocal({ root: other.root, stateDir: dirs.stateDir }))
  await rejectsCode(t, two.getattr(f), 'ESTALE', 'the index of another export does not resolve here')
  t.equal(two.stats().indexEntries, 0, 'the old entries were dropped (the other root is empty)')
})

t.test('a search that missed a removed file does not hide a new file that took its inode number', async t => {
  const dirs = localDirs()
  const first = openLocal(dirs)
  const old = await mkfile(first, first.root(), 'victim', 'old')
  await first.close()
  const vfs = track(t, openLocal(dirs))
  const root = vfs.root()
  fs.unlinkSync(path.join(dirs.root, 'victim'))
  execFileSync('sync', ['-f', dirs.root])
  // The search for the removed file finds nothing (and is not repeated for a while).
  await rejectsCode(t, vfs.getattr(old), 'ESTALE', 'the removed file is stale')
  // Files made through us until one takes the freed inode number (ext4 hands out the lowest free one).
  let reused: { ref: { id: bigint; gen: number }; name: string } | undefined
  const fillers: string[] = []
  for (let i = 0; i < 5000 && reused === undefined; i++) {
    const name = `n${i}`
    const ref = await mkfile(vfs, root, name, 'new')
    if (ref.id === old.id) reused = { ref, name }
    else fillers.push(name)
  }
  for (const name of fillers) await vfs.remove(root, b(name))
  if (reused === undefined) {
    t.comment('the file system did not reuse the inode number: nothing to check')
    return
  }
  t.not(reused.ref.gen, old.gen, 'the new file has another generation')
  await vfs.link(reused.ref, root, b('second'))
  // Its first name now holds another file: finding the new file means searching the tree again.
  await mkfile(vfs, root, 'other', 'other')
  await vfs.rename(root, b('other'), root, b(reused.name))
  await vfs.link(reused.ref, root, b('third'))
  t.equal(await readAll(vfs, (await vfs.lookup(root, b('third'))).ref), 'new', 'linked by a third name: the new file was found')
  t.equal((await vfs.getattr(reused.ref)).nlink, 2, 'two names')
})
