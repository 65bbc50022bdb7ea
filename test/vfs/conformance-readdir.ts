/* VFS conformance: READDIR paging and cookie stability (RFC 1813 §3.3.16). */
import type { Test } from 'tap'
import type { DirEntry, FileRef, Vfs } from '../../vfs/types.ts'
import { b, fresh, mkdir, mkfile, OWNER, rejectsCode } from './conformance-helpers.ts'
import type { MakeVfs } from './conformance-helpers.ts'

/** The whole listing, page by page. */
export async function listAll(vfs: Vfs, dir: FileRef, max: number): Promise<DirEntry[]> {
  const out: DirEntry[] = []
  let cookie = 0n
  for (;;) {
    const page = await vfs.readdir(dir, cookie, max)
    out.push(...page.entries)
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) return out
    cookie = last.cookie
  }
}

export function readdirConformance(t: Test, makeVfs: MakeVfs): void {
  t.test('readdir: small directory', async t => {
    const vfs = await fresh(t, makeVfs)
    const root = vfs.root()
    const d = await mkdir(vfs, root, 'd')
    const empty = await vfs.readdir(d, 0n, 100)
    t.same(empty.entries.map(e => e.name.toString()), ['.', '..'])
    t.equal(empty.eof, true)
    t.equal(empty.entries[0]?.fileid, d.id)
    t.equal(empty.entries[1]?.fileid, root.id)
    const f = await mkfile(vfs, d, 'f')
    await mkdir(vfs, d, 'sub')
    await vfs.symlink(d, b('l'), b('f'), {}, OWNER)
    const all = await vfs.readdir(d, 0n, 100)
    t.equal(all.eof, true)
    t.same(all.entries.map(e => e.name.toString()).sort(), ['.', '..', 'f', 'l', 'sub'])
    for (const e of all.entries) t.not(e.cookie, 0n, `cookie of ${e.name.toString()} is not 0`)
    t.equal(new Set(all.entries.map(e => e.cookie)).size, all.entries.length, 'cookies are distinct')
    const fe = all.entries.find(e => e.name.toString() === 'f')
    t.equal(fe?.fileid, f.id)
    if (fe?.ref !== undefined) t.same(fe.ref, f)
    // One entry per page still makes progress and ends.
    t.same((await listAll(vfs, d, 1)).map(e => e.name.toString()), all.entries.map(e => e.name.toString()))
    const file = await mkfile(vfs, root, 'plain')
    await rejectsCode(t, vfs.readdir(file, 0n, 10), 'ENOTDIR')
  })

  t.test('readdir: eof on the last page', async t => {
    const vfs = await fresh(t, makeVfs)
    const d = await mkdir(vfs, vfs.root(), 'd')
    await mkfile(vfs, d, 'a')
    await mkfile(vfs, d, 'b')
    const p1 = await vfs.readdir(d, 0n, 2)
    t.same([p1.entries.length, p1.eof], [2, false])
    const p2 = await vfs.readdir(d, p1.entries[1]!.cookie, 2)
    t.same([p2.entries.length, p2.eof], [2, true], 'eof when the last entry is returned')
    const p3 = await vfs.readdir(d, p2.entries[1]!.cookie, 2)
    t.same([p3.entries.length, p3.eof], [0, true], 'resuming after the last entry')
  })

  t.test('readdir: paging 2,000 entries while the directory changes', async t => {
    const vfs = await fresh(t, makeVfs)
    const d = await mkdir(vfs, vfs.root(), 'big')
    const alive = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      await mkfile(vfs, d, `f${i}`)
      alive.add(`f${i}`)
    }
    const removed = new Set<string>()
    const added = new Set<string>()
    const seen = new Map<string, number>()
    let cookie = 0n
    let page = 0
    let next = 0
    for (;;) {
      const res = await vfs.readdir(d, cookie, 7)
      for (const e of res.entries) {
        const name = e.name.toString()
        seen.set(name, (seen.get(name) ?? 0) + 1)
      }
      const last = res.entries.at(-1)
      if (res.eof || last === undefined) break
      cookie = last.cookie
      // Between pages: drop one entry already listed, one not yet listed, and add a new one.
      page++
      const early = `f${(page * 3) % 2000}`
      const late = `f${1999 - page}`
      for (const name of [early, late]) {
        if (alive.delete(name)) {
          await vfs.remove(d, b(name))
          removed.add(name)
        }
      }
      const fresh = `new${next++}`
      await mkfile(vfs, d, fresh)
      added.add(fresh)
    }
    const repeated = [...seen].filter(([, n]) => n > 1).map(([name]) => name)
    t.same(repeated, [], 'no entry is listed twice')
    const missing = [...alive].filter(name => !seen.has(name))
    t.same(missing, [], 'every entry that was never removed is listed')
    t.ok(seen.has('.') && seen.has('..'))
    const unknown = [...seen.keys()].filter(n => n !== '.' && n !== '..' && !alive.has(n) && !removed.has(n) && !added.has(n))
    t.same(unknown, [], 'nothing that never existed')
    t.ok(removed.size > 100, `removed ${removed.size} entries between pages`)
  })
}
