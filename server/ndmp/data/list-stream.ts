/*
 * RECOVER_FILEHIST's reader: walks a backup stream's members (skipping their data) and reports each
 * as a FileHistoryEntry, as the backup's onFile did. The stream holds no source fileids, so node
 * numbers are made up in stream order (the root 2, as in UNIX file systems; a hard link gets its
 * target's), which is all a DMA needs to tie FH_ADD_DIR to FH_ADD_NODE. Members of our own (the
 * stream's trailing index) are not files of the tree and are left out.
 */
import { detectCompression } from '../../../backup/compress.ts'
import { TarReader } from '../../../backup/tar/reader.ts'
import type { TarEntry } from '../../../backup/tar/reader.ts'
import type { ByteSource, FileHistoryEntry } from '../../../backup/types.ts'
import type { FileType } from '../../../vfs/types.ts'
import type { ListStream } from './recover-run.ts'

const TYPES: Record<string, FileType> = { file: 'file', dir: 'dir', symlink: 'symlink', hardlink: 'file', char: 'char', block: 'block', fifo: 'fifo' }

/** "./a/b", "/a/b", "a/b/" -> "a/b"; "." and "./" -> "" (the root). */
export function relativePath(p: string): string {
  let s = p
  while (s.startsWith('./')) s = s.slice(2)
  while (s.startsWith('/')) s = s.slice(1)
  while (s.endsWith('/')) s = s.slice(0, -1)
  return s === '.' ? '' : s
}

export const listStream: ListStream = async (source: ByteSource, sourceName: string, onFile: (e: FileHistoryEntry) => void, signal: AbortSignal): Promise<void> => {
  const { source: plain } = await detectCompression(source, sourceName)
  const reader = new TarReader(plain, sourceName)
  const nodes = new Map<string, bigint>()
  let next = 3n
  for (;;) {
    signal.throwIfAborted()
    const e: TarEntry | null = await reader.next()
    if (e === null) return
    const type = TYPES[e.type]
    if (type === undefined) continue
    const path = relativePath(e.path)
    if (path === '.tsnfs' || path.startsWith('.tsnfs/')) continue
    let fileid: bigint
    const target = e.type === 'hardlink' ? nodes.get(relativePath(e.linkTarget)) : undefined
    if (target !== undefined) fileid = target
    else if (path === '') fileid = 2n
    else fileid = next++
    nodes.set(path, fileid)
    onFile({
      path,
      type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.size,
      atime: e.atime ?? e.mtime,
      mtime: e.mtime,
      ctime: e.ctime ?? e.mtime,
      fileid,
      offset: e.offset,
      ...(e.type === 'symlink' ? { linkTarget: e.linkTarget } : {}),
      ...(e.type === 'hardlink' ? { hardLinkOf: relativePath(e.linkTarget) } : {}),
    })
  }
}
