/*
 * vfs/replica/dir-cookies.ts: the name hash with exact vectors (FNV-1a 64 against its published
 * values, then the cookie), pages resumed after removals, collision groups kept in one page, and
 * the listing cache's bound and invalidation.
 */
import t from 'tap'
import { compareEntries, fnv1a64, ListingCache, nameCookie, pageOf } from '../../../vfs/replica/dir-cookies.ts'
import type { ListedEntry, Listing } from '../../../vfs/replica/dir-cookies.ts'

const b = (s: string): Buffer => Buffer.from(s)

t.test('FNV-1a 64: published vectors', async (t) => {
  const table: [string, bigint][] = [
    ['', 0xcbf29ce484222325n],
    ['a', 0xaf63dc4c8601ec8cn],
    ['foobar', 0x85944171f73967e8n],
  ]
  for (const [name, want] of table) t.equal(fnv1a64(b(name)), want, JSON.stringify(name))
})

t.test('cookies: exact vectors, the same on every node (nothing node-specific goes in)', async (t) => {
  const table: [Buffer, bigint][] = [
    [b('a'), 0x1605edfa40a107cn],
    [b('foobar'), 0x2026d4f1dba03c61n],
    [b('file.txt'), 0x7c9fad36389489een],
    [b('ñame'), 0x1538e8443e0dc487n],
    [Buffer.alloc(255, 'x'), 0x3336bf92ffce7d41n],
  ]
  for (const [name, want] of table) {
    const c = nameCookie(name)
    t.equal(c, want, name.toString().slice(0, 10))
    t.ok(c >= 3n && c < 1n << 63n)
  }
})

function entry(name: string, cookie?: bigint): ListedEntry {
  return { name: b(name), cookie: cookie ?? nameCookie(b(name)), localId: 1n, localRef: undefined }
}

function walk(list: Listing, max: number, between?: (cookie: bigint) => Listing): string[] {
  const out: string[] = []
  let cookie = 0n
  let cur = list
  for (;;) {
    const page = pageOf(cur, cookie, max)
    for (const e of page.entries) out.push(e.name.toString())
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) return out
    cookie = last.cookie
    if (between !== undefined) cur = between(cookie)
  }
}

t.test('a listing resumed after removals neither repeats nor skips survivors', async (t) => {
  const names = Array.from({ length: 200 }, (_, i) => `f${i}`)
  let list: ListedEntry[] = names.map((n) => entry(n)).sort(compareEntries)
  const order = list.map((e) => e.name.toString())
  for (const max of [1, 2, 3, 7, 50, 500]) t.strictSame(walk(list, max), order, `page size ${max}`)
  // Between pages, remove the entry just returned and one further on.
  const removed = new Set<string>()
  const seen = walk(list, 5, (cookie) => {
    const i = list.findIndex((e) => e.cookie === cookie)
    const gone = [list[i], list[i + 7]].filter((e) => e !== undefined)
    for (const g of gone) removed.add(g.name.toString())
    list = list.filter((e) => !gone.includes(e))
    return list
  })
  t.equal(new Set(seen).size, seen.length, 'no entry twice')
  for (const n of order) if (!removed.has(n)) t.ok(seen.includes(n), `${n} not skipped`)
})

t.test('names with the same cookie: ordered by bytes, always in one page', async (t) => {
  const list = [entry('zz', 100n), entry('b', 50n), entry('yy', 100n), entry('xx', 100n), entry('c', 200n)].sort(compareEntries)
  t.strictSame(list.map((e) => e.name.toString()), ['b', 'xx', 'yy', 'zz', 'c'])
  const p1 = pageOf(list, 0n, 2)
  t.strictSame(p1.entries.map((e) => e.name.toString()), ['b', 'xx', 'yy', 'zz'], 'the group is not split')
  t.notOk(p1.eof)
  const p2 = pageOf(list, 100n, 2)
  t.strictSame(p2.entries.map((e) => e.name.toString()), ['c'])
  t.ok(p2.eof)
  t.strictSame(pageOf(list, 1n << 62n, 10), { entries: [], eof: true })
  t.equal(pageOf(list, 0n, 0).entries.length, 1, 'a page holds at least one entry')
})

t.test('listing cache: shared reads, invalidation, bounded by entries', async (t) => {
  const cache = new ListingCache(10)
  let reads = 0
  const read = (n: number) => async (): Promise<Listing> => {
    reads++
    await new Promise((r) => setTimeout(r, 5))
    return Array.from({ length: n }, (_, i) => entry(`e${i}`))
  }
  const [a, c] = await Promise.all([cache.load(1n, read(4)), cache.load(1n, read(4))])
  t.equal(a, c)
  t.equal(reads, 1, 'concurrent loads share one read')
  await cache.load(1n, read(4))
  t.equal(reads, 1, 'cached')
  cache.invalidate(1n)
  await cache.load(1n, read(4))
  t.equal(reads, 2, 'read again after a change')
  // A change while a read is under way: that read serves its callers but is not kept.
  const during = cache.load(2n, read(3))
  cache.invalidate(2n)
  await during
  await cache.load(2n, read(3))
  t.equal(reads, 4)
  t.equal(cache.entries, 7)
  await cache.load(3n, read(5))
  t.equal(cache.entries, 8, 'the least recently used listing went')
  await cache.load(4n, read(11))
  t.equal(cache.entries, 8, 'a listing over the bound is not kept')
})
