/* The name cache READDIRPLUS reuses for a second: filled by LOOKUP, never used across our own changes or a changed directory. */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import type { BigIntStats } from 'node:fs'
import { NameAttrCache } from '../../vfs/local/attr-cache.ts'
import type { Attr, DirEntry, FileRef } from '../../vfs/types.ts'
import type { LocalVfs } from '../../vfs/local/local-vfs.ts'
import { localDirs, openLocal } from './local-helpers.ts'

const OWNER = { uid: 0, gid: 0 }
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

function dirStat(mtimeNs: bigint, ctimeNs = mtimeNs): BigIntStats {
  return { mtimeNs, ctimeNs } as BigIntStats
}

const attr = { type: 'file' } as Attr
const name = Buffer.from('n')

t.test('unit: ttl, directory times, our changes, the racy window, the bound', (t) => {
  const c = new NameAttrCache(1000, 3)
  const d = dirStat(1_000_000_000n) // changed at 1000 ms
  c.put(1n, d, name, { id: 7n, gen: 1, attr }, 1030)
  t.equal(c.size, 0, 'not filled within 50 ms of the directory change')
  c.put(1n, d, name, { id: 7n, gen: 1, attr }, 2000)
  t.match(c.get(1n, d, name, 2500), { id: 7n, gen: 1, attr }, 'a hit within the ttl')
  t.equal(c.hits, 1)
  t.equal(c.get(2n, d, name, 2500), undefined, 'another directory')
  t.equal(c.get(1n, d, Buffer.from('m'), 2500), undefined, 'another name')
  t.equal(c.get(1n, dirStat(1_000_000_001n), name, 2500), undefined, 'the directory changed (mtime)')
  c.put(1n, d, name, { id: 7n, gen: 1, attr }, 2000)
  t.equal(c.get(1n, dirStat(1_000_000_000n, 1_000_000_002n), name, 2500), undefined, 'the directory changed (ctime)')
  c.put(1n, d, name, { id: 7n, gen: 1, attr }, 2000)
  t.equal(c.get(1n, d, name, 3001), undefined, 'expired after the ttl')
  c.put(1n, d, name, { id: 7n, gen: 1, attr }, 2000)
  c.changed(7n, 2100)
  t.equal(c.get(1n, d, name, 2200), undefined, 'changed through us after the fill')
  c.put(1n, d, name, { id: 7n, gen: 1, attr }, 2300)
  t.ok(c.get(1n, d, name, 2400), 'filled again after the change: used')
  c.put(1n, d, Buffer.from('a'), { id: 8n, gen: 1, attr }, 2300)
  c.put(1n, d, Buffer.from('b'), { id: 9n, gen: 1, attr }, 2300)
  t.equal(c.size, 3)
  c.put(1n, d, Buffer.from('c'), { id: 10n, gen: 1, attr }, 2300)
  t.equal(c.size, 1, 'full: started over')
  c.sweep(2300 + 1001)
  t.equal(c.size, 0, 'swept once expired')
  t.equal(new NameAttrCache(0, 10).size, 0)
  const off = new NameAttrCache(0, 10)
  off.put(1n, d, name, { id: 7n, gen: 1, attr }, 5000)
  t.equal(off.size, 0, 'ttl 0: never filled')
  t.end()
})

async function listing(vfs: LocalVfs, dir: FileRef): Promise<Map<string, DirEntry>> {
  const page = await vfs.readdir(dir, 0n, 1000)
  return new Map(page.entries.map(e => [e.name.toString(), e]))
}

async function setup(t: Test, extra = {}): Promise<{ vfs: LocalVfs; root: string; ref: (n: string) => Promise<FileRef> }> {
  const dirs = localDirs()
  const vfs = openLocal(dirs, extra)
  t.teardown(() => vfs.close())
  for (const n of ['a', 'b', 'c']) fs.writeFileSync(path.join(dirs.root, n), n)
  // Past the racy window of the directory's last change, so lookups fill the cache.
  await sleep(80)
  return { vfs, root: dirs.root, ref: async (n: string) => (await vfs.lookup(vfs.root(), Buffer.from(n))).ref }
}

t.test('READDIRPLUS reuses what LOOKUP saw, and sees our WRITE and SETATTR at once', async (t) => {
  const { vfs, ref } = await setup(t)
  const a = await ref('a')
  const b = await ref('b')
  await ref('c')
  const hits = vfs.stats().nameCacheHits
  let list = await listing(vfs, vfs.root())
  t.equal(vfs.stats().nameCacheHits - hits, 3, 'the three names came from the cache')
  t.equal(list.get('a')?.attr?.size, 1n)
  await vfs.write(a, 0n, Buffer.from('longer'), 'unstable')
  await vfs.setattr(b, { mode: 0o600 })
  list = await listing(vfs, vfs.root())
  t.equal(list.get('a')?.attr?.size, 6n, 'our WRITE is seen')
  t.equal(list.get('b')?.attr?.mode, 0o600, 'our SETATTR is seen')
  t.equal(list.get('c')?.attr?.size, 1n)
})

t.test('names changed on the host are seen at once (the directory changed)', async (t) => {
  const { vfs, root, ref } = await setup(t)
  const old = await ref('a')
  await ref('b')
  fs.rmSync(path.join(root, 'a'))
  fs.writeFileSync(path.join(root, 'a'), 'new content')
  fs.renameSync(path.join(root, 'b'), path.join(root, 'b2'))
  const list = await listing(vfs, vfs.root())
  const a = list.get('a')
  // ext4 may give the new file the same inode number: the generation tells them apart.
  t.ok(a?.fileid !== old.id || a.ref?.gen !== old.gen, 'the new file, not the removed one')
  t.equal(a?.attr?.size, 11n)
  t.equal(list.has('b'), false)
  t.equal(list.get('b2')?.attr?.size, 1n)
})

t.test('our namespace changes: hard link counts, renames, removals', async (t) => {
  const { vfs, ref } = await setup(t)
  const a = await ref('a')
  const sub = await vfs.mkdir(vfs.root(), Buffer.from('sub'), {}, OWNER)
  await sleep(80)
  await ref('sub')
  await ref('a')
  await vfs.link(a, sub.ref, Buffer.from('a-link'))
  let list = await listing(vfs, vfs.root())
  t.equal(list.get('a')?.attr?.nlink, 2, 'LINK: the new link count')
  await sleep(80)
  await vfs.lookup(sub.ref, Buffer.from('a-link'))
  await vfs.remove(vfs.root(), Buffer.from('a'))
  const inSub = await listing(vfs, sub.ref)
  t.equal(inSub.get('a-link')?.attr?.nlink, 1, 'REMOVE of the other link: the link count in another directory')
  await ref('b')
  await sleep(80)
  await ref('sub')
  await vfs.rename(vfs.root(), Buffer.from('b'), sub.ref, Buffer.from('b'))
  list = await listing(vfs, vfs.root())
  t.equal(list.has('b'), false)
  t.same(list.get('sub')?.attr, await vfs.getattr(sub.ref), 'RENAME into sub: its new times')
  await sleep(80)
  await ref('sub')
  await vfs.create(sub.ref, Buffer.from('x'), { how: 'unchecked', attr: {} }, OWNER)
  list = await listing(vfs, vfs.root())
  t.same(list.get('sub')?.attr, await vfs.getattr(sub.ref), 'CREATE in sub (the root unchanged): its new times')
})

t.test('nameCacheMs 0: host changes to a file are seen at once', async (t) => {
  const { vfs, root, ref } = await setup(t, { nameCacheMs: 0 })
  await ref('c')
  fs.chmodSync(path.join(root, 'c'), 0o640)
  const list = await listing(vfs, vfs.root())
  t.equal(list.get('c')?.attr?.mode, 0o640)
  t.equal(vfs.stats().nameCacheHits, 0)
})
