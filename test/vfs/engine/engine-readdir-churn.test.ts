/*
 * A directory listed in small pages while names are created, removed and renamed between pages,
 * from one block (a linear directory) through its conversion to an htree and many leaf splits:
 * every name present throughout a listing is listed exactly once, no name twice, and none that was
 * not there at some point of the listing. And the engine's listing memos (the parsed, sorted
 * leaves of vfs/engine/reader/leaf-cache.ts, the inode views' handles and attributes) never
 * answer for a changed directory: at random points a whole listing equals, cookies included, the
 * listing of a fresh engine opened on the same image (whose cookies must be the same: READDIR
 * cookies are hash positions, stable across restarts).
 */
import path from 'node:path'
import t from 'tap'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import type { EngineVfs } from '../../../vfs/engine/fs/engine-vfs.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { rng, scratch } from './format-helpers.ts'

const owner = { uid: 1000, gid: 100 }

/** A whole listing: each entry's name, cookie, handle and the attributes a change would alter. */
async function listAll(e: EngineVfs, dir: FileRef, page: () => number): Promise<Array<[string, bigint, string]>> {
  const out: Array<[string, bigint, string]> = []
  for (let cookie = 0n; ;) {
    const p = await e.readdir(dir, cookie, page())
    for (const x of p.entries) {
      const a = x.attr
      const view = a === undefined ? 'none' : `${a.fileid} ${x.ref?.id}/${x.ref?.gen} n${a.nlink} ${a.size} c${a.ctime.sec}.${a.ctime.nsec} m${a.mtime.sec}.${a.mtime.nsec}`
      out.push([x.name.toString(), x.cookie, `${x.fileid} ${view}`])
    }
    const last = p.entries.at(-1)
    if (p.eof || last === undefined) return out
    cookie = last.cookie
  }
}

t.test('names churned between small pages: listed once, and as a fresh engine lists them', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (TSNFS_SEED=${seed} to repeat)`)
  const rand = rng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T
  const image = path.join(scratch(t, 'engine-readdir-churn'), 'e.img')
  const dev = await ImageFile.create(image, 64 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  let e = await openEngine(image)
  // The engine open at the end (compareFresh replaces it), closed before scratch removes the image.
  t.teardown(() => e.close())
  const { ref: made } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  const dirId = made.id
  let dir = made
  const present = new Set<string>(['.', '..'])
  let serial = 0
  // Names of 1 to 60 bytes, so leaves fill unevenly and split at different points.
  const newName = (): string => `n${serial++}-${'x'.repeat(Math.floor(rand() * 60))}`
  const create = async (): Promise<void> => {
    const n = newName()
    await e.create(dir, Buffer.from(n), { how: 'guarded', attr: {} }, owner)
    present.add(n)
  }
  const files = (): string[] => [...present].filter((n) => n !== '.' && n !== '..')
  /** One change: mostly creates (the directory grows through its splits), some removes and renames. */
  const change = async (): Promise<string> => {
    const r = rand()
    const some = files()
    if (r < 0.6 || some.length < 4) {
      await create()
      return 'create'
    }
    const victim = pick(some)
    if (r < 0.82) {
      await e.remove(dir, Buffer.from(victim))
      present.delete(victim)
      return 'remove'
    }
    // A rename within the directory, sometimes over an existing name (which goes).
    const to = rand() < 0.3 ? pick(some) : newName()
    await e.rename(dir, Buffer.from(victim), dir, Buffer.from(to))
    present.delete(victim)
    present.add(to)
    return 'rename'
  }
  /** A whole listing by this engine (memos warm) equals one by a fresh engine on the same image. */
  let compared = 0
  const compareFresh = async (why: string): Promise<void> => {
    const warm = await listAll(e, dir, () => 1 + Math.floor(rand() * 30))
    await e.close()
    e = await openEngine(image)
    dir = { id: dirId, gen: dir.gen }
    const fresh = await listAll(e, dir, () => 1 + Math.floor(rand() * 30))
    compared++
    t.same(warm, fresh, `after ${why}: the warm engine lists as a fresh one (${fresh.length} entries)`)
    t.same(new Set(fresh.map(([n]) => n)), present, `after ${why}: the names listed are the names present`)
  }
  let listings = 0
  while (present.size < 1500 || listings < 6) {
    // One listing in pages of 1 to 12, with 0 to 4 changes between pages.
    const start = new Set(present)
    const removedDuring = new Set<string>()
    const createdDuring = new Set<string>()
    const seen = new Map<string, number>()
    for (let cookie = 0n; ;) {
      const p = await e.readdir(dir, cookie, 1 + Math.floor(rand() * 12))
      for (const x of p.entries) seen.set(x.name.toString(), (seen.get(x.name.toString()) ?? 0) + 1)
      const last = p.entries.at(-1)
      if (p.eof || last === undefined) break
      cookie = last.cookie
      const n = Math.floor(rand() * 5)
      for (let i = 0; i < n; i++) {
        const before = new Set(present)
        const what = await change()
        for (const x of before) if (!present.has(x)) removedDuring.add(x)
        for (const x of present) if (!before.has(x)) createdDuring.add(x)
        if (rand() < 0.01) await compareFresh(`a ${what} mid-listing`)
      }
    }
    const twice = [...seen].filter(([, k]) => k > 1).map(([n]) => n)
    const missed = [...start].filter((n) => !removedDuring.has(n) && seen.get(n) !== 1)
    const ghosts = [...seen.keys()].filter((n) => !start.has(n) && !createdDuring.has(n))
    t.same({ twice, missed, ghosts }, { twice: [], missed: [], ghosts: [] }, `listing ${listings} (${start.size} names at its start): each name present throughout once, none twice, none never there`)
    listings++
    await compareFresh(`listing ${listings}`)
    // Between listings: a burst of changes, the directory growing through its splits (small ones
    // first, so the first listings see a directory of one block, then one just made an htree).
    const burst = Math.min(150, 4 << listings)
    for (let i = 0; i < burst; i++) await change()
  }
  t.ok(compared >= 6, `compared with a fresh engine ${compared} times`)
})
