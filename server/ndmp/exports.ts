/*
 * The server's exports as NDMP serves them (NdmpContext.exports): one entry per export path, with
 * its open backend. A backup names its source by this path (FILESYSTEM). The snapshot hook is
 * where a consistent view is offered (engine volumes' snapshots); none is wired yet, so every
 * backup reads live and says so.
 */
import type { BackendSet } from '../backends.ts'
import type { ExportTable } from '../exports/table.ts'
import type { NdmpExport } from './service-types.ts'

export function ndmpExportsOf(table: ExportTable, backends: BackendSet): () => readonly NdmpExport[] {
  return () => {
    const out: NdmpExport[] = []
    const seen = new Set<string>()
    for (const e of table.all()) {
      if (seen.has(e.path)) continue
      const vfs = backends.get(e.id)
      if (vfs === undefined) continue
      seen.add(e.path)
      out.push({ path: e.path, backend: e.backend, vfs, root: vfs.root() })
    }
    return out
  }
}
