/*
 * The storage behind each export. One backend instance per export id, kept
 * across reloads for exports whose line did not change its backend, so
 * handles and data survive a SIGHUP.
 */
import { MemoryVfs } from '../vfs/memory/memory-vfs.ts'
import type { Vfs } from '../vfs/types.ts'
import type { Export } from './exports/table.ts'

export type BackendFactory = (exp: Export) => Vfs

/** The backends this build can serve; `validateBackends` refuses export lines naming others. */
export const BACKENDS: ReadonlyMap<string, BackendFactory> = new Map<string, BackendFactory>([['memory', () => new MemoryVfs()]])

export class BackendSet {
  private readonly byId = new Map<number, { backend: string; path: string; vfs: Vfs }>()
  private readonly factories: ReadonlyMap<string, BackendFactory>

  constructor(factories: ReadonlyMap<string, BackendFactory> = BACKENDS) {
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
      if (cur?.backend === e.backend && cur.path === e.path) continue
      const factory = this.factories.get(e.backend)
      if (factory === undefined) throw new Error(`backend ${e.backend} is not available`)
      if (cur !== undefined) await cur.vfs.close()
      this.byId.set(e.id, { backend: e.backend, path: e.path, vfs: factory(e) })
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
