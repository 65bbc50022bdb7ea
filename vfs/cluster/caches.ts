/*
 * The cluster backend's caches as the server's memory accounting sees them (VfsCache): per
 * export, the metadata half's nodes and directory names (meta/cache.ts), the data half's block
 * cache and slice lists (data/block-cache.ts, data/slice-cache.ts), and the UNSTABLE writes it
 * has staged (data/staging.ts).
 *
 * When the server is idle the clean caches are emptied, not cut to a low mark as the engine's
 * are: the engine keeps the metadata blocks a burst touches first, read from its own disk, but
 * here a cached node saves no round trip once idle (GETATTR of a cached node still waits for a
 * barrier, meta/cache.ts), and a data block is file contents that the client's own page cache
 * holds if it reads them again. Staged writes are never dropped: they are in no store yet (RFC
 * 1813 §3.3.7 lets a server lose them only with a new write verifier). They are shown so their
 * memory is seen, and flush by themselves after ~5 s untouched.
 *
 * Not holders: read-ahead keeps a position per file for at most 1,024 files, and the inode and
 * slice id batches two numbers each: small and bounded.
 */
import type { VfsCache } from '../types.ts'
import type { BlockCache } from './data/block-cache.ts'
import { SLICE_CACHE_BYTES, type SliceCache } from './data/slice-cache.ts'
import type { StagedFile, Staging } from './data/staging.ts'
import { NAMES_LIMIT, NODES_LIMIT, type MetaCache, type MetaCacheLimits } from './meta/cache.ts'

/** The metadata caches' bounds: nodes and names (meta/cache.ts), and the slice lists (data/slice-cache.ts). */
export interface MetaCacheBounds extends MetaCacheLimits {
  slices: number
}

/** Without metacache=: 200,000 nodes (~98 MiB), 32 MiB of names, 32 MiB of slice lists. */
export const DEFAULT_META_CACHE_BOUNDS: MetaCacheBounds = { nodes: NODES_LIMIT, names: NAMES_LIMIT, slices: SLICE_CACHE_BYTES }

/**
 * An export's metacache=SIZE split between the three: half to the nodes,
 * which every GETATTR, LOOKUP and READDIRPLUS answer reads, a quarter each
 * to the directory names and the chunk slice lists. The defaults keep
 * about the same shares (98 : 32 : 32 MiB).
 */
export function metaCacheBounds(bytes: number | undefined): MetaCacheBounds {
  if (bytes === undefined) return DEFAULT_META_CACHE_BOUNDS
  const quarter = Math.floor(bytes / 4)
  return { nodes: bytes - 2 * quarter, names: quarter, slices: quarter }
}

/** The metadata cache: nodes by inode, and the names looked up in directories. */
export function metaCaches(cache: MetaCache): VfsCache[] {
  return [
    { name: 'nodes', bytes: () => cache.nodeBytes(), limit: () => cache.nodesLimit, trim: () => cache.trimNodes(), counts: () => cache.nodeCounts() },
    { name: 'names', bytes: () => cache.nameBytes(), limit: () => cache.namesLimit, trim: () => cache.trimNames(), counts: () => cache.nameCounts() },
  ]
}

export interface DataCacheParts {
  blocks: BlockCache
  slices: SliceCache
  staging: Staging
  /** Flushes under way or in doubt: their bytes stay in memory, and are read, until they settle. */
  inflight: ReadonlyMap<bigint, readonly StagedFile[]>
  /**
   * stageBytes: past it a writer waits for the oldest files to be flushed. It bounds what waits;
   * a flush under way holds its bytes until it lands, so the total may pass it for that long.
   */
  stageLimit: number
}

/** The data half's block cache, slice lists and staged writes. */
export function dataCaches(p: DataCacheParts): VfsCache[] {
  const { blocks, slices } = p
  return [
    {
      name: 'blocks',
      bytes: () => blocks.size,
      limit: () => blocks.limit,
      trim: () => blocks.trim(0),
      counts: () => ({ hits: blocks.hits, misses: blocks.misses, evictions: blocks.evictions }),
    },
    { name: 'slices', bytes: () => slices.bytes, limit: () => slices.limit, trim: () => slices.trim(), counts: () => slices.counts },
    { name: 'staged', bytes: () => stagedBytes(p), limit: () => p.stageLimit, trim: () => 0 },
  ]
}

function stagedBytes(p: DataCacheParts): number {
  let n = p.staging.total
  for (const files of p.inflight.values()) for (const f of files) n += f.bytes
  return n
}
