/*
 * The bounds and idle trims of the cluster backend's metadata cache and slice cache, on the
 * caches themselves (the server's view of them: test/server/cluster-cache-metrics.test.ts).
 * Bytes are the documented estimates; names and slice lists stay within their byte bounds,
 * oldest first; a trim empties them without letting a read that began before it store a copy
 * older than a change already seen; a directory holding its 10,000-name maximum still takes a
 * change to a name it holds; metacache= splits its size between the three and each keeps to
 * its share.
 */
import t from 'tap'
import { SLICE_CACHE_BYTES, SliceCache } from '../../../vfs/cluster/data/slice-cache.ts'
import type { SliceRecord } from '../../../vfs/cluster/data/slice.ts'
import { metaCacheBounds } from '../../../vfs/cluster/caches.ts'
import { MetaCache, NAMES_LIMIT, NODE_BYTES, NODES_LIMIT } from '../../../vfs/cluster/meta/cache.ts'
import type { Node } from '../../../vfs/cluster/meta/node.ts'

function node(id: bigint, ver: bigint): Node {
  const ts = { sec: 1, nsec: 0 }
  return {
    attr: {
      type: 'dir', mode: 0o755, nlink: 2, uid: 0, gid: 0, size: 0n, used: 0n, rdev: { major: 0, minor: 0 },
      fileid: id, gen: 1, atime: ts, mtime: ts, ctime: ts,
    },
    parent: 1n,
    ver,
  }
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1')

t.test('metadata cache: estimated bytes, names bounded, and a trim lets no stale copy in', async (t) => {
  const c = new MetaCache()
  for (const id of [10n, 11n, 12n]) c.put(c.begin(), node(id, 1n))
  t.equal(c.nodeBytes(), 3 * NODE_BYTES, 'nodes: a fixed cost each')
  c.putEntry(c.begin(), 10n, 1n, b('a'), 11n)
  c.putEntry(c.begin(), 10n, 1n, b('bb'), 12n)
  t.equal(c.nameBytes(), 200 + (72 + 1) + (72 + 2), 'names: the directory, then 72 bytes and the name each')
  c.putEntry(c.begin(), 10n, 1n, b('bb'), 12n)
  t.equal(c.nameBytes(), 347, 'a name stored again is not counted twice')

  // A read of node 7 began, another server changed it to version 5 (notified), a later read
  // cached version 5, and the idle trim let it go: the first read's version 4 must not go in.
  const early = c.begin()
  c.notified([7n], new Map([[7n, 5n]]))
  c.put(c.begin(), node(7n, 5n))
  t.equal(c.node(7n)?.ver, 5n)
  t.equal(c.trimNodes(), 4 * NODE_BYTES, 'the trim lets every node go and says how much')
  t.equal(c.nodeBytes(), 0)
  c.put(early, node(7n, 4n))
  t.equal(c.node(7n), undefined, 'a read from before the change stores nothing after a trim')
  c.put(c.begin(), node(7n, 5n))
  t.equal(c.node(7n)?.ver, 5n, 'a read after it is cached again')

  // The names trimmed, then this server's own change of the directory: its names start again.
  t.equal(c.trimNames(), 347)
  t.equal(c.entry(10n, b('a')), undefined, 'trimmed names are gone')
  c.settle(c.begin(), [10n, 13n], [node(10n, 2n), node(13n, 1n)], [{ parent: 10n, name: b('new'), inode: 13n }])
  t.equal(c.entry(10n, b('new')), 13n, 'a change after the trim caches its own name')
  t.equal(c.nameBytes(), 200 + 72 + 3)
  t.same(c.nameCounts(), { hits: 1, misses: 1, evictions: 0 }, 'name lookups counted')

  // Past NAMES_LIMIT the oldest directories go: 200-byte names, 10,000 a directory (its maximum).
  const long = (i: number): Buffer => b(`${String(i).padStart(8, '0')}${'x'.repeat(192)}`)
  const perDir = 10_000
  const dirs = Math.ceil(NAMES_LIMIT / (perDir * (72 + 200))) + 2
  for (let d = 0; d < dirs; d++) {
    for (let i = 0; i < perDir; i++) c.putEntry(c.begin(), 1000n + BigInt(d), 1n, long(i), 5000n + BigInt(i))
  }
  t.ok(c.nameBytes() <= NAMES_LIMIT, `names within ${NAMES_LIMIT} bytes: ${c.nameBytes()}`)
  t.ok(c.nameBytes() > NAMES_LIMIT - 2 * perDir * (72 + 200), 'and only the oldest directories went')
  t.ok(c.nameCounts().evictions >= 2, `directories evicted: ${c.nameCounts().evictions}`)
  t.equal(c.entry(1000n, long(0)), undefined, 'the first directory went')
  const last = 1000n + BigInt(dirs - 1)
  t.equal(c.entry(last, long(perDir - 1)), 5000n + BigInt(perDir - 1), 'the last one is whole')
  t.equal(c.entry(last, long(perDir + 1)), undefined)

  // The last directory is full; this server renames over one of its names: the name's inode changes.
  c.put(c.begin(), node(last, 1n))
  c.settle(c.begin(), [last], [node(last, 2n)], [{ parent: last, name: long(3), inode: 77n }])
  t.equal(c.entry(last, long(3)), 77n, 'a full directory still takes the new inode of a name it holds')
})

t.test('slice cache: estimated bytes, bounded, and a trim makes every earlier mark stale', async (t) => {
  const s = new SliceCache()
  const rec: SliceRecord = { pos: 0, id: 1n, size: 10, off: 0, len: 10 }
  s.set(1n, s.mark(1n), new Map([[0, [rec, rec]]]), Date.now())
  t.equal(s.bytes, 288 + 160 + 2 * 96, 'an inode, a chunk list and two records')
  s.set(1n, s.mark(1n), new Map([[0, [rec]]]), Date.now())
  t.equal(s.bytes, 288 + 160 + 96, 'a list replaced is counted once')
  t.ok(s.get(1n, 0) !== undefined)
  t.equal(s.get(1n, 1), undefined)
  t.same(s.counts, { hits: 1, misses: 1, evictions: 0 })

  // One list of 1,000 records per inode: past 32 MiB the oldest inodes go.
  const big = Array.from({ length: 1000 }, () => rec)
  const inodes = Math.ceil(SLICE_CACHE_BYTES / (1000 * 96)) + 10
  for (let i = 0; i < inodes; i++) s.set(100n + BigInt(i), s.mark(100n + BigInt(i)), new Map([[0, big]]), Date.now())
  t.ok(s.bytes <= SLICE_CACHE_BYTES, `within ${SLICE_CACHE_BYTES} bytes: ${s.bytes}`)
  t.ok(s.counts.evictions > 0, `inodes evicted: ${s.counts.evictions}`)
  t.equal(s.get(1n, 0), undefined, 'the oldest went first')
  t.ok(s.get(100n + BigInt(inodes - 1), 0) !== undefined, 'the newest stays')

  // A reader took its mark, then the file changed (drop), then the idle trim ran, and the reader
  // comes back with lists from before the change: the trim must not make its mark current again.
  const before = s.mark(5n)
  s.drop(5n)
  const held = s.bytes
  t.equal(s.trim(), held, 'the trim lets everything go and says how much')
  t.equal(s.bytes, 0)
  s.set(5n, before, new Map([[0, [rec]]]), Date.now())
  t.equal(s.get(5n, 0), undefined, 'lists fetched under a mark from before the trim are not kept')
  s.set(5n, s.mark(5n), new Map([[0, [rec]]]), Date.now())
  t.ok(s.get(5n, 0) !== undefined, 'those fetched after it are')

  // A truncated file's settling stamp is swept by a trim once it has expired.
  s.trim()
  s.dropSettling(9n, Date.now() + 60_000)
  t.ok(s.bytes > 0, 'a mark and a settling stamp are counted')
  s.trim(Date.now())
  t.ok(s.bytes > 0, 'a stamp not yet expired stays')
  s.trim(Date.now() + 120_000)
  t.equal(s.bytes, 0, 'an expired one goes')
})

t.test('metacache=: the split, and each cache held to its share', async (t) => {
  const MiB = 1024 * 1024
  t.same(metaCacheBounds(undefined), { nodes: NODES_LIMIT, names: NAMES_LIMIT, slices: SLICE_CACHE_BYTES }, 'without it, the fixed defaults')
  t.same(metaCacheBounds(4 * MiB + 3), { nodes: 2 * MiB + 3, names: MiB, slices: MiB }, 'half to the nodes, a quarter each to names and slices')

  const bounds = metaCacheBounds(4 * MiB)
  const c = new MetaCache('notify', bounds)
  t.equal(c.nodesLimit, Math.floor(bounds.nodes / NODE_BYTES) * NODE_BYTES, 'the nodes bound, in whole nodes')
  t.equal(c.namesLimit, MiB)
  const maxNodes = Math.floor(bounds.nodes / NODE_BYTES)
  for (let i = 0; i < maxNodes + 100; i++) c.put(c.begin(), node(10_000n + BigInt(i), 1n))
  t.equal(c.nodeBytes(), maxNodes * NODE_BYTES, `nodes held at ${maxNodes}`)
  t.equal(c.nodeCounts().evictions, 100, 'the 100 past the bound evicted')
  t.equal(c.node(10_000n), undefined, 'the oldest went')
  t.ok(c.node(10_000n + BigInt(maxNodes + 99)) !== undefined, 'the newest stays')

  // 1 MiB of names: 100-byte names, 1,000 a directory (~172 KB each).
  for (let d = 0; d < 10; d++) {
    for (let i = 0; i < 1000; i++) c.putEntry(c.begin(), 500n + BigInt(d), 1n, b(String(i).padStart(100, 'n')), 1n)
  }
  t.ok(c.nameBytes() <= MiB, `names within 1 MiB: ${c.nameBytes()}`)
  t.ok(c.nameBytes() > MiB - 2 * (200 + 1000 * 172), 'only the oldest directories went')
  t.equal(c.entry(500n, b(String(0).padStart(100, 'n'))), undefined, 'the first directory went')

  const s = new SliceCache(true, bounds.slices)
  t.equal(s.limit, MiB + 2 * 100_000 * 64, 'the lists\' share and the marks')
  const rec: SliceRecord = { pos: 0, id: 1n, size: 10, off: 0, len: 10 }
  const big = Array.from({ length: 1000 }, () => rec)
  for (let i = 0; i < 30; i++) s.set(100n + BigInt(i), s.mark(100n + BigInt(i)), new Map([[0, big]]), Date.now())
  t.ok(s.bytes <= MiB, `slice lists within 1 MiB: ${s.bytes}`)
  t.ok(s.counts.evictions >= 19, `inodes evicted: ${s.counts.evictions}`)
  t.ok(s.get(129n, 0) !== undefined, 'the newest stays')
})
