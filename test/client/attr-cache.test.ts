import t from 'tap'
import { AttrCache } from '../../client/cache/attr-cache.ts'
import type { AttrChangeEvent } from '../../client/cache/attr-cache.ts'
import { NameCache } from '../../client/cache/name-cache.ts'
import { ACCESS3_LOOKUP, ACCESS3_READ, ftype3 } from '../../xdr/generated/nfs3.ts'
import { fattr } from '../helpers/fattr.ts'

const attrs = fattr

function cache(now: { t: number }, noac = false): AttrCache {
  return new AttrCache({ acregminMs: 3000, acregmaxMs: 60_000, acdirminMs: 30_000, acdirmaxMs: 60_000, noac, maxEntries: 100, now: () => now.t })
}

const FH = Buffer.from('0102', 'hex')

t.test('the timeout doubles while unchanged, up to the maximum, and resets on a change', async t => {
  const now = { t: 0 }
  const c = cache(now)
  const events: AttrChangeEvent[] = []
  c.onChange(ev => events.push(ev))
  c.update(FH, attrs())
  t.equal(c.timeoutOf(FH), 3000)
  t.ok(c.isFresh(FH))
  now.t = 2999
  t.ok(c.isFresh(FH))
  now.t = 3000
  t.notOk(c.isFresh(FH), 'expired after acregmin')
  const seen: number[] = []
  for (let i = 0; i < 6; i++) {
    now.t += c.timeoutOf(FH) ?? 0
    c.update(FH, attrs())
    seen.push(c.timeoutOf(FH) ?? 0)
  }
  t.strictSame(seen, [6000, 12_000, 24_000, 48_000, 60_000, 60_000])
  t.equal(events.length, 0)
  now.t += 1
  c.update(FH, attrs({ mtime: { seconds: 101, nseconds: 0 } }))
  t.equal(c.timeoutOf(FH), 3000, 'a change resets to acregmin')
  t.equal(events.length, 1)
  t.equal(events[0]?.before.mtime.seconds, 100)
  t.equal(events[0]?.after?.mtime.seconds, 101)
  t.equal(events[0]?.key, '0102')
})

t.test('directories use acdirmin..acdirmax; noac is never fresh', async t => {
  const now = { t: 0 }
  const c = cache(now)
  c.update(FH, attrs({ type: ftype3.NF3DIR }))
  t.equal(c.timeoutOf(FH), 30_000)
  const n = cache(now, true)
  n.update(FH, attrs())
  t.notOk(n.isFresh(FH))
  t.equal(n.get(FH), undefined)
  t.equal(n.peek(FH)?.size, 10n, 'kept for change detection')
})

t.test('wcc data: our own change is applied silently, a foreign one emits', async t => {
  const now = { t: 0 }
  const c = cache(now)
  let events = 0
  const off = c.onChange(() => events++)
  c.update(FH, attrs())
  const pre = { size: 10n, mtime: { seconds: 100, nseconds: 0 }, ctime: { seconds: 100, nseconds: 0 } }
  c.applyWcc(FH, { before: pre, after: attrs({ size: 20n, mtime: { seconds: 102, nseconds: 0 } }) })
  t.equal(events, 0, 'pre-op attributes matched: only we changed it')
  t.equal(c.get(FH)?.size, 20n)
  c.applyWcc(FH, { before: pre, after: attrs({ size: 30n }) })
  t.equal(events, 1, 'pre-op attributes did not match: someone else changed it too')
  c.applyWcc(FH, { before: null, after: null })
  t.notOk(c.isFresh(FH), 'no post-op attributes: invalidated')
  c.forget(FH)
  t.equal(events, 2, 'forget tells the listeners')
  t.equal(c.peek(FH), undefined)
  off()
  c.update(FH, attrs())
  c.update(FH, attrs({ size: 1n }))
  t.equal(events, 2, 'unsubscribed')
})

t.test('name cache: entries only while the directory is fresh, dropped on its change', async t => {
  const now = { t: 0 }
  const c = cache(now)
  const counters = { hits: 0, misses: 0, negativeHits: 0, dirDrops: 0 }
  const n = new NameCache(c, { mode: 'all', maxDirs: 10, maxNamesPerDir: 2 }, counters)
  const child = Buffer.from('aa', 'hex')
  c.update(FH, attrs({ type: ftype3.NF3DIR }))
  n.addPositive(FH, 'x', child)
  n.addNegative(FH, 'y')
  t.strictSame(n.lookup(FH, 'x'), { kind: 'positive', fh: child })
  t.strictSame(n.lookup(FH, 'y'), { kind: 'negative' })
  t.strictSame(n.lookup(FH, 'z'), { kind: 'miss' })
  n.addPositive(FH, 'z', child)
  t.strictSame(n.lookup(FH, 'x'), { kind: 'miss' }, 'oldest name dropped beyond maxNamesPerDir')
  now.t = 30_000
  t.strictSame(n.lookup(FH, 'z'), { kind: 'miss' }, 'directory attributes expired')
  c.update(FH, attrs({ type: ftype3.NF3DIR }))
  t.strictSame(n.lookup(FH, 'z'), { kind: 'positive', fh: child }, 'revalidated unchanged: entries good again')
  c.update(FH, attrs({ type: ftype3.NF3DIR, mtime: { seconds: 200, nseconds: 0 } }))
  t.strictSame(n.lookup(FH, 'z'), { kind: 'miss' }, 'changed: dropped')
  t.strictSame(counters, { hits: 2, misses: 4, negativeHits: 1, dirDrops: 1 })
  const none = new NameCache(c, { mode: 'none', maxDirs: 10, maxNamesPerDir: 10 }, counters)
  none.addPositive(FH, 'x', child)
  t.strictSame(none.lookup(FH, 'x'), { kind: 'miss' })
})

t.test('name cache: a directory we made is complete: unknown names are absent until something we did not do changes it', async t => {
  const now = { t: 0 }
  const c = cache(now)
  const counters = { hits: 0, misses: 0, negativeHits: 0, dirDrops: 0 }
  const n = new NameCache(c, { mode: 'all', maxDirs: 10, maxNamesPerDir: 3 }, counters)
  const child = Buffer.from('aa', 'hex')
  const dirAttrs = attrs({ type: ftype3.NF3DIR, size: 4096n })
  c.update(FH, dirAttrs)
  n.markComplete(FH)
  t.ok(n.isComplete(FH))
  t.strictSame(n.lookup(FH, 'new'), { kind: 'negative' }, 'never added: absent')
  n.addPositive(FH, 'new', child)
  t.strictSame(n.lookup(FH, 'new'), { kind: 'positive', fh: child })
  t.strictSame(n.lookup(FH, 'other'), { kind: 'negative' }, 'still complete after our own create')
  n.addNegative(FH, 'new')
  t.strictSame(n.lookup(FH, 'new'), { kind: 'negative' }, 'our own remove')
  // Our own change, seen through wcc whose pre-op attributes match: still complete.
  c.applyWcc(FH, { before: { size: 4096n, mtime: dirAttrs.mtime, ctime: dirAttrs.ctime }, after: { ...dirAttrs, mtime: { seconds: 101, nseconds: 0 }, ctime: { seconds: 101, nseconds: 0 } } })
  t.ok(n.isComplete(FH), 'wcc of our own change keeps it')
  now.t = 30_000
  t.strictSame(n.lookup(FH, 'other'), { kind: 'miss' }, 'directory attributes expired: ask the server')
  c.update(FH, { ...dirAttrs, mtime: { seconds: 101, nseconds: 0 }, ctime: { seconds: 101, nseconds: 0 } })
  t.strictSame(n.lookup(FH, 'other'), { kind: 'negative' }, 'revalidated unchanged: complete again')
  c.update(FH, { ...dirAttrs, mtime: { seconds: 300, nseconds: 0 }, ctime: { seconds: 300, nseconds: 0 } })
  t.notOk(n.isComplete(FH), 'changed by someone else: all forgotten')
  t.strictSame(n.lookup(FH, 'other'), { kind: 'miss' })

  n.markComplete(FH)
  n.remove(FH, 'renamed-in')
  t.notOk(n.isComplete(FH), 'a name we no longer know (rename of an unknown object into it)')
  t.strictSame(n.lookup(FH, 'x'), { kind: 'miss' })

  const D2 = Buffer.from('0304', 'hex')
  c.update(D2, dirAttrs)
  n.markComplete(D2)
  for (const name of ['a', 'b', 'c']) n.addPositive(D2, name, child)
  t.ok(n.isComplete(D2), 'three names fit')
  n.addPositive(D2, 'd', child)
  t.notOk(n.isComplete(D2), 'a name dropped for room: no longer complete')
  t.strictSame(n.lookup(D2, 'a'), { kind: 'miss' })

  const D3 = Buffer.from('0506', 'hex')
  c.update(D3, dirAttrs)
  n.addPositive(D3, 'a', child)
  n.markComplete(D3)
  t.notOk(n.isComplete(D3), 'a directory with names already cached is not taken for a new one')

  const positive = new NameCache(c, { mode: 'positive', maxDirs: 10, maxNamesPerDir: 10 }, counters)
  positive.markComplete(D2)
  t.strictSame(positive.lookup(D2, 'x'), { kind: 'miss' }, 'lookupcache=positive: never a negative answer')
})

t.test('name cache: a complete directory keeps no negative entries, so names renamed away do not fill its bound', async t => {
  const now = { t: 0 }
  const c = cache(now)
  const counters = { hits: 0, misses: 0, negativeHits: 0, dirDrops: 0 }
  const n = new NameCache(c, { mode: 'all', maxDirs: 10, maxNamesPerDir: 5 }, counters)
  const child = Buffer.from('aa', 'hex')
  c.update(FH, attrs({ type: ftype3.NF3DIR, size: 4096n }))
  n.markComplete(FH)
  // rsync's way, eight times the bound: a temporary name created, then renamed onto the final one.
  for (let i = 0; i < 40; i++) {
    n.addPositive(FH, `.f${String(i)}.tmp`, child)
    n.addNegative(FH, `.f${String(i)}.tmp`)
    n.addPositive(FH, `f${String(i % 4)}`, child)
  }
  t.ok(n.isComplete(FH), 'still complete: only the four final names are held')
  t.equal(n.size, 4, 'four names held')
  t.strictSame(n.lookup(FH, '.f39.tmp'), { kind: 'negative' }, 'a name renamed away is absent')
  t.strictSame(n.lookup(FH, 'f3'), { kind: 'positive', fh: child })
  n.addPositive(FH, 'f4', child)
  t.ok(n.isComplete(FH), 'five names fit')
  n.addPositive(FH, 'f5', child)
  t.notOk(n.isComplete(FH), 'a sixth still overflows it')
  t.strictSame(n.lookup(FH, '.f39.tmp'), { kind: 'miss' }, 'and then an absent name is asked of the server')

  const D2 = Buffer.from('0304', 'hex')
  c.update(D2, attrs({ type: ftype3.NF3DIR, size: 4096n }))
  n.addNegative(D2, 'gone')
  t.strictSame(n.lookup(D2, 'gone'), { kind: 'negative' }, 'a directory not known complete keeps its negative entries')
  t.strictSame(n.lookup(D2, 'other'), { kind: 'miss' })
})

t.test('stats: open groups for other parts of the client', async t => {
  const { ClientStats } = await import('../../client/stats.ts')
  const s = new ClientStats()
  s.add('blockCache', 'hits')
  s.add('blockCache', 'hits', 2)
  const snap = s.snapshot()
  t.strictSame(snap.extra, { blockCache: { hits: 3 } })
  t.strictSame(snap.rpc, { retransmits: 0, reconnects: 0, timeouts: 0 })
})

t.test('a late reply with an older ctime does not overwrite newer cached attributes', async (t) => {
  const { AttrCache } = await import('../../client/cache/attr-cache.ts')
  let now = 1000
  const cache = new AttrCache({ acregminMs: 3000, acregmaxMs: 60000, acdirminMs: 30000, acdirmaxMs: 60000, noac: false, maxEntries: 100, now: () => now })
  const fh = Buffer.from('handle')
  const base = {
    type: 1 as const, mode: 0o644, nlink: 1, uid: 0, gid: 0, size: 0n, used: 0n,
    rdev: { specdata1: 0, specdata2: 0 }, fsid: 1n, fileid: 7n,
    atime: { seconds: 1, nseconds: 0 },
  }
  const fresh = { ...base, mtime: { seconds: 500, nseconds: 0 }, ctime: { seconds: 900, nseconds: 2 } }
  const stale = { ...base, mtime: { seconds: 800, nseconds: 0 }, ctime: { seconds: 900, nseconds: 1 } }
  cache.update(fh, fresh) // e.g. from our SETATTR's reply
  now += 10
  cache.update(fh, stale) // a GETATTR sent before the SETATTR, answered after it
  t.equal(cache.get(fh)?.mtime.seconds, 500, 'the newer state stays')
  t.equal(cache.lateReplies, 1)
  now += 6000 // past the reorder window: the server is believed again (its clock may have stepped back)
  cache.update(fh, stale)
  t.equal(cache.peek(fh)?.mtime.seconds, 800)
})

t.test('call generations: a late reply with the same ctime does not overwrite newer attributes (Linux attr_gencount)', async (t) => {
  const { AttrCache } = await import('../../client/cache/attr-cache.ts')
  let now = 1000
  const cache = new AttrCache({ acregminMs: 3000, acregmaxMs: 60000, acdirminMs: 30000, acdirmaxMs: 60000, noac: false, maxEntries: 100, now: () => now })
  const fh = Buffer.from('handle')
  const base = {
    type: 1 as const, mode: 0o644, nlink: 1, uid: 0, gid: 0, used: 0n,
    rdev: { specdata1: 0, specdata2: 0 }, fsid: 1n, fileid: 7n,
    atime: { seconds: 1, nseconds: 0 }, mtime: { seconds: 900, nseconds: 0 },
  }
  // A server whose clock ticks in whole seconds: two changes in one tick share a ctime.
  const tick = { seconds: 900, nseconds: 0 }
  const getattr = cache.callStarted()
  const write = cache.callStarted()
  t.ok(write > getattr, 'later calls get higher generations')
  cache.update(fh, { ...base, size: 8192n, ctime: tick }, write)
  now += 10
  cache.update(fh, { ...base, size: 4096n, ctime: tick }, getattr)
  t.equal(cache.get(fh)?.size, 8192n, 'the reply to the earlier call, same ctime, is ignored')
  t.equal(cache.lateReplies, 1)
  now += 60_000
  cache.update(fh, { ...base, size: 4096n, ctime: tick }, getattr)
  t.equal(cache.peek(fh)?.size, 8192n, 'however late it comes (no window: the call order is known)')
  cache.update(fh, { ...base, size: 100n, ctime: { seconds: 901, nseconds: 0 } }, getattr)
  t.equal(cache.peek(fh)?.size, 100n, 'an earlier call whose reply shows a newer ctime is news (the server ran it later)')
  const later = cache.callStarted()
  cache.update(fh, { ...base, size: 50n, ctime: { seconds: 899, nseconds: 0 } }, later)
  t.equal(cache.peek(fh)?.size, 50n, 'a later call is believed even with an older ctime (the server clock stepped back)')
  t.equal(cache.lateReplies, 2)
  // Invalidation (close-to-open): a reply to a call sent before it does not make the entry fresh.
  const before = cache.callStarted()
  cache.invalidate(fh)
  cache.update(fh, { ...base, size: 50n, ctime: { seconds: 899, nseconds: 0 } }, before)
  t.equal(cache.get(fh), undefined, 'still stale after a reply to a call sent before the invalidation')
  const after = cache.callStarted()
  cache.update(fh, { ...base, size: 50n, ctime: { seconds: 899, nseconds: 0 } }, after)
  t.equal(cache.get(fh)?.size, 50n, 'fresh again after a reply to a call sent after it')
  // Weak cache consistency: our own operation's post-op attributes follow the cached state.
  const setattr = cache.callStarted()
  const late = cache.callStarted()
  cache.update(fh, { ...base, size: 50n, ctime: { seconds: 899, nseconds: 0 } }, late)
  cache.applyWcc(fh, { before: { size: 50n, mtime: base.mtime, ctime: { seconds: 899, nseconds: 0 } }, after: { ...base, size: 0n, ctime: { seconds: 899, nseconds: 0 } } }, setattr)
  t.equal(cache.peek(fh)?.size, 0n, 'a wcc whose pre-op attributes match the cache is applied whatever its generation')
})

t.test('ACCESS answers per identity: while fresh, at most the maximum time, dropped by a mode or owner change', async t => {
  const now = { t: 0 }
  const c = cache(now)
  c.noteAccess(FH, 'a', 0x3f, 0)
  t.equal(c.accessOf(FH, 'a', 1), undefined, 'nothing kept for a handle without attributes')
  c.update(FH, attrs())
  c.noteAccess(FH, 'a', 0x3f, 0x01)
  c.noteAccess(FH, 'b', 0x02, 0x02)
  t.equal(c.accessOf(FH, 'a', 0x01), 0x01, 'granted')
  t.equal(c.accessOf(FH, 'a', 0x04), 0, 'asked and refused')
  t.equal(c.accessOf(FH, 'b', 0x01), undefined, 'not asked by this identity')
  t.equal(c.accessOf(FH, 'c', 0x01), undefined, 'another identity knows nothing')
  c.noteAccess(FH, 'b', 0x04, 0x04)
  t.equal(c.accessOf(FH, 'b', 0x06), 0x06, 'answers merge')
  now.t = 3000
  t.equal(c.accessOf(FH, 'a', 0x01), undefined, 'not while the attributes are stale')
  c.update(FH, attrs({ ctime: { seconds: 100, nseconds: 0 } }))
  t.equal(c.accessOf(FH, 'a', 0x01), 0x01, 'again once revalidated unchanged')
  c.update(FH, attrs({ size: 20n }))
  t.equal(c.accessOf(FH, 'a', 0x01), 0x01, 'a data change keeps them')
  c.update(FH, attrs({ size: 20n, mode: 0o600 }))
  t.equal(c.accessOf(FH, 'a', 0x01), undefined, 'a mode change drops them')
  c.noteAccess(FH, 'a', 0x01, 0x01)
  c.applyWcc(FH, { before: { size: 20n, mtime: attrs().mtime, ctime: attrs().ctime }, after: attrs({ size: 20n, mode: 0o600, uid: 5 }) })
  t.equal(c.accessOf(FH, 'a', 0x01), undefined, 'an owner change by our own call drops them too')
  c.noteAccess(FH, 'a', 0x01, 0x01)
  now.t += 60_000
  c.update(FH, attrs({ size: 20n, mode: 0o600, uid: 5 }))
  t.equal(c.accessOf(FH, 'a', 0x01), undefined, 'an answer older than the maximum attribute time is asked again')
  for (let i = 0; i < 20; i++) c.noteAccess(FH, `id${String(i)}`, 1, 1)
  t.equal(c.accessOf(FH, 'id0', 1), undefined, 'at most 16 identities per object, the oldest dropped')
  t.equal(c.accessOf(FH, 'id19', 1), 1)
})

t.test("the maker's search grant on a directory outlives our own mode change while the owner may execute it", async t => {
  const now = { t: 1000 }
  const c = cache(now)
  const made = attrs({ type: ftype3.NF3DIR, mode: 0o700 })
  c.update(FH, made)
  c.noteMaker(FH, 'maker')
  c.noteAccess(FH, 'maker', ACCESS3_LOOKUP, ACCESS3_LOOKUP)
  c.noteAccess(FH, 'other', ACCESS3_LOOKUP, 0)
  let cur = made
  /** Our own SETATTR: pre-operation attributes are the cached ones. */
  const own = (change: Partial<typeof made>): void => {
    const after = { ...cur, ...change, ctime: { seconds: cur.ctime.seconds + 1, nseconds: 0 } }
    c.applyWcc(FH, { before: { size: cur.size, mtime: cur.mtime, ctime: cur.ctime }, after })
    cur = after
  }
  own({ mode: 0o755 })
  t.equal(c.accessOf(FH, 'maker', ACCESS3_LOOKUP), ACCESS3_LOOKUP, '0700 -> 0755: kept')
  t.equal(c.accessOf(FH, 'other', ACCESS3_LOOKUP), undefined, "another identity's answer (a refusal) is dropped")
  t.equal(c.accessOf(FH, 'maker', ACCESS3_LOOKUP | ACCESS3_READ), undefined, 'only search is inferred')
  own({ mode: 0o600 })
  t.equal(c.accessOf(FH, 'maker', ACCESS3_LOOKUP), undefined, '0600: dropped, not refused (the server may let root search it)')
  own({ mode: 0o700 })
  t.equal(c.accessOf(FH, 'maker', ACCESS3_LOOKUP), ACCESS3_LOOKUP, '0700 again: the owner may execute it')
  const foreign = { ...cur, mode: 0o755, ctime: { seconds: cur.ctime.seconds + 5, nseconds: 0 } }
  c.applyWcc(FH, { before: { size: cur.size, mtime: cur.mtime, ctime: { seconds: cur.ctime.seconds + 4, nseconds: 0 } }, after: foreign })
  cur = foreign
  t.equal(c.accessOf(FH, 'maker', ACCESS3_LOOKUP), undefined, 'a change someone else made in between (pre-operation attributes differ): dropped')
  c.noteAccess(FH, 'maker', ACCESS3_LOOKUP, ACCESS3_LOOKUP)
  own({ mode: 0o750, uid: 5 })
  t.equal(c.accessOf(FH, 'maker', ACCESS3_LOOKUP), undefined, 'a new owner: dropped')
  own({ mode: 0o755, uid: made.uid })
  t.equal(c.accessOf(FH, 'maker', ACCESS3_LOOKUP), undefined, 'the owner back as it was: the maker is no longer taken for it')

  const FILE = Buffer.from('0304', 'hex')
  const file = attrs({ mode: 0o700 })
  c.update(FILE, file)
  c.noteMaker(FILE, 'maker')
  c.noteAccess(FILE, 'maker', ACCESS3_LOOKUP | ACCESS3_READ, ACCESS3_LOOKUP | ACCESS3_READ)
  c.applyWcc(FILE, { before: { size: file.size, mtime: file.mtime, ctime: file.ctime }, after: { ...file, mode: 0o755, ctime: { seconds: file.ctime.seconds + 1, nseconds: 0 } } })
  t.equal(c.accessOf(FILE, 'maker', ACCESS3_READ), undefined, 'not a directory: nothing inferred')
})

t.test('maxEntries bounds the cache: the least recently used handle goes first', async t => {
  const c = new AttrCache({ acregminMs: 3000, acregmaxMs: 60_000, acdirminMs: 30_000, acdirmaxMs: 60_000, noac: false, maxEntries: 3, now: () => 0 })
  const fh = (i: number): Buffer => Buffer.from([i])
  for (let i = 1; i <= 3; i++) c.update(fh(i), attrs({ fileid: BigInt(i) }))
  t.equal(c.get(fh(1))?.fileid, 1n, 'handle 1 used again: handle 2 is now the least recent')
  c.update(fh(4), attrs({ fileid: 4n }))
  t.equal(c.peek(fh(2)), undefined, 'handle 2 evicted by the fourth entry')
  t.same([1, 3, 4].map(i => c.peek(fh(i))?.fileid), [1n, 3n, 4n], 'the other three kept')
})
