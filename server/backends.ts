/*
 * The storage behind each export. One backend instance per export id, kept
 * across reloads for exports whose line did not change its backend, so
 * handles and data survive a SIGHUP.
 */
import { join } from 'node:path'
import { LocalVfs } from '../vfs/local/local-vfs.ts'
import type { ReadBuffers } from '../vfs/memory/read-buffers.ts'
import type { ChunkPool } from '../vfs/memory/chunk-pool.ts'
import { MemoryVfs } from '../vfs/memory/memory-vfs.ts'
import { openEngine } from '../vfs/engine/fs/assemble.ts'
import type { Vfs } from '../vfs/types.ts'
import type { Export } from './exports/table.ts'
import type { MemoryHolder } from './memory.ts'
import { openEngineOnVolume } from './volume-backend.ts'
import type { ClusterKeys } from './cluster-keys.ts'
import type { VolumeRegistry } from './volume-registry.ts'

export interface BackendContext {
  /** The server's state directory; a backend keeps its own state below it. */
  stateDir: string
  /** Where a backend reports what degrades it (a missing native helper). */
  log?: { warn(msg: string): void; info?(msg: string): void }
  /** Pools shared by the backends of a kind (server/memory.ts trims them when idle); absent: each backend's default. */
  chunkPool?: ChunkPool
  readBuffers?: ReadBuffers
  /** Where volume exports list their volume while open (the admin channel and metrics read it). */
  volumes?: VolumeRegistry
  /** Where cluster exports record their database's handle key (createServer serves with it). */
  clusterKeys?: ClusterKeys
}

/** A backend may take time to open (the engine replays its journal): the factory may be async. */
export type BackendFactory = (exp: Export, ctx: BackendContext) => Vfs | Promise<Vfs>

/** The backends this build can serve; `validateBackends` refuses export lines naming others. */
export const BACKENDS: ReadonlyMap<string, BackendFactory> = new Map<string, BackendFactory>([
  ['memory', (_exp, ctx) => new MemoryVfs(ctx.chunkPool === undefined ? {} : { chunkPool: ctx.chunkPool })],
  // The export path is the host directory. Its handle index lives under the export id, which is
  // stable across restarts and reloads (server/exports/table.ts), so handles survive both.
  // crossmnt is the same for every client of an export (validateBackends checks).
  ['local', (exp, ctx) => new LocalVfs({
    root: exp.path, stateDir: join(ctx.stateDir, 'local', String(exp.id)), crossmnt: crossmntOf(exp), warn: (msg) => ctx.log?.warn(msg),
    ...(ctx.readBuffers === undefined ? {} : { readBuffers: ctx.readBuffers }),
  })],
  // An ext4-format image served by our own engine; the export path is only the name clients mount.
  ['engine', (exp, ctx) => {
    const o = exp.entry.engine
    if (o === undefined) throw new Error('backend=engine needs image= or volume=')
    const what = o.volume === undefined ? o.image : `volume ${o.volume}`
    const opts = {
      errors: o.errors, cacheBytes: o.cacheBytes, log: (msg: string) => ctx.log?.warn(msg), onRecovery: (msg: string) => ctx.log?.warn(`${what ?? ''}: ${msg}`),
      ...(ctx.readBuffers === undefined ? {} : { readBuffers: ctx.readBuffers }),
    }
    if (o.volume !== undefined) {
      const log = { info: (msg: string) => (ctx.log?.info ?? ctx.log?.warn)?.(msg), warn: (msg: string) => ctx.log?.warn(msg) }
      // rebuild_rate= paces a rebuild this open resumes, and an online replace given no --rate.
      const rebuild = o.rebuildRate === undefined ? {} : { rebuild: { rateBytesPerSec: o.rebuildRate } }
      return openEngineOnVolume(o.volume, o.disks ?? [], { ...opts, ...rebuild, snapdirVisible: o.snapdir === 'visible' }, log, ctx.volumes === undefined ? undefined : { registry: ctx.volumes, exportPath: exp.path })
    }
    if (o.image === undefined) throw new Error('backend=engine needs image= or volume=')
    return openEngine(o.image, opts)
  }],
  // A tree shared by many servers, in a PostgreSQL-protocol database and an object store (issue 17).
  // Loaded on first use: pg and the S3 client cost startup time a server without cluster exports need not pay.
  ['cluster', (exp, ctx) => import('./cluster-backend.ts').then((m) => m.openClusterBackend(exp, {
    ...(ctx.log === undefined ? {} : { log: ctx.log }),
    ...(ctx.clusterKeys === undefined ? {} : { keys: ctx.clusterKeys }),
  }))],
])

/** Whether an export crosses into mounted file systems (validateBackends made its clients agree). */
export function crossmntOf(exp: Export): boolean {
  return exp.clients.some((c) => c.options.crossmnt)
}

export class BackendSet {
  private readonly byId = new Map<number, { backend: string; path: string; crossmnt: boolean; key: string; vfs: Vfs }>()
  private readonly factories: ReadonlyMap<string, BackendFactory>
  private readonly ctx: BackendContext

  constructor(ctx: BackendContext, factories: ReadonlyMap<string, BackendFactory> = BACKENDS) {
    this.ctx = ctx
    this.factories = factories
  }

  get(exportId: number): Vfs | undefined {
    return this.byId.get(exportId)?.vfs
  }

  /** Make the set match `exports`: keep unchanged backends, open new ones, close the rest. */
  async sync(exports: readonly Export[]): Promise<void> {
    const keep = new Set<number>()
    for (const e of exports) {
      if (keep.has(e.id)) continue
      keep.add(e.id)
      const cur = this.byId.get(e.id)
      // A reload that turns crossmnt on or off gets a new backend (the old one keeps serving the other way otherwise).
      const crossmnt = crossmntOf(e)
      // A reload with the same settings keeps the backend (its caches, its session in a cluster).
      const key = JSON.stringify([e.entry.engine ?? null, e.entry.cluster ?? null])
      if (cur?.backend === e.backend && cur.path === e.path && cur.crossmnt === crossmnt && cur.key === key) continue
      const factory = this.factories.get(e.backend)
      if (factory === undefined) throw new Error(`backend ${e.backend} is not available`)
      // An engine image is locked by its opener: the old backend lets go of it first.
      if (cur !== undefined && cur.backend === 'engine') {
        this.byId.delete(e.id)
        await cur.vfs.close()
      }
      let vfs: Vfs
      try {
        vfs = await factory(e, this.ctx)
      } catch (err) {
        throw new Error(`export ${e.path} (line ${e.entry.line}): cannot open backend ${e.backend}: ${(err as Error).message}`, { cause: err })
      }
      const old = this.byId.get(e.id)
      if (old !== undefined) await old.vfs.close()
      this.byId.set(e.id, { backend: e.backend, path: e.path, crossmnt, key, vfs })
    }
    for (const [id, cur] of this.byId) {
      if (keep.has(id)) continue
      this.byId.delete(id)
      await cur.vfs.close()
    }
  }

  async close(): Promise<void> {
    await this.sync([])
  }

  /**
   * The caches of the backends open now, as memory holders named `BACKEND EXPORT-PATH CACHE`
   * (`engine /data blocks`): one per cache and export, gone with the export.
   */
  memoryHolders(): MemoryHolder[] {
    const out: MemoryHolder[] = []
    for (const b of this.byId.values()) {
      for (const c of b.vfs.caches?.() ?? []) {
        out.push({
          name: `${b.backend} ${b.path} ${c.name}`,
          kind: 'cache',
          bytes: () => c.bytes(),
          trim: () => c.trim(),
          ...(c.limit === undefined ? {} : { limit: () => c.limit?.() ?? 0 }),
          ...(c.counts === undefined ? {} : { counts: () => c.counts?.() ?? { hits: 0, misses: 0, evictions: 0 } }),
        })
      }
    }
    return out
  }
}
