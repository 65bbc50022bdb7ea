/* Local backend: large directories, bounded fd caches, durability paths. */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Vfs } from '../../vfs/types.ts'
import { b, mkfile, readAll } from './conformance-helpers.ts'
import { localDirs, openFdCount, openLocal } from './local-helpers.ts'

t.test('a 100,000-entry directory pages through exactly once per entry, read a bounded number of times', async t => {
  const dirs = localDirs()
  const big = path.join(dirs.root, 'big')
  fs.mkdirSync(big)
  const N = 100_000
  for (let i = 0; i < N; i++) fs.closeSync(fs.openSync(path.join(big, `entry-${i}`), 'w'))
  const vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const d = (await vfs.lookup(vfs.root(), b('big'))).ref
  const seen = new Map<string, number>()
  let cookie = 0n
  let pages = 0
  for (;;) {
    const page = await vfs.readdir(d, cookie, 250)
    pages++
    for (const e of page.entries) seen.set(e.name.toString(), (seen.get(e.name.toString()) ?? 0) + 1)
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) break
    cookie = last.cookie
  }
  t.ok(pages >= N / 250, `${pages} pages`)
  t.equal(seen.size, N + 2, 'every entry, plus . and ..')
  t.same([...seen.values()].filter(n => n !== 1), [], 'each exactly once')
  // One read, plus at most one more if the first was within the racy window after the files were made.
  t.ok(vfs.stats().snapshotBuilds <= 3, `directory read ${vfs.stats().snapshotBuilds} times for ${pages} pages`)
  const e = await vfs.lookup(d, b('entry-4242'))
  t.equal(e.attr.type, 'file', 'READDIR indexed the entries it listed')
})

t.test('fd caches stay bounded while 1,000 files are touched', async t => {
  const dirs = localDirs()
  for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(dirs.root, `f${i}`), `content ${i}`)
  const baseline = openFdCount()
  const vfs = openLocal(dirs, { pathFds: 64, ioFds: 32 })
  t.teardown(() => vfs.close())
  const root = vfs.root()
  let peak = 0
  for (let i = 0; i < 1000; i++) {
    const { ref } = await vfs.lookup(root, b(`f${i}`))
    t.equal(await readAll(vfs, ref), `content ${i}`)
    await vfs.write(ref, 0n, b('C'), 'unstable')
    peak = Math.max(peak, openFdCount() - baseline)
  }
  const s = vfs.stats()
  t.ok(s.pathFds <= 64 && s.ioFds <= 32, `cached fds ${s.pathFds}/${s.ioFds}`)
  // + root fd + index log fd + a few transient ones.
  t.ok(peak <= 64 + 32 + 8, `peak open fds above baseline: ${peak}`)
  await vfs.close()
  t.ok(openFdCount() <= baseline + 1, 'close releases every fd')
})

t.test('durability paths: DATA_SYNC, FILE_SYNC and COMMIT', async t => {
  const dirs = localDirs()
  const vfs: Vfs = openLocal(dirs)
  t.teardown(() => vfs.close())
  const f = await mkfile(vfs, vfs.root(), 'f')
  const u = await vfs.write(f, 0n, b('unstable '), 'unstable')
  t.equal(u.committed, 'unstable')
  const ds = await vfs.write(f, 9n, b('data_sync '), 'data_sync')
  t.equal(ds.committed, 'data_sync')
  const fsy = await vfs.write(f, 19n, b('file_sync'), 'file_sync')
  t.equal(fsy.committed, 'file_sync')
  t.equal(fsy.after.size, 28n)
  const c = await vfs.commit(f, 0n, 0)
  t.equal(c.after.size, 28n)
  t.equal(fs.readFileSync(path.join(dirs.root, 'f'), 'utf8'), 'unstable data_sync file_sync', 'byte-exact on the host')
  fs.writeFileSync(path.join(dirs.root, 'f'), 'host wrote this')
  t.equal(await readAll(vfs, f), 'host wrote this', 'and the other way round')
})
