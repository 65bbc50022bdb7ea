/* Helpers for the backup format tests: sinks and sources over files and memory, trees to back up. */
import fs from 'node:fs'
import type { ByteSink, ByteSource } from '../../backup/types.ts'
import type { FileRef, Vfs } from '../../vfs/types.ts'

/** A sink into a host file (the "tape"). */
export function fileSink(file: string): ByteSink & { close(): void } {
  const fd = fs.openSync(file, 'w')
  return {
    async write(chunk: Buffer): Promise<void> {
      let done = 0
      while (done < chunk.length) done += fs.writeSync(fd, chunk, done)
    },
    close(): void {
      fs.closeSync(fd)
    },
  }
}

/** A source reading a host file, or a prefix of it. */
export function fileSource(file: string, limit = Infinity): ByteSource {
  const fd = fs.openSync(file, 'r')
  let pos = 0
  return {
    async read(max: number): Promise<Buffer | null> {
      const n = Math.min(max, limit - pos)
      if (n <= 0) {
        fs.closeSync(fd)
        return null
      }
      const b = Buffer.allocUnsafe(n)
      const got = fs.readSync(fd, b, 0, n, pos)
      if (got === 0) {
        fs.closeSync(fd)
        return null
      }
      pos += got
      return b.subarray(0, got)
    },
  }
}

export function memorySink(): ByteSink & { bytes(): Buffer } {
  const parts: Buffer[] = []
  return {
    async write(chunk: Buffer): Promise<void> {
      parts.push(Buffer.from(chunk))
    },
    bytes: () => Buffer.concat(parts),
  }
}

export function bufferSource(b: Buffer, step = 65536): ByteSource {
  let pos = 0
  return {
    async read(max: number): Promise<Buffer | null> {
      if (pos >= b.length) return null
      const n = Math.min(max, step, b.length - pos)
      const out = b.subarray(pos, pos + n)
      pos += n
      return out
    },
  }
}

const OWNER = { uid: 0, gid: 0 }

/** Resolves a '/'-separated path from the root (no symlinks followed). */
export async function resolve(vfs: Vfs, p: string): Promise<FileRef> {
  let ref = vfs.root()
  for (const c of p.split('/').filter((x) => x !== '')) ref = (await vfs.lookup(ref, Buffer.from(c))).ref
  return ref
}

function split(p: string): { dir: string; name: Buffer } {
  const i = p.lastIndexOf('/')
  return { dir: i === -1 ? '' : p.slice(0, i), name: Buffer.from(p.slice(i + 1)) }
}

export async function mkdirp(vfs: Vfs, p: string, mode = 0o755): Promise<FileRef> {
  let ref = vfs.root()
  for (const c of p.split('/').filter((x) => x !== '')) {
    try {
      ref = (await vfs.lookup(ref, Buffer.from(c))).ref
    } catch {
      ref = (await vfs.mkdir(ref, Buffer.from(c), { mode }, OWNER)).ref
    }
  }
  return ref
}

export async function writeFile(vfs: Vfs, p: string, data: Buffer | string, mode = 0o644): Promise<FileRef> {
  const { dir, name } = split(p)
  const d = await mkdirp(vfs, dir)
  let ref: FileRef
  try {
    ref = (await vfs.lookup(d, name)).ref
    await vfs.setattr(ref, { size: 0n })
  } catch {
    ref = (await vfs.create(d, name, { how: 'unchecked', attr: { mode } }, OWNER)).ref
  }
  const b = typeof data === 'string' ? Buffer.from(data) : data
  if (b.length > 0) await vfs.write(ref, 0n, b, 'file_sync')
  return ref
}

export async function symlink(vfs: Vfs, p: string, target: string): Promise<void> {
  const { dir, name } = split(p)
  await vfs.symlink(await mkdirp(vfs, dir), name, Buffer.from(target), {}, OWNER)
}

export async function link(vfs: Vfs, existing: string, p: string): Promise<void> {
  const { dir, name } = split(p)
  await vfs.link(await resolve(vfs, existing), await mkdirp(vfs, dir), name)
}

export async function remove(vfs: Vfs, p: string): Promise<void> {
  const { dir, name } = split(p)
  await vfs.remove(await resolve(vfs, dir), name)
}

export async function rename(vfs: Vfs, from: string, to: string): Promise<void> {
  const a = split(from)
  const b = split(to)
  await vfs.rename(await resolve(vfs, a.dir), a.name, await mkdirp(vfs, b.dir), b.name)
}

export interface TreeEntry {
  type: string
  mode: number
  uid: number
  gid: number
  size: string
  mtime: string
  data?: string
  target?: string
  fileid: string
}

/** Every object under the root: type, mode, owner, size, mtime (ns), content (sha-less, text) or link target. */
export async function snapshotTree(vfs: Vfs, opts: { ids?: boolean; dirTimes?: boolean } = {}): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {}
  const walk = async (ref: FileRef, p: string): Promise<void> => {
    let cookie = 0n
    const names: Buffer[] = []
    for (;;) {
      const page = await vfs.readdir(ref, cookie, 1000)
      for (const e of page.entries) {
        cookie = e.cookie
        const s = e.name.toString()
        if (s !== '.' && s !== '..') names.push(Buffer.from(e.name))
      }
      if (page.eof || page.entries.length === 0) break
    }
    for (const n of names) {
      const { ref: r, attr } = await vfs.lookup(ref, n)
      const cp = p === '' ? n.toString() : `${p}/${n.toString()}`
      const e: TreeEntry = {
        type: attr.type,
        mode: attr.mode,
        uid: attr.uid,
        gid: attr.gid,
        size: attr.type === 'file' ? String(attr.size) : '',
        mtime: attr.type === 'dir' && opts.dirTimes !== true ? '' : `${attr.mtime.sec}.${attr.mtime.nsec}`,
        fileid: opts.ids === true ? String(attr.fileid) : '',
      }
      if (attr.type === 'file') {
        const parts: Buffer[] = []
        let off = 0n
        while (off < attr.size) {
          const rr = await vfs.read(r, off, 1 << 20)
          if (rr.data.length === 0) break
          parts.push(Buffer.from(rr.data))
          rr.release?.()
          off += BigInt(rr.data.length)
        }
        e.data = Buffer.concat(parts).toString('base64')
      }
      if (attr.type === 'symlink') e.target = (await vfs.readlink(r)).toString()
      out[cp] = e
      if (attr.type === 'dir') await walk(r, cp)
    }
  }
  await walk(vfs.root(), '')
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}
