/*
 * The block cache's hit and miss counts (tsnfs_memory_cache_hits_total and
 * …_misses_total for the cluster's blocks) count every read of a block small
 * enough to cache: a read that starts a fetch is a miss; one served from the
 * cache, or by joining a fetch already in flight (another reader's, or
 * read-ahead's), is a hit. CI once saw no hit at all for a 5 MiB file read in
 * 1 MiB pieces (test/server/cluster-cache-metrics.test.ts, seed 438281132):
 * under load every piece joined the block's fetch in flight, and joins were
 * not counted.
 */
import t from 'tap'
import { BlockCache } from '../../../../vfs/cluster/data/block-cache.ts'
import type { ObjectInfo, ObjectStore } from '../../../../vfs/cluster/object-store.ts'

/** One object, whose gets wait for `release` while `held`; counts the gets. */
function heldStore(data: Buffer): { store: ObjectStore; gets: () => number; release: () => void } {
  let gets = 0
  let release: () => void = () => undefined
  const gate = new Promise<void>((resolve) => {
    release = resolve
  })
  const store: ObjectStore = {
    put: () => Promise.resolve(),
    async get(_key, offset, length) {
      gets++
      await gate
      return data.subarray(offset, offset + length)
    },
    delete: () => Promise.resolve(),
    list: async function* (): AsyncIterable<ObjectInfo> { /* nothing listed */ },
    init: () => Promise.resolve(),
    describe: () => 'held test store',
    close: () => Promise.resolve(),
  }
  return { store, gets: () => gets, release: () => { release() } }
}

const BLOCK = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251))

t.test('readers joining a fetch in flight are hits; the one that started it the only miss', async (t) => {
  const s = heldStore(BLOCK)
  const cache = new BlockCache(s.store, 1 << 20)
  const reads = [0, 1024, 2048, 3072].map((from) => cache.read('k', BLOCK.length, from, 1024))
  s.release()
  const parts = await Promise.all(reads)
  t.same(Buffer.concat(parts), BLOCK, 'each reader got its own piece of the block')
  t.equal(s.gets(), 1, 'one fetch shared by the four readers')
  t.equal(cache.misses, 1, 'one miss: the read that started the fetch')
  t.equal(cache.hits, 3, 'three hits: the readers that joined it')
  await cache.read('k', BLOCK.length, 0, 10)
  t.equal(cache.hits, 4, 'a read of the cached block is a hit')
  t.equal(s.gets(), 1, 'and fetches nothing')
})

t.test('a read joining read-ahead\'s fetch is a hit; read-ahead itself is neither', async (t) => {
  const s = heldStore(BLOCK)
  const cache = new BlockCache(s.store, 1 << 20)
  const warm = cache.warm('k', BLOCK.length)
  const read = cache.read('k', BLOCK.length, 100, 200)
  s.release()
  await warm
  t.same(await read, BLOCK.subarray(100, 300), 'the bytes asked for')
  t.equal(cache.prefetched, 1, 'read-ahead counted as a prefetch')
  t.equal(cache.misses, 0, 'no miss: the reader started no fetch')
  t.equal(cache.hits, 1, 'the reader is a hit')
  t.equal(s.gets(), 1, 'one fetch')
})

t.test('a block too large to cache is fetched by range and counted as neither', async (t) => {
  const s = heldStore(BLOCK)
  s.release()
  const cache = new BlockCache(s.store, 4096)
  t.same(await cache.read('k', BLOCK.length, 10, 20), BLOCK.subarray(10, 30), 'the range')
  t.same([cache.hits, cache.misses], [0, 0], 'uncached reads are not cache lookups')
})
