import t from 'tap'
import { DrcStore, keyHash } from '../../../server/rpc/drc-lru.ts'

const keys = (s: DrcStore, all: string[]): string[] => all.filter((k) => s.peek(k) !== undefined)

t.test('bounded in entries: the least recently used goes, a hit counts as a use', async (t) => {
  const s = new DrcStore(3, 1 << 20, 60_000)
  for (const k of ['a', 'b', 'c']) s.set(k, null, 10)
  t.ok(s.get('a'), 'a hit makes a the most recent')
  s.set('d', Buffer.from('d'), 10)
  t.strictSame(keys(s, ['a', 'b', 'c', 'd']), ['a', 'c', 'd'], 'b, the least recently used, went')
  t.equal(s.size, 3)
  t.equal(s.bytes, 30)
  t.ok(s.peek('c'), 'peek does not count as a use')
  s.set('e', null, 10)
  t.strictSame(keys(s, ['a', 'c', 'd', 'e']), ['a', 'd', 'e'], 'c went although peeked')
  s.set('a', Buffer.from('a2'), 10)
  s.set('f', null, 10)
  t.strictSame(keys(s, ['a', 'd', 'e', 'f']), ['a', 'e', 'f'], 'setting a again made it the most recent')
  t.equal(s.get('a')?.reply?.toString(), 'a2')
})

t.test('bounded in bytes: a large entry pushes out as many as it needs; one over the bound is not kept', async (t) => {
  const s = new DrcStore(100, 100, 60_000)
  for (const k of ['a', 'b', 'c', 'd']) s.set(k, null, 25)
  t.equal(s.bytes, 100)
  s.set('b', Buffer.alloc(1), 50)
  t.strictSame(keys(s, ['a', 'b', 'c', 'd']), ['b', 'c', 'd'], 'b grew to 50: a, the oldest, went')
  t.equal(s.bytes, 100)
  s.set('e', null, 40)
  t.strictSame(keys(s, ['b', 'c', 'd', 'e']), ['b', 'e'], 'e of 40 pushed out c and d, the two oldest')
  t.equal(s.bytes, 90)
  s.set('b', Buffer.alloc(1), 101)
  t.equal(s.peek('b'), undefined, 'an entry over the whole bound is not kept, nor its older self')
  t.equal(s.peek('e')?.size, 40, 'and pushes nothing out')
  t.equal(s.bytes, 40)
  t.equal(s.size, 1)
  s.delete('e')
  s.delete('nothing')
  t.equal(s.bytes, 0)
  t.equal(s.size, 0)
})

t.test('entries expire ttlMs after they were set; get drops them, purgeStale drops all', async (t) => {
  const s = new DrcStore(10, 1000, 30)
  s.set('a', Buffer.from('a'), 1)
  s.set('b', Buffer.from('b'), 2)
  const long = new DrcStore(10, 1000, 60_000)
  long.set('a', null, 1)
  const at = performance.now()
  // Past the TTL for certain (the bound is the point: an entry must not outlive it).
  await new Promise((r) => setTimeout(r, 60))
  t.ok(performance.now() - at > 30)
  t.equal(s.peek('a'), undefined, 'peek misses a stale entry')
  t.equal(s.size, 2, '…without dropping it')
  t.equal(s.get('a'), undefined, 'get misses it')
  t.equal(s.size, 1, '…and drops it')
  t.equal(s.bytes, 2)
  s.set('c', null, 4)
  s.purgeStale()
  t.strictSame(keys(s, ['a', 'b', 'c']), ['c'], 'purgeStale dropped b, not c (just set)')
  t.equal(s.bytes, 4)
  t.ok(long.get('a'), 'an entry well within its TTL is kept')
})

t.test('a count bound below one is a bug', async (t) => {
  t.throws(() => new DrcStore(0, 100, 1000), RangeError)
})

t.test('keys of equal hash are told apart: found, replaced, dropped and evicted each on its own', async (t) => {
  // The Map is keyed by a 30-bit hash: find two keys that share one (a birthday search, ~2^15 keys).
  const seen = new Map<number, string>()
  let pair: [string, string] | null = null
  for (let i = 0; pair === null; i++) {
    const k = `10.0.0.1|${i}|100003|3|7|3120|${i * 7}`
    const other = seen.get(keyHash(k))
    if (other !== undefined) pair = [other, k]
    else seen.set(keyHash(k), k)
  }
  const [a, b] = pair
  t.not(a, b)
  t.equal(keyHash(a), keyHash(b), `${a} and ${b} share a hash`)
  const s = new DrcStore(3, 1 << 20, 60_000)
  s.set(a, Buffer.from('A'), 1)
  s.set(b, Buffer.from('B'), 1)
  t.equal(s.get(a)?.reply?.toString(), 'A')
  t.equal(s.get(b)?.reply?.toString(), 'B')
  t.equal(s.peek('10.0.0.1|other'), undefined)
  s.set(a, Buffer.from('A2'), 1)
  t.equal(s.size, 2, 'replacing a kept one entry for it')
  t.equal(s.peek(a)?.reply?.toString(), 'A2')
  t.equal(s.peek(b)?.reply?.toString(), 'B')
  s.delete(b)
  t.equal(s.peek(b), undefined, 'b dropped')
  t.equal(s.peek(a)?.reply?.toString(), 'A2', 'a kept')
  s.set(b, Buffer.from('B2'), 1)
  s.set('c', null, 1)
  s.set('d', null, 1)
  t.equal(s.peek(a), undefined, 'a, the oldest, evicted from the middle of its chain')
  t.equal(s.peek(b)?.reply?.toString(), 'B2', 'b kept')
  t.equal(s.size, 3)
  t.equal(s.bytes, 3)
})
