/*
 * The engine's readdir gives each entry its handle and attributes (from the entry's inode), so
 * READDIRPLUS needs no lookup per name: they must be exactly what lookup gives, for every type,
 * in a directory big enough to be an htree, across pages. Readers share one Attr per cached inode
 * view, so the attributes must follow each change; and listings resumed at a cookie (never from
 * the start) must give each name once however the pages fall and whatever changes between them.
 */
import t from 'tap'
import type { DirEntry } from '../../../vfs/types.ts'
import { freshEngine } from './engine-helpers.ts'

const owner = { uid: 1000, gid: 100 }

t.test('readdir entries carry the ref and attributes lookup gives, over 600 entries in pages of 16', async (t) => {
  const e = await freshEngine(t, 'engine-readdir-attrs')
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

t.test('getattr, lookup and readdir attributes follow every change (a view\'s attributes are never stale)', async (t) => {
  const e = await freshEngine(t, 'engine-readdir-attrs')
  const { ref: dir } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  for (let i = 0; i < 300; i++) await e.create(dir, Buffer.from(`f${i}`), { how: 'guarded', attr: { mode: 0o644 } }, owner)
  const name = Buffer.from('f7')
  const { ref } = await e.lookup(dir, name)
  const first = await e.getattr(ref)
  t.equal(first.size, 0n, 'empty at first')
  await e.write(ref, 0n, Buffer.alloc(5000, 1), 'file_sync')
  await e.setattr(ref, { mode: 0o600 })
  const after = await e.getattr(ref)
  t.equal(after.size, 5000n, 'getattr: the new size')
  t.equal(after.mode, 0o600, 'getattr: the new mode')
  t.equal(first.size, 0n, 'the attributes handed out before are not changed under their holder')
  t.equal(first.mode, 0o644, 'nor their mode')
  t.equal((await e.lookup(dir, name)).attr.size, 5000n, 'lookup: the new size')
  let listed: DirEntry | undefined
  for (let cookie = 0n; listed === undefined;) {
    const page = await e.readdir(dir, cookie, 37)
    listed = page.entries.find((x) => x.name.equals(name))
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) break
    cookie = last.cookie
  }
  t.equal(listed?.attr?.size, 5000n, 'readdir: the new size')
  t.equal(listed?.attr?.mode, 0o600, 'readdir: the new mode')
})

t.test('pages of varied sizes give each lasting name once across changes, and the names and cookies of one listing when still', async (t) => {
  const seed = Number(process.env.READDIR_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (READDIR_SEED=${seed} repeats this run)`)
  let s = seed >>> 0
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    return s / 2 ** 32
  }
  const e = await freshEngine(t, 'engine-readdir-attrs')
  const { ref: dir } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  for (let i = 0; i < 800; i++) await e.create(dir, Buffer.from(`name-${i}`), { how: 'guarded', attr: {} }, owner)
  const original = new Set(Array.from({ length: 800 }, (_, i) => `name-${i}`))
  const removed = new Set<string>()
  const seen = new Map<string, number>()
  let added = 0
  for (let cookie = 0n, pages = 0; pages < 5000; pages++) {
    const page = await e.readdir(dir, cookie, 1 + Math.floor(rand() * 60))
    for (const x of page.entries) seen.set(x.name.toString(), (seen.get(x.name.toString()) ?? 0) + 1)
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) break
    cookie = last.cookie
    // Between pages: add a name, remove one (listed or not yet).
    await e.create(dir, Buffer.from(`new-${added++}`), { how: 'guarded', attr: {} }, owner)
    const victim = `name-${Math.floor(rand() * 800)}`
    if (!removed.has(victim)) {
      await e.remove(dir, Buffer.from(victim))
      removed.add(victim)
    }
  }
  const lasting = [...original].filter((n) => !removed.has(n))
  t.equal(lasting.filter((n) => seen.get(n) !== 1).length, 0, `each of the ${lasting.length} names never removed is listed exactly once`)
  t.equal([...seen.values()].filter((c) => c !== 1).length, 0, 'no name twice')
  // Now still: pages of varied sizes give exactly the names and cookies of one listing, in its order.
  const whole = await e.readdir(dir, 0n, 4096)
  t.ok(whole.eof, 'one call lists it all')
  const paged: Array<[string, bigint]> = []
  for (let cookie = 0n; ;) {
    const page = await e.readdir(dir, cookie, 1 + Math.floor(rand() * 60))
    for (const x of page.entries) paged.push([x.name.toString(), x.cookie])
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) break
    cookie = last.cookie
  }
  t.same(paged, whole.entries.map((x) => [x.name.toString(), x.cookie]), `${paged.length} entries: the same names and cookies in the same order`)
})
