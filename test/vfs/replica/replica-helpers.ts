/*
 * Helpers for the replicating layer's tests: an in-test ChangeSink that keeps the changes in an
 * array, shipping (WRITE data read from the primary at ship time, as the sender does), backends
 * of both kinds, a seeded random workload, and a comparison of two layers' views.
 */
import type { Test } from 'tap'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { VfsError } from '../../../vfs/errors.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import type { Change, ChangeSink } from '../../../vfs/replica/change.ts'
import { IdMap } from '../../../vfs/replica/id-map.ts'
import { ReplicatingVfs } from '../../../vfs/replica/replicating-vfs.ts'
import type { Attr, FileRef, Vfs } from '../../../vfs/types.ts'

export type Kind = 'memory' | 'local'

export class ArraySink implements ChangeSink {
  readonly changes: { seq: bigint; change: Change }[] = []
  readonly durableAsked: bigint[] = []

  append(change: Change): bigint {
    const seq = BigInt(this.changes.length + 1)
    this.changes.push({ seq, change })
    return seq
  }

  durable(seq: bigint): Promise<void> {
    this.durableAsked.push(seq)
    return Promise.resolve()
  }

  get last(): bigint {
    return BigInt(this.changes.length)
  }
}

/** The changes as a sender ships them: WRITE data read from the primary now (empty when the object is gone). */
export async function ship(layer: ReplicatingVfs, changes: readonly { seq: bigint; change: Change }[]): Promise<{ seq: bigint; change: Change }[]> {
  const out: { seq: bigint; change: Change }[] = []
  for (const { seq, change } of changes) {
    if (change.op !== 'write') {
      out.push({ seq, change })
      continue
    }
    const data = (await layer.readRange(change.ref, change.offset, change.length)) ?? Buffer.alloc(0)
    out.push({ seq, change: { ...change, data } })
  }
  return out
}

export interface Node {
  backend: Vfs
  map: IdMap
  mapDir: string
  layer: ReplicatingVfs
  sink: ArraySink
}

export function backendOf(t: Test, kind: Kind, base: string): Vfs {
  if (kind === 'memory') return new MemoryVfs()
  const root = join(base, 'data')
  mkdirSync(root, { recursive: true })
  const vfs = new LocalVfs({ root, stateDir: join(base, 'local-state') })
  t.teardown(() => vfs.close())
  return vfs
}

export async function node(t: Test, kind: Kind, base: string, mapOptions: { compactRecords?: number } = {}): Promise<Node> {
  const backend = backendOf(t, kind, base)
  const mapDir = join(base, 'map')
  const map = await IdMap.open({ dir: mapDir, root: backend.root(), ...mapOptions })
  t.teardown(() => map.close())
  const sink = new ArraySink()
  return { backend, map, mapDir, sink, layer: new ReplicatingVfs({ backend, map, sink }) }
}

/** Every entry of `dir` through `vfs`, paged by `max`. */
export async function list(vfs: Vfs, dir: FileRef, max: number): Promise<{ name: string; fileid: bigint; cookie: bigint; ref: FileRef | undefined }[]> {
  const out: { name: string; fileid: bigint; cookie: bigint; ref: FileRef | undefined }[] = []
  let cookie = 0n
  for (let pages = 0; pages < 100_000; pages++) {
    const page = await vfs.readdir(dir, cookie, max)
    for (const e of page.entries) out.push({ name: e.name.toString('latin1'), fileid: e.fileid, cookie: e.cookie, ref: e.ref })
    const last = page.entries.at(-1)
    if (page.eof || last === undefined) return out
    cookie = last.cookie
  }
  throw new Error('readdir does not end')
}

async function readAll(vfs: Vfs, f: FileRef): Promise<Buffer> {
  const parts: Buffer[] = []
  let off = 0n
  for (;;) {
    const r = await vfs.read(f, off, 1 << 20)
    parts.push(Buffer.from(r.data))
    r.release?.()
    off += BigInt(r.data.length)
    if (r.eof || r.data.length === 0) return Buffer.concat(parts)
  }
}

function attrView(a: Attr, sameKind: boolean): Record<string, unknown> {
  const dir = a.type === 'dir'
  return {
    type: a.type, uid: a.uid, gid: a.gid, nlink: a.nlink, fileid: a.fileid, gen: a.gen,
    // Across kinds: Linux keeps no mode on symlinks (local: always 0777) and clears setuid/setgid
    // on chown; memory keeps what SETATTR set.
    mode: sameKind ? a.mode : a.type === 'symlink' ? null : a.mode & 0o1777,
    size: dir && !sameKind ? null : a.size, mtime: a.mtime,
  }
}

export interface CompareOptions {
  /** Backends of one kind: directory sizes (each backend counts its own), symlink modes and setuid/setgid bits are compared only then. */
  sameKind: boolean
  /** Page sizes to walk with, besides one that takes a whole directory. */
  pageSizes: number[]
}

/** Walks both views from the root; returns the number of objects compared. */
export async function compareViews(t: Test, a: Vfs, b: Vfs, o: CompareOptions): Promise<number> {
  let objects = 0
  const walk = async (da: FileRef, db: FileRef, path: string): Promise<void> => {
    const whole = await list(a, da, 100_000)
    const wholeB = await list(b, db, 100_000)
    const keys = (es: typeof whole): string[] => es.map((e) => `${e.name}:${e.fileid.toString(16)}:${e.cookie.toString(16)}`)
    const key = (es: typeof whole): string => keys(es).join(' ')
    if (key(whole) !== key(wholeB)) {
      t.strictSame(keys(wholeB), keys(whole), `listing of ${path}`)
      return
    }
    for (const max of o.pageSizes) {
      if (max > whole.length + 1) continue
      const pa = key(await list(a, da, max))
      const pb = key(await list(b, db, max))
      if (pa !== key(whole) || pb !== key(whole)) t.fail(`${path}: paging by ${max} differs`)
    }
    for (const [i, e] of whole.entries()) {
      if (e.name === '.' || e.name === '..') continue
      const ra = e.ref
      const rb = wholeB[i]?.ref
      if (ra === undefined || rb === undefined) {
        t.fail(`${path}/${e.name} has no ref`)
        continue
      }
      objects++
      const [aa, ab] = await Promise.all([a.getattr(ra), b.getattr(rb)])
      t.strictSame(attrView(ab, o.sameKind), attrView(aa, o.sameKind), `${path}/${e.name} attributes`)
      if (aa.type === 'file') {
        const [ca, cb] = await Promise.all([readAll(a, ra), readAll(b, rb)])
        if (!ca.equals(cb)) t.fail(`${path}/${e.name}: bytes differ (${ca.length} vs ${cb.length})`)
      } else if (aa.type === 'symlink') {
        t.strictSame(await b.readlink(rb), await a.readlink(ra), `${path}/${e.name} target`)
      } else if (aa.type === 'dir') {
        await walk(ra, rb, `${path}/${e.name}`)
      }
    }
  }
  await walk(a.root(), b.root(), '')
  return objects
}

export function isVfsError(err: unknown): err is VfsError {
  return err instanceof VfsError
}
