/*
 * A standby's side of the replicating layer: applies the primary's changes,
 * in sequence order, to this node's backend through the id map, and makes
 * them durable in flush() (server/replication/README.md "Changes and their
 * order").
 *
 * Idempotent from the last durable position: after a crash the backend may
 * hold changes past position() that the map does not, so every change is
 * written to converge when applied to a state that already has it, or a
 * later one:
 * - a create whose name exists binds the vid to what is there, unless that
 *   is bound to another vid (the name was taken again later in the log);
 * - a remove/rmdir of a missing name, or of a name now holding another
 *   vid's object, is done; the removed object's vid is the `times` entry
 *   that is not the directory (replicating-vfs.ts);
 * - a rename whose source is gone, or holds another vid than the renamed
 *   one, is done;
 * - a write, setattr or link of a vid not bound here (or gone) is skipped:
 *   a later change in the log removed it;
 * - a change in a directory vid this node never knew is an error (the
 *   standby then asks for a full resync); one whose directory is gone is
 *   skipped, as a removal later in the log explains it.
 * The primary's times are set once per object per flush, after the data.
 */
import { VfsError } from '../errors.ts'
import type { Created, FileRef, Vfs } from '../types.ts'
import type { Change, ChangeTarget, ChangeTimes, NewObject } from './change.ts'
import type { IdMap } from './id-map.ts'
import { isGone, sameRef } from './translate.ts'

export interface ApplierOptions {
  backend: Vfs
  map: IdMap
}

function hex(ref: FileRef): string {
  return `${ref.id.toString(16)}/${ref.gen}`
}

export class Applier implements ChangeTarget {
  readonly #b: Vfs
  readonly #map: IdMap
  #applied: bigint
  /** The primary's latest times per vid since the last flush. */
  readonly #times = new Map<bigint, ChangeTimes>()
  /** Files written since the last flush, by local id. */
  readonly #written = new Map<bigint, FileRef>()

  constructor(o: ApplierOptions) {
    this.#b = o.backend
    this.#map = o.map
    this.#applied = o.map.position()
  }

  position(): bigint {
    return this.#map.position()
  }

  async apply(seq: bigint, change: Change): Promise<void> {
    // A replay may go back (it converges); a gap would lose changes.
    if (seq < 1n || seq > this.#applied + 1n) throw new VfsError('EINVAL', `replica: change ${seq.toString()} does not follow ${this.#applied.toString()}`)
    await this.#apply(seq, change)
    for (const t of change.times) this.#times.set(t.ref.id, t)
    if (seq > this.#applied) this.#applied = seq
  }

  async flush(): Promise<bigint> {
    const written = [...this.#written.values()]
    this.#written.clear()
    for (const local of written) await this.#ifThere(this.#b.commit(local, 0n, 0))
    const times = [...this.#times.values()]
    this.#times.clear()
    for (const t of times) {
      const local = this.#map.local(t.ref)
      if (local !== undefined) await this.#ifThere(this.#b.setattr(local, { atime: t.atime, mtime: t.mtime }))
    }
    const position = this.#applied
    await this.#map.flush(position)
    return position
  }

  async #apply(seq: bigint, c: Change): Promise<void> {
    switch (c.op) {
      case 'create':
        return this.#make(seq, c.obj, (d) => this.#b.create(d, c.obj.name, c.exclusive === null ? { how: 'guarded', attr: { mode: c.obj.mode } } : { how: 'exclusive', verifier: c.exclusive }, owner(c.obj)))
      case 'mkdir':
        return this.#make(seq, c.obj, (d) => this.#b.mkdir(d, c.obj.name, { mode: c.obj.mode }, owner(c.obj)))
      case 'symlink':
        return this.#make(seq, c.obj, (d) => this.#b.symlink(d, c.obj.name, c.target, { mode: c.obj.mode }, owner(c.obj)))
      case 'mknod':
        return this.#make(seq, c.obj, (d) => this.#b.mknod(d, c.obj.name, c.type, c.rdev, { mode: c.obj.mode }, owner(c.obj)))
      case 'write': {
        if (c.data === null) throw new VfsError('EINVAL', `replica: write change ${seq.toString()} carries no data`)
        const local = this.#map.local(c.ref)
        if (local === undefined) return
        if (await this.#ifThere(this.#b.write(local, c.offset, c.data, 'unstable'))) this.#written.set(local.id, local)
        return
      }
      case 'setattr': {
        const local = this.#map.local(c.ref)
        if (local !== undefined) await this.#ifThere(this.#b.setattr(local, c.set))
        return
      }
      case 'remove':
      case 'rmdir':
        return this.#unlink(seq, c.op, c.dir, c.name, named(c.times, [c.dir]))
      case 'rename':
        return this.#rename(seq, c.fromDir, c.fromName, c.toDir, c.toName, named(c.times, [c.fromDir, c.toDir]))
      case 'link':
        return this.#link(seq, c.ref, c.dir, c.name)
    }
  }

  async #make(seq: bigint, obj: NewObject, make: (dir: FileRef) => Promise<Created>): Promise<void> {
    const d = await this.#dir(seq, obj.dir)
    if (d === null) return
    const there = await this.#lookup(d, obj.name)
    if (there !== null) {
      this.#adopt(obj.ref, there)
      return
    }
    try {
      const made = await make(d)
      this.#map.bind(obj.ref, made.ref)
      // An EXCLUSIVE create takes no mode (RFC 1813 §3.3.8), and backends differ in defaults: keep the primary's.
      if (made.attr.mode !== obj.mode && made.attr.type !== 'symlink') await this.#b.setattr(made.ref, { mode: obj.mode })
    } catch (err) {
      const again = err instanceof VfsError && err.code === 'EEXIST' ? await this.#lookup(d, obj.name) : null
      if (again === null) throw err
      this.#adopt(obj.ref, again)
    }
  }

  async #unlink(seq: bigint, op: 'remove' | 'rmdir', dir: FileRef, name: Buffer, victim: FileRef | undefined): Promise<void> {
    const d = await this.#dir(seq, dir)
    if (d === null) return
    const there = await this.#lookup(d, name)
    if (there === null) return
    const vid = this.#map.vidOf(there)
    if (vid !== undefined && victim !== undefined && vid.id !== victim.id) return
    await (op === 'remove' ? this.#b.remove(d, name) : this.#b.rmdir(d, name))
    if (vid !== undefined && !(await this.#exists(there))) this.#map.unbind(vid)
  }

  async #rename(seq: bigint, fromDir: FileRef, fromName: Buffer, toDir: FileRef, toName: Buffer, moved: FileRef | undefined): Promise<void> {
    const fd = await this.#dir(seq, fromDir)
    const td = await this.#dir(seq, toDir)
    if (fd === null || td === null) return
    const src = await this.#lookup(fd, fromName)
    if (src === null) return
    const srcVid = this.#map.vidOf(src)
    if (srcVid !== undefined && moved !== undefined && srcVid.id !== moved.id) return
    const victim = await this.#lookup(td, toName)
    if (victim !== null && sameRef(victim, src)) return
    await this.#b.rename(fd, fromName, td, toName)
    if (srcVid === undefined && moved !== undefined) this.#map.bind(moved, src)
    const victimVid = victim === null ? undefined : this.#map.vidOf(victim)
    if (victim !== null && victimVid !== undefined && !(await this.#exists(victim))) this.#map.unbind(victimVid)
  }

  async #link(seq: bigint, ref: FileRef, dir: FileRef, name: Buffer): Promise<void> {
    const local = this.#map.local(ref)
    if (local === undefined) return
    const d = await this.#dir(seq, dir)
    if (d === null) return
    const there = await this.#lookup(d, name)
    if (there !== null) {
      if (!sameRef(there, local)) this.#adopt(ref, there)
      return
    }
    await this.#ifThere(this.#b.link(local, d, name))
  }

  /** Binds `vid` to what a name holds, unless that is another vid's. */
  #adopt(vid: FileRef, there: FileRef): void {
    const cur = this.#map.vidOf(there)
    if (cur === undefined) this.#map.bind(vid, there)
  }

  /** The local directory of `vid`; null when it is gone here; an error when this node never knew it. */
  async #dir(seq: bigint, vid: FileRef): Promise<FileRef | null> {
    const local = this.#map.local(vid)
    if (local === undefined) {
      throw new VfsError('ESTALE', `replica: change ${seq.toString()} names directory vid ${hex(vid)}, unknown on this node: a full resync is needed`)
    }
    return (await this.#exists(local)) ? local : null
  }

  async #lookup(dir: FileRef, name: Buffer): Promise<FileRef | null> {
    try {
      return (await this.#b.lookup(dir, name)).ref
    } catch (err) {
      if (isGone(err)) return null
      throw err
    }
  }

  async #exists(local: FileRef): Promise<boolean> {
    return this.#ifThere(this.#b.getattr(local))
  }

  /** Whether `p` succeeded; false when the object was gone (ESTALE/ENOENT), other errors thrown. */
  async #ifThere(p: Promise<unknown>): Promise<boolean> {
    try {
      await p
      return true
    } catch (err) {
      if (isGone(err)) return false
      throw err
    }
  }
}

function owner(obj: NewObject): { uid: number; gid: number } {
  return { uid: obj.uid, gid: obj.gid }
}

/** The removed or renamed object: the times entry that is not one of the change's directories. */
function named(times: readonly ChangeTimes[], dirs: readonly FileRef[]): FileRef | undefined {
  return times.find((t) => !dirs.some((d) => d.id === t.ref.id))?.ref
}
