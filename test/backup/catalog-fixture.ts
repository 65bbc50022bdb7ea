/*
 * A small model filesystem and a "backup" of it by dump's rule, producing the FileHistoryEntry
 * rows and the DirListing a real backup would: the chain the catalog tests ingest. Times are
 * whole seconds (S); a backup at S copies what has mtime or ctime at or after its base's start.
 */
import type { FileType } from '../../vfs/types.ts'
import type { DirListing, FileHistoryEntry } from '../../backup/types.ts'
import type { Catalog } from '../../backup/catalog/catalog.ts'

export const NS = 1_000_000_000n
export const sec = (s: number): bigint => BigInt(s) * NS

interface Node {
  type: FileType
  size: bigint
  mtime: number
  ctime: number
  fileid: bigint
  data: string
}

export class ModelFs {
  readonly nodes = new Map<string, Node>()
  private nextId = 100n

  constructor(now: number) {
    this.nodes.set('', { type: 'dir', size: 4096n, mtime: now, ctime: now, fileid: 2n, data: '' })
  }

  private touchParent(path: string, now: number): void {
    const parent = this.nodes.get(path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '')
    if (parent === undefined) throw new Error(`no parent of ${path}`)
    parent.mtime = now
    parent.ctime = now
  }

  mkdir(path: string, now: number): void {
    this.touchParent(path, now)
    this.nodes.set(path, { type: 'dir', size: 4096n, mtime: now, ctime: now, fileid: this.nextId++, data: '' })
  }

  write(path: string, data: string, now: number): void {
    const old = this.nodes.get(path)
    if (old === undefined) this.touchParent(path, now)
    this.nodes.set(path, { type: 'file', size: BigInt(data.length), mtime: now, ctime: now, fileid: old?.fileid ?? this.nextId++, data })
  }

  remove(path: string, now: number): void {
    for (const k of [...this.nodes.keys()]) if (k === path || k.startsWith(`${path}/`)) this.nodes.delete(k)
    this.touchParent(path, now)
  }

  rename(from: string, to: string, now: number): void {
    const n = this.nodes.get(from)
    if (n === undefined) throw new Error(`no ${from}`)
    this.nodes.delete(from)
    n.ctime = now
    this.touchParent(from, now)
    this.touchParent(to, now)
    this.nodes.set(to, n)
  }

  /** One backup: entries copied (changed at or after sinceSec; all when null) and the full listing. */
  backup(sinceSec: number | null): { entries: FileHistoryEntry[]; listing: DirListing; bytes: bigint } {
    const entries: FileHistoryEntry[] = []
    let offset = 0n
    const paths = [...this.nodes.keys()].sort()
    for (const path of paths) {
      const n = this.nodes.get(path) as Node
      if (sinceSec !== null && n.type !== 'dir' && n.mtime < sinceSec && n.ctime < sinceSec) continue
      // Directories are always written (tar needs them to place what changed), as dump does.
      entries.push({
        path, type: n.type, mode: n.type === 'dir' ? 0o755 : 0o644, uid: 1000, gid: 1000, size: n.size,
        atime: { sec: n.mtime, nsec: 0 }, mtime: { sec: n.mtime, nsec: 5 }, ctime: { sec: n.ctime, nsec: 0 },
        fileid: n.fileid, offset, ...(n.type === 'file' ? { sha256: `sha-${n.data}` } : {}),
      })
      offset += 512n + ((n.size + 511n) / 512n) * 512n
    }
    const listing: DirListing = new Map()
    for (const path of paths) {
      const n = this.nodes.get(path) as Node
      if (n.type !== 'dir') continue
      const kids = paths.filter(p => p !== path && (path === '' ? !p.includes('/') : p.startsWith(`${path}/`) && !p.slice(path.length + 1).includes('/')))
      listing.set(path, kids.map(k => {
        const c = this.nodes.get(k) as Node
        return { name: k.slice(k.lastIndexOf('/') + 1), fileid: c.fileid, type: c.type }
      }))
    }
    return { entries, listing, bytes: offset }
  }
}

/** Runs a complete backup of the model into the catalog and returns its id. */
export function ingestBackup(cat: Catalog, fs: ModelFs, o: { filesystem: string; level: number; atSec: number; baseId?: number; baseSec?: number; tape: string }): number {
  const id = cat.beginBackup({ filesystem: o.filesystem, level: o.level, baseId: o.baseId ?? null, startedNs: sec(o.atSec), host: 'nas1', agent: 'tsnfs', jobId: `job-${o.atSec}` })
  cat.addTape(id, { label: o.tape, fileNumber: 1, streamOffset: 0n })
  const b = fs.backup(o.baseSec ?? null)
  cat.ingestAll(id, b.entries)
  cat.addListing(id, b.listing)
  cat.finishBackup(id, { endedNs: sec(o.atSec) + 5n * NS, bytes: b.bytes })
  return id
}

/**
 * The chain the tests share, on export /data:
 *   1000 level 0 (tape T0): /a/x.txt /a/y.txt /b/old.log /top.txt
 *   2000 level 1 (T1): x.txt edited, y.txt deleted, /b/new.log created (at 1500)
 *   3000 level 2 (T2): new.log renamed renamed.log, old.log deleted, /c/z.bin created, top.txt edited (at 2500)
 *   3200 level 3: failed (never in a chain)
 *   4000 level 1 (T3): /c removed (at 3500); relative to level 0, so it supersedes levels 1 and 2
 */
export function buildChain(cat: Catalog): { ids: Record<'l0' | 'l1' | 'l2' | 'failed' | 'l1b', number> } {
  const fs = new ModelFs(900)
  fs.mkdir('a', 900)
  fs.write('a/x.txt', 'x-v1', 900)
  fs.write('a/y.txt', 'y-v1', 900)
  fs.mkdir('b', 900)
  fs.write('b/old.log', 'old', 900)
  fs.write('top.txt', 'top-v1', 900)
  const l0 = ingestBackup(cat, fs, { filesystem: '/data', level: 0, atSec: 1000, tape: 'T0' })
  fs.write('a/x.txt', 'x-v2-longer', 1500)
  fs.remove('a/y.txt', 1500)
  fs.write('b/new.log', 'new', 1500)
  const l1 = ingestBackup(cat, fs, { filesystem: '/data', level: 1, atSec: 2000, baseId: l0, baseSec: 1000, tape: 'T1' })
  fs.rename('b/new.log', 'b/renamed.log', 2500)
  fs.remove('b/old.log', 2500)
  fs.mkdir('c', 2500)
  fs.write('c/z.bin', 'zzz', 2500)
  fs.write('top.txt', 'top-v2', 2500)
  const l2 = ingestBackup(cat, fs, { filesystem: '/data', level: 2, atSec: 3000, baseId: l1, baseSec: 2000, tape: 'T2' })
  const failed = cat.beginBackup({ filesystem: '/data', level: 3, baseId: l2, startedNs: sec(3200) })
  cat.failBackup(failed, sec(3201), 'tape drive offline')
  fs.remove('c', 3500)
  const l1b = ingestBackup(cat, fs, { filesystem: '/data', level: 1, atSec: 4000, baseId: l0, baseSec: 1000, tape: 'T3' })
  return { ids: { l0, l1, l2, failed, l1b } }
}
