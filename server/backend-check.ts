/*
 * What the backends would refuse at start, found without starting them
 * (they create state on open: the local backend writes its handle index):
 * for `tsnfs exports --check`, so that a list it passes is one `serve`
 * accepts. One check per backend; every problem of the list is returned,
 * each with the line of its export.
 */
import { constants, open } from 'node:fs/promises'
import { ExportsError } from './exports/errors.ts'
import type { ExportEntry, ExportList } from './exports/schema.ts'

type BackendCheck = (e: ExportEntry) => Promise<string | null>

/** Linux's O_PATH (Node does not export it): open without read permission, as the backend does. */
const O_PATH = 0o10000000

/** The local backend opens the export path as a directory (vfs/local: O_PATH | O_DIRECTORY, following a symlink to it). */
async function checkLocal(e: ExportEntry): Promise<string | null> {
  try {
    const fh = await open(e.path, O_PATH | constants.O_DIRECTORY)
    await fh.close()
    return null
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return 'no such directory'
    if (code === 'ENOTDIR') return 'not a directory'
    if (code === 'EACCES') return 'permission denied (the server opens it as the user it runs as)'
    return `cannot open: ${(err as Error).message}`
  }
}

const CHECKS: ReadonlyMap<string, BackendCheck> = new Map([
  ['local', checkLocal],
  // The memory backend takes nothing from the host.
  ['memory', () => Promise.resolve(null)],
])

/** Every export a backend would refuse, in file order. */
export async function checkBackends(list: ExportList): Promise<ExportsError[]> {
  const found: ExportsError[] = []
  for (const e of list.exports) {
    const why = await (CHECKS.get(e.backend) ?? (() => Promise.resolve(null)))(e)
    if (why !== null) found.push(new ExportsError(list.file, e.line, 1, `export "${e.path}": ${why}`))
  }
  return found
}
