/*
 * The small memory export the DMA's restore tests back up (test/dma/restore-tapes,
 * test/dma/ndmp-v3): a directory, a 100 KB file between two small ones, and an
 * empty destination export; with readers for what a restore brought back.
 */
import type { NdmpExport } from '../../server/ndmp/service-types.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { mkdirp, resolve, writeFile as vfsWrite } from '../backup/helpers.ts'

/** A modification time a minute ahead, for changes that a later level must see. */
export const NOW = (): bigint => BigInt(Date.now() + 60_000) * 1_000_000n

/** `/exp` holding docs/a.txt, docs/old/b.bin (100,000 bytes) and zz-last.txt (`last`), and an empty `/r`. */
export async function tree(last: string): Promise<{ exp: NdmpExport; dest: NdmpExport }> {
  const vfs = new MemoryVfs()
  const exp: NdmpExport = { path: '/exp', backend: 'memory', vfs, root: vfs.root() }
  await mkdirp(vfs, 'docs/old')
  await vfsWrite(vfs, 'docs/a.txt', Buffer.from('alpha\n'))
  await vfsWrite(vfs, 'docs/old/b.bin', Buffer.alloc(100_000, 7))
  await vfsWrite(vfs, 'zz-last.txt', Buffer.from(last))
  const d = new MemoryVfs()
  return { exp, dest: { path: '/r', backend: 'memory', vfs: d, root: d.root() } }
}

export async function readText(e: NdmpExport, p: string): Promise<string> {
  const r = await e.vfs.read(await resolve(e.vfs, p), 0n, 1 << 20)
  return Buffer.from(r.data).toString()
}

/** A tree snapshot's entries under `prefix`, renamed relative to it, mtimes blanked (a restore sets its own). */
export function strip(snap: Record<string, { mtime: string }>, prefix: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(snap).filter(([p]) => prefix === '' || p.startsWith(prefix)).map(([p, e]) => [p.slice(prefix.length), { ...e, mtime: '' }]))
}
