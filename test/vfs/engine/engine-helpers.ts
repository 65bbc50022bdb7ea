/*
 * What the engine backend's tests share: a canonical dump of a tree (through any Vfs, or through
 * the kernel's view of a loop-mounted image) so the engine can be compared with the memory
 * backend as a model and with the kernel as an independent reader, and a seeded workload of
 * NFS-shaped operations applied to both.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import type { Test } from 'tap'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import type { EngineVfs } from '../../../vfs/engine/fs/engine-vfs.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { FileRef, Vfs } from '../../../vfs/types.ts'
import { rng, scratch } from './format-helpers.ts'

export interface DumpEntry {
  type: string
  mode: number
  uid: number
  gid: number
  size: number
  nlink: number
  /** sha256 of a file's bytes, a symlink's target, or "major:minor" of a device. */
  content: string
}

export type TreeDump = Record<string, DumpEntry>

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex').slice(0, 16)
}

/** Every object below `root`, by path; `lost+found` left out (the model has none). */
export async function dumpVfs(vfs: Vfs, root: FileRef = vfs.root()): Promise<TreeDump> {
  const out: TreeDump = {}
  const walk = async (dir: FileRef, prefix: string): Promise<void> => {
    const names: Buffer[] = []
    let cookie = 0n
    for (;;) {
      const page = await vfs.readdir(dir, cookie, 1000)
      for (const e of page.entries) {
        cookie = e.cookie
        const s = e.name.toString('latin1')
        if (s !== '.' && s !== '..') names.push(Buffer.from(e.name))
      }
      if (page.eof || page.entries.length === 0) break
    }
    for (const name of names) {
      const p = `${prefix}/${name.toString('latin1')}`
      if (p === '/lost+found') continue
      const { ref, attr } = await vfs.lookup(dir, name)
      let content = ''
      if (attr.type === 'file') {
        const h = createHash('sha256')
        for (let off = 0n; off < attr.size; ) {
          const r = await vfs.read(ref, off, 1 << 20)
          h.update(r.data)
          if (r.data.length === 0) break
          off += BigInt(r.data.length)
        }
        content = h.digest('hex').slice(0, 16)
      } else if (attr.type === 'symlink') content = sha(await vfs.readlink(ref))
      else if (attr.type === 'block' || attr.type === 'char') content = `${attr.rdev.major}:${attr.rdev.minor}`
      out[p] = { type: attr.type, mode: attr.mode, uid: attr.uid, gid: attr.gid, size: attr.type === 'dir' ? 0 : Number(attr.size), nlink: attr.type === 'dir' ? 0 : attr.nlink, content }
      if (attr.type === 'dir') await walk(ref, p)
    }
  }
  await walk(root, '')
  return out
}

const TYPE_OF: Array<[number, string]> = [
  [fs.constants.S_IFREG, 'file'], [fs.constants.S_IFDIR, 'dir'], [fs.constants.S_IFLNK, 'symlink'],
  [fs.constants.S_IFBLK, 'block'], [fs.constants.S_IFCHR, 'char'], [fs.constants.S_IFSOCK, 'socket'], [fs.constants.S_IFIFO, 'fifo'],
]

/** The same dump through the host's file system (a loop mount of an image). */
export function dumpHost(root: string): TreeDump {
  const out: TreeDump = {}
  const walk = (dir: string, prefix: string): void => {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const p = `${prefix}/${name.toString('latin1')}`
      if (p === '/lost+found') continue
      const full = Buffer.concat([Buffer.from(dir), Buffer.from('/'), name])
      const st = fs.lstatSync(full)
      const type = TYPE_OF.find(([m]) => (st.mode & fs.constants.S_IFMT) === m)?.[1] ?? '?'
      let content = ''
      if (type === 'file') content = sha(fs.readFileSync(full))
      else if (type === 'symlink') content = sha(fs.readlinkSync(full, { encoding: 'buffer' }))
      else if (type === 'block' || type === 'char') content = `${Math.floor(st.rdev / 256) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >>> 12) & 0xfff00)}`
      out[p] = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: type === 'dir' ? 0 : st.size, nlink: type === 'dir' ? 0 : st.nlink, content }
      if (type === 'dir') walk(path.join(dir, name.toString('latin1')), p)
    }
  }
  walk(root, '')
  return out
}

export { rng }

export interface WorkloadOptions {
  ops: number
  /** Allow writes far out (sparse files past 4 GiB). */
  bigOffsets?: boolean
  /** Names per directory the workload draws from; more gives bigger directories. */
  names?: number
}

type Outcome = string

/**
 * Apply one seeded sequence of operations to every Vfs given and return, per operation, a
 * description of its outcome (the error code, or the attributes that matter) for each. The
 * first Vfs is the model; a test asserts the outcomes match.
 */
export async function runWorkload(vfss: Vfs[], seed: number, opts: WorkloadOptions): Promise<Array<{ op: string; outcomes: Outcome[] }>> {
  const r = rng(seed)
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T
  const names = Array.from({ length: opts.names ?? 12 }, (_, i) => Buffer.from(`n${i}${i % 3 === 0 ? 'x'.repeat(40) : ''}`))
  const dirPaths: string[][] = [[]]
  const log: Array<{ op: string; outcomes: Outcome[] }> = []

  const resolve = async (vfs: Vfs, parts: string[]): Promise<FileRef | undefined> => {
    let ref = vfs.root()
    for (const p of parts) {
      try {
        ref = (await vfs.lookup(ref, Buffer.from(p))).ref
      } catch {
        return undefined
      }
    }
    return ref
  }
  const owner = { uid: 1000, gid: 1000 }

  for (let i = 0; i < opts.ops; i++) {
    const dir = pick(dirPaths)
    const name = pick(names)
    const kind = pick(['create', 'create', 'write', 'write', 'write', 'read', 'truncate', 'mkdir', 'rmdir', 'remove', 'rename', 'link', 'symlink', 'mknod', 'readdir', 'setattr'])
    const off = opts.bigOffsets === true && r() < 0.1 ? Math.floor(r() * 6 * 2 ** 30) : Math.floor(r() * 300_000)
    const len = Math.floor(r() * (r() < 0.2 ? 2_000_000 : 20_000))
    const dataSeed = Math.floor(r() * 2 ** 31)
    const dir2 = pick(dirPaths)
    const name2 = pick(names)
    const target = r() < 0.5 ? 'short/target' : `long/${'t'.repeat(Math.floor(r() * 300) + 60)}`
    const op = `${kind} /${dir.join('/')}/${name.toString()} ${kind === 'write' ? `${off}+${len}` : kind === 'truncate' ? String(off) : kind === 'rename' || kind === 'link' ? `/${dir2.join('/')}/${name2.toString()}` : ''}`
    const outcomes: Outcome[] = []
    for (const vfs of vfss) {
      outcomes.push(await applyOne(vfs, kind, dir, name, dir2, name2, off, len, dataSeed, target, owner, resolve))
    }
    if (kind === 'mkdir' && !outcomes[0]?.startsWith('E') && dir.length < 4) dirPaths.push([...dir, name.toString()])
    log.push({ op, outcomes })
  }
  return log
}

/** Deterministic bytes of a seed (file data of the workloads). */
export function bytes(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n + 3)
  let s = seed >>> 0
  for (let i = 0; i < n; i += 4) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    b.writeUInt32LE(s, i)
  }
  return b.subarray(0, n)
}

async function applyOne(
  vfs: Vfs, kind: string, dir: string[], name: Buffer, dir2: string[], name2: Buffer, off: number, len: number, dataSeed: number, target: string,
  owner: { uid: number; gid: number }, resolve: (vfs: Vfs, parts: string[]) => Promise<FileRef | undefined>,
): Promise<Outcome> {
  const d = await resolve(vfs, dir)
  if (d === undefined) return 'no-dir'
  try {
    const child = async (): Promise<FileRef> => (await vfs.lookup(d, name)).ref
    switch (kind) {
      case 'create': return describe((await vfs.create(d, name, { how: 'guarded', attr: { mode: 0o640 } }, owner)).attr)
      case 'write': {
        const w = await vfs.write(await child(), BigInt(off), bytes(dataSeed, len), 'unstable')
        return `${w.count} ${describe(w.after)}`
      }
      case 'read': {
        const rd = await vfs.read(await child(), BigInt(off), len)
        return `${rd.data.length} ${rd.eof} ${sha(rd.data)}`
      }
      case 'truncate': return describe((await vfs.setattr(await child(), { size: BigInt(off) })).after)
      case 'setattr': return describe((await vfs.setattr(await child(), { mode: 0o600, mtime: { sec: 1_700_000_000, nsec: 123456789 } })).after)
      case 'mkdir': return describe((await vfs.mkdir(d, name, { mode: 0o750 }, owner)).attr)
      case 'rmdir': await vfs.rmdir(d, name); return 'ok'
      case 'remove': await vfs.remove(d, name); return 'ok'
      case 'rename': {
        const d2 = await resolve(vfs, dir2)
        if (d2 === undefined) return 'no-dir'
        await vfs.rename(d, name, d2, name2)
        return 'ok'
      }
      case 'link': {
        const d2 = await resolve(vfs, dir2)
        if (d2 === undefined) return 'no-dir'
        return describe((await vfs.link(await child(), d2, name2)).attr)
      }
      case 'symlink': return describe((await vfs.symlink(d, name, Buffer.from(target), {}, owner)).attr)
      case 'mknod': return describe((await vfs.mknod(d, name, len % 2 === 0 ? 'fifo' : 'char', { major: 4, minor: len % 300 }, { mode: 0o600 }, owner)).attr)
      case 'readdir': {
        const all: string[] = []
        let cookie = 0n
        for (;;) {
          const page = await vfs.readdir(d, cookie, 7)
          for (const e of page.entries) {
            all.push(e.name.toString())
            cookie = e.cookie
          }
          if (page.eof || page.entries.length === 0) break
        }
        return all.filter((n) => n !== 'lost+found').sort().join(',')
      }
      default: throw new Error(`unknown op ${kind}`)
    }
  } catch (err) {
    const code = (err as { code?: string }).code
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code
    throw err
  }
}

function describe(a: { type: string; mode: number; size: bigint; nlink: number; uid: number; gid: number }): string {
  return `${a.type} ${a.mode.toString(8)} ${a.type === 'dir' ? '' : a.size} n${a.type === 'dir' ? '' : a.nlink} ${a.uid}:${a.gid}`
}

/** A new 64 MiB image file made by our mkfs, opened as an engine closed at the test's end. */
export async function freshEngine(t: Test, prefix: string): Promise<EngineVfs> {
  const image = path.join(scratch(t, prefix), 'e.img')
  const dev = await ImageFile.create(image, 64 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  const e = await openEngine(image)
  t.teardown(() => e.close())
  return e
}
