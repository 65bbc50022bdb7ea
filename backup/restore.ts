/*
 * readBackup: one stream (one level) into a Vfs tree, or into a host directory through the local
 * backend (which sets nanosecond times and makes device nodes). Each path is resolved a component
 * at a time by lookup, which never follows a symlink, and a component that is not a directory is
 * refused: a restore never leaves its target. Directories get their times last (their entries'
 * creation moves them); with applyDeletions a directory's GNU.dumpdir listing removes what the
 * source had deleted since the previous level, so a chain 0, 1, 2... ends as the tree was.
 */
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FileRef, Owner, SetAttr, Vfs } from '../vfs/types.ts'
import { LocalVfs } from '../vfs/local/local-vfs.ts'
import { BackupFormatError } from './types.ts'
import type { ByteSource, FileHistoryEntry, RestoreRequest, RestoreSummary, RestoreTarget } from './types.ts'
import { detectCompression } from './compress.ts'
import { decodeDumpdir, DUMPDIR_KEY } from './dumpdir.ts'
import { TarReader } from './tar/reader.ts'
import type { TarEntry } from './tar/reader.ts'

const MAX_NAME = 255

function errCode(err: unknown): string {
  return (err as { code?: string }).code ?? (err instanceof Error ? err.message : String(err))
}

/** A path refused before it touches the target (escape attempts, empty or over-long names). */
class UnsafePath extends Error {}

function components(p: string): string[] {
  if (p === '') return []
  const parts = p.split('/')
  for (const c of parts) {
    if (c === '' || c === '.' || c === '..') throw new UnsafePath(`'${p}' has a '${c}' component`)
    if (Buffer.byteLength(c) > MAX_NAME || c.includes('\0')) throw new UnsafePath(`'${p}' has a name the target cannot hold`)
  }
  return parts
}

/** Maps a stream path to where it lands, or null when the selection leaves it out. */
function destination(p: string, req: RestoreRequest): string | null {
  if (req.select === undefined || req.select.length === 0) return p
  for (const s of req.select) {
    const sel = s.path.replace(/^\/+|\/+$/g, '')
    if (sel === '' || p === sel || p.startsWith(sel + '/')) {
      const rest = sel === '' ? p : p.slice(sel.length).replace(/^\//, '')
      if (s.dest === undefined) return p
      const dest = s.dest.replace(/^\/+|\/+$/g, '')
      return dest === '' ? rest : rest === '' ? dest : `${dest}/${rest}`
    }
  }
  return null
}

class Restorer {
  readonly #vfs: Vfs
  readonly #root: FileRef
  readonly #owner: Owner
  readonly #req: RestoreRequest
  readonly summary: RestoreSummary = { files: 0, dirs: 0, bytes: 0n, skipped: [], deleted: [] }
  /** Directories whose attributes are set at the end, in creation order. */
  readonly #dirs: Array<{ parent: FileRef; name: Buffer; e: TarEntry }> = []

  constructor(vfs: Vfs, root: FileRef, owner: Owner, req: RestoreRequest) {
    this.#vfs = vfs
    this.#root = root
    this.#owner = owner
    this.#req = req
  }

  #log(level: 'info' | 'warn' | 'error', msg: string): void {
    this.#req.onLog?.(level, msg)
  }

  #skip(p: string, why: string, level: 'info' | 'warn' | 'error' = 'warn'): void {
    this.summary.skipped.push(p)
    this.#log(level, `${p}: ${why}`)
  }

  async #lookup(dir: FileRef, name: Buffer): Promise<{ ref: FileRef; type: string } | null> {
    try {
      const r = await this.#vfs.lookup(dir, name)
      return { ref: r.ref, type: r.attr.type }
    } catch (err) {
      if (errCode(err) === 'ENOENT') return null
      throw err
    }
  }

  /** The directory holding `parts`' last name; missing directories on the way are made. Throws UnsafePath on a non-directory. */
  async #parent(parts: string[]): Promise<FileRef> {
    let dir = this.#root
    for (const c of parts.slice(0, -1)) {
      const name = Buffer.from(c)
      const found = await this.#lookup(dir, name)
      if (found === null) {
        dir = (await this.#vfs.mkdir(dir, name, { mode: 0o755 }, this.#owner)).ref
      } else if (found.type !== 'dir') {
        throw new UnsafePath(`'${parts.join('/')}' passes through '${c}', a ${found.type}, not a directory: refused`)
      } else dir = found.ref
    }
    return dir
  }

  /** Removes a name, a directory with everything below it. */
  async #removeAll(dir: FileRef, name: Buffer): Promise<void> {
    const found = await this.#lookup(dir, name)
    if (found === null) return
    if (found.type !== 'dir') {
      await this.#vfs.remove(dir, name)
      return
    }
    for (const child of await this.#names(found.ref)) await this.#removeAll(found.ref, child)
    await this.#vfs.rmdir(dir, name)
  }

  async #names(dir: FileRef): Promise<Buffer[]> {
    const out: Buffer[] = []
    let cookie = 0n
    for (;;) {
      const page = await this.#vfs.readdir(dir, cookie, 1024)
      for (const e of page.entries) {
        cookie = e.cookie
        const n = e.name
        if ((n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e)) continue
        out.push(Buffer.from(n))
      }
      if (page.eof || page.entries.length === 0) return out
    }
  }

  async #setAttrs(ref: FileRef, e: TarEntry): Promise<void> {
    const set: SetAttr = { uid: e.uid, gid: e.gid, mtime: e.mtime, ...(e.atime === null ? {} : { atime: e.atime }) }
    if (e.type !== 'symlink') set.mode = e.mode
    try {
      await this.#vfs.setattr(ref, set)
    } catch (err) {
      // An owner the target may not give (not root): keep the mode and times at least.
      if (errCode(err) !== 'EPERM') throw err
      delete set.uid
      delete set.gid
      await this.#vfs.setattr(ref, set)
    }
  }

  async entry(e: TarEntry, reader: TarReader): Promise<void> {
    const dest = destination(e.path, this.#req)
    if (dest === null) return
    if (e.type === 'other') {
      this.#skip(e.path, 'a member type this restore does not make', 'info')
      return
    }
    let parts: string[]
    let parent: FileRef
    try {
      parts = components(dest)
      parent = parts.length === 0 ? this.#root : await this.#parent(parts)
    } catch (err) {
      if (err instanceof UnsafePath) {
        this.#skip(e.path, err.message, 'error')
        return
      }
      throw err
    }
    if (parts.length === 0) {
      // The root itself: it stays; its listing may still remove deleted names.
      if (e.type === 'dir') await this.#deletions(this.#root, dest, e)
      return
    }
    const name = Buffer.from(parts.at(-1) ?? '')
    const existing = await this.#lookup(parent, name)
    if (e.type === 'dir') {
      let ref: FileRef
      if (existing?.type === 'dir') ref = existing.ref
      else {
        if (existing !== null) {
          if (!this.#req.overwrite) {
          this.#skip(dest, `exists (a ${existing.type}); kept, not overwritten`)
          return
        }
          await this.#removeAll(parent, name)
        }
        ref = (await this.#vfs.mkdir(parent, name, { mode: 0o700 }, this.#owner)).ref
      }
      this.summary.dirs++
      this.#dirs.push({ parent, name, e })
      await this.#deletions(ref, dest, e)
      this.#done(e)
      return
    }
    if (existing !== null) {
      if (!this.#req.overwrite) {
          this.#skip(dest, `exists (a ${existing.type}); kept, not overwritten`)
          return
        }
      await this.#removeAll(parent, name)
    }
    let ref: FileRef
    switch (e.type) {
      case 'file':
        ref = await this.#file(parent, name, e, reader)
        break
      case 'symlink':
        // Made, never followed: later paths through it are refused by #parent.
        ref = (await this.#vfs.symlink(parent, name, Buffer.from(e.linkTarget), {}, this.#owner)).ref
        break
      case 'hardlink': {
        const target = destination(e.linkTarget, { ...this.#req, select: this.#req.select ?? [] }) ?? e.linkTarget
        const tparts = components(target)
        const tdir = await this.#parent(tparts)
        const t = tparts.length === 0 ? null : await this.#lookup(tdir, Buffer.from(tparts.at(-1) ?? ''))
        if (t === null || t.type === 'dir') {
          this.#skip(dest, `hard link to '${e.linkTarget}', which is not restored`)
          return
        }
        await this.#vfs.link(t.ref, parent, name)
        this.summary.files++
        this.#done(e)
        return
      }
      case 'char':
      case 'block':
      case 'fifo':
        ref = (await this.#vfs.mknod(parent, name, e.type, e.rdev, {}, this.#owner)).ref
        break
    }
    await this.#setAttrs(ref, e)
    this.summary.files++
    this.#done(e)
  }

  async #file(parent: FileRef, name: Buffer, e: TarEntry, reader: TarReader): Promise<FileRef> {
    const { ref } = await this.#vfs.create(parent, name, { how: 'guarded', attr: { mode: 0o600 } }, this.#owner)
    for await (const { offset, data } of reader.fileData(e)) {
      this.#req.signal?.throwIfAborted()
      let done = 0
      while (done < data.length) {
        const w = await this.#vfs.write(ref, offset + BigInt(done), done === 0 ? data : data.subarray(done), 'unstable')
        if (w.count === 0) throw new Error(`${e.path}: the target accepted no bytes`)
        done += w.count
      }
      this.summary.bytes += BigInt(data.length)
    }
    // A sparse file may end in a hole: its size comes from the header, not from the data.
    if (e.sparse !== null) await this.#vfs.setattr(ref, { size: e.size })
    await this.#vfs.commit(ref, 0n, 0)
    return ref
  }

  /** Removes the names a directory's listing no longer has (applyDeletions). */
  async #deletions(ref: FileRef, dest: string, e: TarEntry): Promise<void> {
    if (!this.#req.applyDeletions) return
    const raw = e.pax.get(DUMPDIR_KEY)
    if (raw === undefined) return
    const listed = decodeDumpdir(raw)
    if (listed === null) {
      this.#log('warn', `${e.path}: its ${DUMPDIR_KEY} record is malformed; no deletions applied there`)
      return
    }
    const keep = new Set(listed.map((l) => l.name.toString('latin1')))
    for (const n of await this.#names(ref)) {
      if (keep.has(n.toString('latin1'))) continue
      await this.#removeAll(ref, n)
      const p = dest === '' ? n.toString('utf8') : `${dest}/${n.toString('utf8')}`
      this.summary.deleted.push(p)
      this.#log('info', `${p}: deleted since the previous level, removed`)
    }
  }

  #done(e: TarEntry): void {
    if (this.#req.onFile === undefined) return
    const h: FileHistoryEntry = {
      path: e.path,
      type: e.type === 'hardlink' ? 'file' : e.type === 'other' ? 'file' : e.type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.size,
      atime: e.atime ?? e.mtime,
      mtime: e.mtime,
      ctime: e.ctime ?? e.mtime,
      fileid: 0n,
      offset: e.offset,
      ...(e.type === 'symlink' ? { linkTarget: e.linkTarget } : {}),
      ...(e.type === 'hardlink' ? { hardLinkOf: e.linkTarget } : {}),
    }
    this.#req.onFile(h)
  }

  /** Directory attributes last, deepest first, so adding their entries does not move their times again. */
  async finish(): Promise<void> {
    for (const d of this.#dirs.reverse()) {
      const found = await this.#lookup(d.parent, d.name)
      if (found?.type === 'dir') await this.#setAttrs(found.ref, d.e)
    }
  }
}

async function restoreInto(vfs: Vfs, root: FileRef, owner: Owner, source: ByteSource, sourceName: string, req: RestoreRequest): Promise<RestoreSummary> {
  const { source: plain } = await detectCompression(source, sourceName)
  const reader = new TarReader(plain, sourceName)
  const r = new Restorer(vfs, root, owner, req)
  try {
    // Direct access: when every selected path names a file and each has been met, the rest of
    // the stream is not read (a source positioned at a file's offset reads that file only).
    const wanted = new Set((req.select ?? []).map((x) => x.path.replace(/^\/+|\/+$/g, '')))
    let stopEarly = wanted.size > 0 && !wanted.has('')
    for (;;) {
      req.signal?.throwIfAborted()
      if (stopEarly && wanted.size === 0) break
      const e = await reader.next()
      if (e === null) break
      if (wanted.has(e.path)) {
        if (e.type === 'dir') stopEarly = false // a directory's entries may come anywhere after it
        wanted.delete(e.path)
      }
      try {
        await r.entry(e, reader)
      } catch (err) {
        if (err instanceof BackupFormatError || req.signal?.aborted === true) throw err
        // One object the target refused (no space, a permission): the rest of the stream still restores.
        r.summary.skipped.push(e.path)
        req.onLog?.('error', `${e.path}: not restored: ${errCode(err)}`)
      }
    }
  } finally {
    // Whatever came before a fault is restored whole, directory times included.
    await r.finish()
  }
  return r.summary
}

/** Reads one stream into `target` (see the file comment). */
export async function readBackup(source: ByteSource, sourceName: string, target: RestoreTarget, req: RestoreRequest): Promise<RestoreSummary> {
  if (target.kind === 'vfs') return restoreInto(target.vfs, target.root, target.owner, source, sourceName, req)
  await fs.mkdir(target.dir, { recursive: true })
  const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tsnfs-restore-'))
  const vfs = new LocalVfs({ root: target.dir, stateDir })
  try {
    const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }
    return await restoreInto(vfs, vfs.root(), owner, source, sourceName, req)
  } finally {
    await vfs.close()
    await fs.rm(stateDir, { recursive: true, force: true })
  }
}
