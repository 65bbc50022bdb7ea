/*
 * The storage behind each export. One backend instance per export id, kept
 * across reloads for exports whose line did not change its backend, so
 * handles and data survive a SIGHUP.
 */
import { join } from 'node:path'
import { LocalVfs } from '../vfs/local/local-vfs.ts'
import type { ReadBuffers } from '../vfs/local/read-buffers.ts'
import type { ChunkPool } from '../vfs/memory/chunk-pool.ts'
import { MemoryVfs } from '../vfs/memory/memory-vfs.ts'
import type { Vfs } from '../vfs/types.ts'
import type { Export } from './exports/table.ts'

export interface BackendContext {
  /** The server's state directory; a backend keeps its own state below it. */
  stateDir: string
  /** Where a backend reports what degrades it (a missing native helper). */
  log?: { warn(msg: string): void }
  /** Pools shared by the backends of a kind (server/memory.ts trims them when idle); absent: each backend's default. */
  chunkPool?: ChunkPool
  readBuffers?: ReadBuffers
}

export type BackendFactory = (exp: Export, ctx: BackendContext) => Vfs

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
])

/** Whether an export crosses into mounted file systems (validateBackends made its clients agree). */
export function crossmntOf(exp: Export): boolean {
  return exp.clients.some((c) => c.options.crossmnt)
}

export class BackendSet {
  private readonly byId = new Map<number, { backend: string; path: string; crossmnt: boolean; vfs: Vfs }>()
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
      if (cur?.backend === e.backend && cur.path === e.path && cur.crossmnt === crossmnt) continue
      const factory = this.factories.get(e.backend)
      if (factory === undefined) throw new Error(`backend ${e.backend} is not available`)
      let vfs: Vfs
      try {
        vfs = factory(e, this.ctx)
      } catch (err) {
        throw new Error(`export ${e.path} (line ${e.entry.line}): cannot open backend ${e.backend}: ${(err as Error).message}`, { cause: err })
      }
      if (cur !== undefined) await cur.vfs.close()
      this.byId.set(e.id, { backend: e.backend, path: e.path, crossmnt, vfs })
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
}
