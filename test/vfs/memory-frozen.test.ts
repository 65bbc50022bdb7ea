/*
 * MemoryVfs.freeze(): a read-only copy of the tree at one instant. Everything the live tree does
 * after it (writes in place to shared chunks, truncate, remove, rename, new names, setattr) leaves
 * the copy as it was: same bytes, attributes, fileids, names and readdir cookies. Changes to the
 * copy are EROFS; after release() its handles are ESTALE and the live tree goes on unchanged.
 */
import t from 'tap'
import { CHUNK_SIZE } from '../../vfs/memory/file-data.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { Vfs } from '../../vfs/types.ts'
import { link, mkdirp, remove, rename, resolve, snapshotTree, symlink, writeFile } from '../backup/helpers.ts'

const ROOT = { uid: 0, gid: 0 }

async function tree(): Promise<MemoryVfs> {
  const vfs = new MemoryVfs()
  await mkdirp(vfs, 'a/b')
  await writeFile(vfs, 'a/small.txt', 'small\n')
  const big = Buffer.alloc(3 * CHUNK_SIZE + 123)
  for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff
  await writeFile(vfs, 'a/b/big.bin', big)
  const sparse = await writeFile(vfs, 'sparse', '')
  await vfs.write(sparse, BigInt(5 * CHUNK_SIZE), Buffer.from('tail'), 'unstable')
  await symlink(vfs, 'a/link', 'b/big.bin')
  await link(vfs, 'a/small.txt', 'hard')
  await vfs.mknod(vfs.root(), Buffer.from('fifo'), 'fifo', { major: 0, minor: 0 }, { mode: 0o600 }, ROOT)
  return vfs
}

t.test('the copy keeps the tree as it was while the live tree changes', async (t) => {
  const vfs = await tree()
  const before = await snapshotTree(vfs, { ids: true, dirTimes: true })
  const frozen = vfs.freeze()
  t.equal(frozen.size, 8, 'root, a, a/b, 3 files, a symlink, a fifo: the hard link is one of the files')
  t.strictSame(await snapshotTree(frozen, { ids: true, dirTimes: true }), before, 'identical at once')

  const big = await resolve(vfs, 'a/b/big.bin')
  await vfs.write(big, 10n, Buffer.from('CHANGED IN PLACE'), 'unstable')
  await vfs.write(big, BigInt(CHUNK_SIZE + 5), Buffer.alloc(70_000, 0xee), 'unstable')
  await vfs.setattr(await resolve(vfs, 'sparse'), { size: 10n })
  await vfs.setattr(await resolve(vfs, 'a/small.txt'), { mode: 0o600 })
  await vfs.write(await resolve(vfs, 'hard'), 0n, Buffer.from('SMALL'), 'unstable')
  await remove(vfs, 'fifo')
  await rename(vfs, 'a/link', 'a/b/moved-link')
  await writeFile(vfs, 'a/new.txt', 'new')
  await mkdirp(vfs, 'a/b/c')

  t.strictSame(await snapshotTree(frozen, { ids: true, dirTimes: true }), before, 'the copy is unchanged')
  const live = await snapshotTree(vfs)
  t.equal(Buffer.from(live['a/b/big.bin']?.data ?? '', 'base64').subarray(10, 26).toString(), 'CHANGED IN PLACE', 'the live file has the write')
  t.equal(Buffer.from(live['a/small.txt']?.data ?? '', 'base64').toString(), 'SMALL\n')
  t.equal(live['sparse']?.size, '10')
  t.equal(live['fifo'], undefined)

  const fb = await frozen.lookup(await frozen.lookup(await frozen.lookup(frozen.root(), Buffer.from('a')).then((r) => r.ref), Buffer.from('b')).then((r) => r.ref), Buffer.from('big.bin'))
  const r = await frozen.read(fb.ref, 0n, 64)
  t.equal(r.data.subarray(10, 26).toString('latin1'), Buffer.alloc(16).toString('latin1'), 'the frozen bytes under the overwrite are the old ones')
  t.equal(r.eof, false)
  const end = await frozen.read(fb.ref, BigInt(3 * CHUNK_SIZE + 100), 1000)
  t.match([end.data.length, end.eof], [23, true], 'short at the frozen end of file')
  await t.rejects(frozen.lookup(frozen.root(), Buffer.from('new.txt')), { code: 'ENOENT' })
  t.equal((await frozen.lookup(frozen.root(), Buffer.from('..'))).ref.id, frozen.root().id)

  const asVfs: Vfs = frozen
  for (const op of [async (): Promise<unknown> => asVfs.write(fb.ref, 0n, Buffer.from('x'), 'unstable'), async (): Promise<unknown> => asVfs.remove(frozen.root(), Buffer.from('sparse')), async (): Promise<unknown> => asVfs.mkdir(frozen.root(), Buffer.from('d'), {}, ROOT)]) {
    await t.rejects(op(), { code: 'EROFS' })
  }
  await t.rejects(frozen.readlink(fb.ref), { code: 'EINVAL' })
  await t.rejects(frozen.read(frozen.root(), 0n, 1), { code: 'EINVAL' })
  await t.rejects(frozen.readdir(fb.ref, 0n, 10), { code: 'ENOTDIR' })
  t.match(await frozen.fsstat(frozen.root()), { totalBytes: BigInt(64 * 1024 ** 3) })
  t.match(await frozen.pathconf(frozen.root()), { nameMax: 255 })
  t.equal(frozen.capabilities().hardLinks, true)

  frozen.release()
  await t.rejects(frozen.getattr(frozen.root()), { code: 'ESTALE' })
  await vfs.write(big, 0n, Buffer.from('after'), 'unstable')
  t.equal((await vfs.read(big, 0n, 5)).data.toString(), 'after', 'the live tree goes on after the release')
})

t.test('readdir of the copy pages with the live cookies', async (t) => {
  const vfs = new MemoryVfs()
  const d = await mkdirp(vfs, 'many')
  for (let i = 0; i < 50; i++) await writeFile(vfs, `many/f${i}`, String(i))
  await remove(vfs, 'many/f7')
  const frozen = vfs.freeze()
  const fd = (await frozen.lookup(frozen.root(), Buffer.from('many'))).ref
  const liveAll = (await vfs.readdir(d, 0n, 1000)).entries.map((e) => [e.name.toString(), e.cookie])
  for (let i = 50; i < 60; i++) await writeFile(vfs, `many/f${i}`, String(i))
  await remove(vfs, 'many/f8')
  const paged: Array<[string, bigint]> = []
  let cookie = 0n
  for (let n = 0; n < 100; n++) {
    const page = await frozen.readdir(fd, cookie, 7)
    for (const e of page.entries) paged.push([e.name.toString(), e.cookie])
    cookie = page.entries.at(-1)?.cookie ?? cookie
    if (page.eof) break
  }
  t.strictSame(paged, liveAll, 'the names and cookies listed at the freeze, in pages')
  t.match(await frozen.readdir(fd, 0n, 1), { entries: [{ cookie: 1n }], eof: false })
  t.match(await frozen.readdir(fd, 1n, 1), { entries: [{ cookie: 2n }], eof: false })
  t.strictSame((await frozen.readdir(fd, 1000n, 10)).entries, [], 'past the end: empty, eof')
  await frozen.close()
})
