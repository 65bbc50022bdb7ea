/*
 * The engine's readdir gives each entry its handle and attributes (from the entry's inode), so
 * READDIRPLUS needs no lookup per name: they must be exactly what lookup gives, for every type,
 * in a directory big enough to be an htree, across pages.
 */
import t from 'tap'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { DirEntry } from '../../../vfs/types.ts'
import { scratch } from './format-helpers.ts'

const owner = { uid: 1000, gid: 100 }

t.test('readdir entries carry the ref and attributes lookup gives, over 600 entries in pages of 16', async (t) => {
  const image = path.join(scratch(t, 'engine-readdir-attrs'), 'e.img')
  const dev = await ImageFile.create(image, 64 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  const e = await openEngine(image)
  t.teardown(() => e.close())
  const { ref: dir } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  for (let i = 0; i < 597; i++) {
    const f = await e.create(dir, Buffer.from(`file-${i}`), { how: 'guarded', attr: { mode: 0o600 + (i % 64) } }, owner)
    if (i % 100 === 0) await e.write(f.ref, 0n, Buffer.alloc(i + 1, 7), 'file_sync')
  }
  await e.mkdir(dir, Buffer.from('sub'), {}, owner)
  await e.symlink(dir, Buffer.from('link'), Buffer.from('file-1'), {}, owner)
  const got: DirEntry[] = []
  let cookie = 0n
  for (;;) {
    const page = await e.readdir(dir, cookie, 16)
    got.push(...page.entries)
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) break
    cookie = last.cookie
  }
  const names = got.map((g) => g.name.toString()).filter((n) => n !== '.' && n !== '..').sort()
  const want = [...Array.from({ length: 597 }, (_, i) => `file-${i}`), 'sub', 'link'].sort()
  t.same(names, want, 'every name once (besides . and .., whether listed or not)')
  let mismatches = 0
  for (const entry of got) {
    const want = await e.lookup(dir, entry.name)
    if (entry.ref === undefined || entry.attr === undefined) { mismatches++; t.fail(`${entry.name.toString()}: no ref or attr`); continue }
    if (entry.ref.id !== want.ref.id || entry.ref.gen !== want.ref.gen) { mismatches++; t.fail(`${entry.name.toString()}: ref differs`) }
    if (JSON.stringify(entry.attr, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v) !== JSON.stringify(want.attr, (_k, v: unknown) => typeof v === 'bigint' ? v.toString() : v)) {
      mismatches++
      t.fail(`${entry.name.toString()}: attributes differ`)
    }
    if (entry.fileid !== want.ref.id) { mismatches++; t.fail(`${entry.name.toString()}: fileid ${entry.fileid} is not the ref's ${want.ref.id}`) }
  }
  t.equal(mismatches, 0, 'every entry matches its lookup')
})
