/*
 * Paths the DMA names (FILESYSTEM, PREFIX, an nlist's destination) resolved against the export
 * list: the longest export path that is a whole-component prefix wins ("/data" does not own
 * "/database"), the rest is walked inside that export's Vfs by lookup, one component at a time,
 * never following a symlink (Vfs.lookup never does) and never climbing: ".." is refused.
 */
import type { FileRef, Owner, Vfs } from '../../../vfs/types.ts'
import { VfsError } from '../../../vfs/errors.ts'
import { DataEnvError } from './env.ts'

/** "/a//b/./c/" -> ["a","b","c"]; ".." anywhere is an error (a DMA never needs to climb). */
export function components(path: string): string[] {
  const out: string[] = []
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue
    if (c === '..') throw new DataEnvError(`${path}: ".." is not allowed in a path`)
    out.push(c)
  }
  return out
}

export interface Split<T> {
  target: T
  /** Components below the export's root. */
  rest: string[]
}

/** The export owning `path`, by whole components; null when none does. */
export function splitExportPath<T extends { path: string }>(exports: readonly T[], path: string): Split<T> | null {
  const want = components(path)
  let best: Split<T> | null = null
  let bestLen = -1
  for (const e of exports) {
    const have = components(e.path)
    if (have.length > want.length || have.length <= bestLen) continue
    if (have.every((c, i) => want[i] === c)) {
      best = { target: e, rest: want.slice(have.length) }
      bestLen = have.length
    }
  }
  return best
}

/** Walks `rest` from `root` by lookup; ENOENT/ENOTDIR come back as the VfsError. */
export async function lookupPath(vfs: Vfs, root: FileRef, rest: readonly string[]): Promise<FileRef> {
  let at = root
  for (const c of rest) {
    const { ref, attr } = await vfs.lookup(at, Buffer.from(c))
    if (attr.type !== 'dir') throw new VfsError('ENOTDIR', `${rest.join('/')}: ${c} is not a directory`)
    at = ref
  }
  return at
}

/** Like lookupPath, creating missing directories (mode 0755, `owner`): a restore's PREFIX. */
export async function makePath(vfs: Vfs, root: FileRef, rest: readonly string[], owner: Owner): Promise<FileRef> {
  let at = root
  for (const c of rest) {
    const name = Buffer.from(c)
    try {
      const { ref, attr } = await vfs.lookup(at, name)
      if (attr.type !== 'dir') throw new VfsError('ENOTDIR', `${rest.join('/')}: ${c} is not a directory`)
      at = ref
    } catch (err) {
      if (!(err instanceof VfsError) || err.code !== 'ENOENT') throw err
      at = (await vfs.mkdir(at, name, { mode: 0o755 }, owner)).ref
    }
  }
  return at
}
