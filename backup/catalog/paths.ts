/*
 * Paths as the catalog stores them: absolute inside the backed-up filesystem ('/' its root,
 * '/a/b' below it), split into the directory and the name. The root itself is dir '' and name ''
 * so that no real object collides with it.
 */
import { CatalogError } from './schema.ts'

export interface SplitPath {
  dir: string
  name: string
}

/** '/a/b/' and 'a//b' → '/a/b'; '..' and '.' are refused, not resolved (a catalog path is never relative). */
export function normalizePath(path: string): string {
  if (path.includes('\0')) throw new CatalogError('CATALOG_BAD_INPUT', 'a path may not contain NUL')
  const parts = path.split('/').filter(p => p !== '' && p !== '.')
  if (parts.includes('..')) throw new CatalogError('CATALOG_BAD_INPUT', `${path}: '..' is not allowed in a catalog path`)
  return `/${parts.join('/')}`
}

export function splitPath(path: string): SplitPath {
  const p = normalizePath(path)
  if (p === '/') return { dir: '', name: '' }
  const cut = p.lastIndexOf('/')
  return { dir: cut === 0 ? '/' : p.slice(0, cut), name: p.slice(cut + 1) }
}

export function joinPath(dir: string, name: string): string {
  if (dir === '') return '/'
  return dir === '/' ? `/${name}` : `${dir}/${name}`
}

/** A FileHistoryEntry's path ('' the root, 'a/b' below it) as the catalog stores it. */
export function fromHistoryPath(path: string): SplitPath {
  return splitPath(`/${path}`)
}

/**
 * The bounds of every directory strictly below `dir` as a half-open text range: '/' sorts just
 * before '0', so dir + '/' ≤ d < dir + '0' holds exactly the descendants, and the index on dir
 * serves it without escaping LIKE or GLOB metacharacters in the name.
 */
export function subtreeRange(dir: string): { lo: string; hi: string } {
  if (dir === '/') return { lo: '/', hi: '0' }
  return { lo: `${dir}/`, hi: `${dir}0` }
}
