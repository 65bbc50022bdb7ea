/*
 * A standby's side of the replicating layer: applies the primary's changes,
 * in sequence order, to this node's backend through the id map, and makes
 * them durable in flush() (server/replication/README.md "Changes and their
 * order").
 *
 * Idempotent from the last durable position. After each change but a WRITE
 * or SETATTR the map is written through (binds, unbinds and the change's seq,
 * not synced; those two replay exactly, so they ride with the next), so a
 * standby restarted after a process crash knows both its durable position
 * and how far it had got (appliedHint): changes up to the position are
 * skipped; changes after it up to the hint are in the backend and the map
 * already, and only their times and data commits are redone. A change past
 * the hint may have been cut short, and after a machine crash the map may lag
 * the backend, so every change converges when applied to a state that
 * already has it:
 * - a create whose vid is bound is done; one whose name exists binds the
 *   vid to what is there if that is of the kind made and bound to nothing;
 * - a remove/rmdir of a missing name, or of a name holding another vid's
 *   object, is done (`times` names the removed object: replicating-vfs.ts);
 * - a rename whose source is gone, or holds another vid than the moved one,
 *   is done (and the object it replaced, if a replayed create made it again,
 *   does not stay at the target);
 * - a write, setattr or link of a vid not bound here (or gone) is skipped:
 *   a later change in the log removed it;
 * - a change in a directory vid this node never knew is an error (the
 *   standby then asks for a full resync); one whose directory is gone is
 *   skipped, as a removal later in the log explains it.
 * The primary's times are set once per object per flush, after the data.
 */
import { VfsError } from '../errors.ts'
import type { Caller, Created, FileRef, FileType, Owner, Vfs } from '../types.ts'
import type { Change, ChangeTarget, ChangeTimes, NewObject } from './change.ts'
import type { IdMap } from './id-map.ts'
import { storableTimes } from './storable-time.ts'
import { isGone, sameRef } from './translate.ts'

export interface ApplierOptions {
  backend: Vfs
  map: IdMap
}

interface Found {
  ref: FileRef
  type: FileType
}

function hex(ref: FileRef): string {
  return `${ref.id.toString(16)}/${ref.gen}`
}

export class Applier implements ChangeTarget {
  readonly #b: Vfs
  readonly #map: IdMap
  #applied: bigint
  /** Changes up to this one may be in the backend already (a crash before their flush). */
  #replayUntil: bigint
  /**
   * Changes up to this one were logged while a full resync walked the tree: one naming a
   * directory this node does not know is skipped (the walk found it gone), not an error.
   */
  #walkedUntil = 0n
  /** The primary's latest times per vid since the last flush. */
  readonly #times = new Map<bigint, ChangeTimes>()
  /** Files written since the last flush, by local id. */
  readonly #written = new Map<bigint, FileRef>()
  /** Directories a namespace change touched, linked files and SETATTR's objects, since the last flush, by local id. */
  readonly #touched = new Map<bigint, FileRef>()

  constructor(o: ApplierOptions) {
    this.#b = o.backend
    this.#map = o.map
    this.#applied = o.map.position()
    this.#replayUntil = o.map.appliedHint()
  }

  position(): bigint {
    return this.#map.position()
  }

  async apply(seq: bigint, change: Change): Promise<void> {
    // A replay may go back (it converges); a gap would lose changes.
    if (seq < 1n || seq > this.#applied + 1n) throw new VfsError('EINVAL', `replica: change ${seq.toString()} does not follow ${this.#applied.toString()}`)
    // Durable here already: its effects are in the backend and the map.
    if (seq <= this.#map.position()) return
    if (seq <= this.#replayUntil) {
      // Applied before a process crash, its binds written through: only its times and its
      // data's commit, which flush() had not done yet, are left to do.
      if (change.op === 'write') {
        const local = this.#map.local(change.ref)
        if (local !== undefined) this.#written.set(local.id, local)
      }
    } else {
      await this.#apply(seq, change)
    }
    // In step with the backend after a process crash (id-map-file.ts). A WRITE or SETATTR binds
    // nothing and applies again exactly (the same bytes, the same attributes, in order), so it
    // needs no write of its own: the next change's record or the flush covers it, one write
    // system call less per WRITE on the standby.
    if (change.op !== 'write' && change.op !== 'setattr') this.#map.writeThrough(seq)
    for (const t of change.times) this.#times.set(t.ref.id, t)
    if (seq > this.#applied) this.#applied = seq
  }

  /**
   * The end of a full resync: the tree matches the primary's as of change `p0` (changes after it
   * may be there too, and converge when applied), so the next change applied is p0 + 1. Changes
   * up to `walkedUntil` were logged during the walk (see #walkedUntil). Durable on return.
   */
  async rebase(p0: bigint, walkedUntil: bigint): Promise<void> {
    this.#times.clear()
    this.#written.clear()
    this.#touched.clear()
    await this.#map.rebase(p0)
    this.#applied = p0
    this.#replayUntil = p0
    this.#walkedUntil = walkedUntil
  }

  async flush(): Promise<bigint> {
    // Each is forgotten only once done, so a flush that failed part way is redone whole by the next.
    for (const [id, local] of [...this.#written]) {
      await this.#ifThere(this.#b.commit(local, 0n, 0))
      this.#written.delete(id)
    }
    for (const [id, t] of [...this.#times]) {
      const local = this.#map.local(t.ref)
      if (local !== undefined) await this.#ifThere(this.#b.setattr(local, storableTimes(t.atime, t.mtime)))
      if (this.#times.get(id) === t) this.#times.delete(id)
    }
    // RFC 1813 §1.6 as on a primary: the namespace changes applied (a local backend's directory
    // entries) are durable before the map names the position, else a host crash could lose objects
    // the map still names. After the times: on ext4 and xfs the same journal commit then holds them.
    if (this.#touched.size > 0 && this.#b.commitMetadata !== undefined) {
      // Taken before the await: a change applied meanwhile touches them again for the next flush.
      const touched = [...this.#touched.values()]
      this.#touched.clear()
      try {
        await this.#b.commitMetadata(touched)
      } catch (err) {
        for (const r of touched) if (!this.#touched.has(r.id)) this.#touched.set(r.id, r)
        throw err
      }
    }
    const position = this.#applied
    await this.#map.flush(position)
    return position
  }

  async #apply(seq: bigint, c: Change): Promise<void> {
    switch (c.op) {
      case 'create':
        return this.#make(seq, c.obj, 'file', (d) => this.#b.create(d, c.obj.name, c.exclusive === null ? { how: 'guarded', attr: { mode: c.obj.mode } } : { how: 'exclusive', verifier: c.exclusive }, owner(c.obj)), c.exclusive !== null)
      case 'mkdir':
        return this.#make(seq, c.obj, 'dir', (d) => this.#b.mkdir(d, c.obj.name, { mode: c.obj.mode }, owner(c.obj)))
      case 'symlink':
        return this.#make(seq, c.obj, 'symlink', (d) => this.#b.symlink(d, c.obj.name, c.target, { mode: c.obj.mode }, owner(c.obj)))
      case 'mknod':
        return this.#make(seq, c.obj, c.type, (d) => this.#b.mknod(d, c.obj.name, c.type, c.rdev, { mode: c.obj.mode }, owner(c.obj)))
      case 'write': {
        if (c.data === null) throw new VfsError('EINVAL', `replica: write change ${seq.toString()} carries no data`)
        const local = this.#map.local(c.ref)
        if (local === undefined) return
        if (await this.#ifThere(this.#b.write(local, c.offset, c.data, 'unstable', REPLICA))) this.#written.set(local.id, local)
        return
      }
      case 'setattr': {
        const local = this.#map.local(c.ref)
        // Durable at flush, as a primary's SETATTR is before its reply.
        if (local !== undefined && (await this.#ifThere(this.#b.setattr(local, c.set)))) this.#touched.set(local.id, local)
        return
      }
      case 'remove':
      case 'rmdir':
        return this.#unlink(seq, c.op, c.dir, c.name, objects(c.times, [c.dir])[0])
      case 'rename':
        return this.#rename(seq, c)
      case 'link':
        return this.#link(seq, c.ref, c.dir, c.name)
    }
  }

  async #make(seq: bigint, obj: NewObject, type: FileType, make: (dir: FileRef) => Promise<Created>, exclusive = false): Promise<void> {
    const d = await this.#dir(seq, obj.dir)
    if (d === null) return
    // Made already (and perhaps renamed since).
    if (await this.#bound(obj.ref)) return
    // A name taken fails the make with EEXIST, handled below: no lookup first (an ENOENT raised and
    // caught per new object, on the standby's hot path). An EXCLUSIVE create is the exception: with
    // the same verifier it succeeds on the file there (RFC 1813 §3.3.8), which #adopt must judge.
    if (exclusive) {
      const there = await this.#find(d, obj.name)
      if (there !== null) {
        this.#adopt(obj.ref, there, type)
        return
      }
    }
    try {
      const made = await make(d)
      this.#map.bind(obj.ref, made.ref)
      // An EXCLUSIVE create takes no mode (RFC 1813 §3.3.8), and backends differ in defaults: keep the primary's.
      if (made.attr.mode !== obj.mode && type !== 'symlink') await this.#b.setattr(made.ref, { mode: obj.mode })
    } catch (err) {
      const again = err instanceof VfsError && err.code === 'EEXIST' ? await this.#find(d, obj.name) : null
      if (again === null) throw err
      this.#adopt(obj.ref, again, type)
    }
  }

  async #unlink(seq: bigint, op: 'remove' | 'rmdir', dir: FileRef, name: Buffer, victim: FileRef | undefined): Promise<void> {
    const d = await this.#dir(seq, dir)
    if (d === null) return
    const there = await this.#find(d, name)
    if (there === null) return
    const vid = this.#map.vidOf(there.ref)
    if (victim !== undefined && vid?.id !== victim.id) {
      // The name holds another vid's object, or the removed one lives on elsewhere: done before.
      if (vid !== undefined || (await this.#bound(victim))) return
    }
    // Bound to nothing and of the wrong kind: taken again later in the log.
    if (vid === undefined && (there.type === 'dir') !== (op === 'rmdir')) return
    await (op === 'remove' ? this.#b.remove(d, name) : this.#b.rmdir(d, name))
    if (vid !== undefined && !(await this.#exists(there.ref))) this.#map.unbind(vid)
  }

  async #rename(seq: bigint, c: Extract<Change, { op: 'rename' }>): Promise<void> {
    const fd = await this.#dir(seq, c.fromDir)
    const td = await this.#dir(seq, c.toDir)
    if (fd === null || td === null) return
    const [moved, replaced] = objects(c.times, [c.fromDir, c.toDir])
    const src = await this.#find(fd, c.fromName)
    const srcVid = src === null ? undefined : this.#map.vidOf(src.ref)
    if (src === null || (moved !== undefined && srcVid?.id !== moved.id && (srcVid !== undefined || (await this.#bound(moved))))) {
      // Done before (the moved object went on elsewhere, or away): the object it replaced must
      // not stay at the target, though a replayed create may have made it again.
      await this.#dropIfThere(td, c.toName, replaced)
      return
    }
    const target = await this.#find(td, c.toName)
    if (target !== null && sameRef(target.ref, src.ref)) {
      // Both names hold the moved object: a replayed LINK re-made the source name after the
      // rename. (A rename between two links of one object changes nothing and is not logged.)
      await this.#b.remove(fd, c.fromName)
      return
    }
    const targetVid = target === null ? undefined : this.#map.vidOf(target.ref)
    await this.#b.rename(fd, c.fromName, td, c.toName, REPLICA)
    if (srcVid === undefined && moved !== undefined) this.#map.bind(moved, src.ref)
    if (target !== null && targetVid !== undefined && !(await this.#exists(target.ref))) this.#map.unbind(targetVid)
  }

  async #link(seq: bigint, ref: FileRef, dir: FileRef, name: Buffer): Promise<void> {
    const local = this.#map.local(ref)
    if (local === undefined) return
    const d = await this.#dir(seq, dir)
    if (d === null) return
    const there = await this.#find(d, name)
    if (there !== null) {
      // (After a machine crash: the linked object was made again by a replayed create, the one here is the primary's.)
      if (!sameRef(there.ref, local) && this.#map.vidOf(there.ref) === undefined && (await this.#typeOf(local)) === there.type) this.#map.bind(ref, there.ref)
      return
    }
    if (await this.#ifThere(this.#b.link(local, d, name, REPLICA))) this.#touched.set(local.id, local)
  }

  /** Removes `name` from `dir` when it holds `vid`'s object. */
  async #dropIfThere(dir: FileRef, name: Buffer, vid: FileRef | undefined): Promise<void> {
    const local = vid === undefined ? undefined : this.#map.local(vid)
    const there = local === undefined ? null : await this.#find(dir, name)
    if (vid === undefined || local === undefined || there === null || !sameRef(there.ref, local)) return
    await (there.type === 'dir' ? this.#b.rmdir(dir, name) : this.#b.remove(dir, name))
    if (!(await this.#exists(local))) this.#map.unbind(vid)
  }

  /** Whether `vid` is bound to an object the backend still has. */
  async #bound(vid: FileRef): Promise<boolean> {
    const local = this.#map.local(vid)
    return local !== undefined && (await this.#exists(local))
  }

  /** Binds `vid` to what a name holds when that is bound to nothing and of the change's kind. */
  #adopt(vid: FileRef, there: Found, type: FileType): void {
    if (there.type === type && this.#map.vidOf(there.ref) === undefined) this.#map.bind(vid, there.ref)
  }

  async #typeOf(local: FileRef): Promise<FileType | null> {
    try {
      return (await this.#b.getattr(local)).type
    } catch (err) {
      if (isGone(err)) return null
      throw err
    }
  }

  /** The local directory of `vid`; null when it is gone here; an error when this node never knew it. */
  async #dir(seq: bigint, vid: FileRef): Promise<FileRef | null> {
    const local = this.#map.local(vid)
    // A replayed change in a directory removed later in the log, before the crash.
    if (local === undefined && (seq <= this.#replayUntil || seq <= this.#walkedUntil)) return null
    if (local === undefined) {
      throw new VfsError('ESTALE', `replica: change ${seq.toString()} names directory vid ${hex(vid)}, unknown on this node: a full resync is needed`)
    }
    if (!(await this.#exists(local))) return null
    // Every change that asks for its directory may change it: flush() makes it durable.
    this.#touched.set(local.id, local)
    return local
  }

  async #find(dir: FileRef, name: Buffer): Promise<Found | null> {
    try {
      const r = await this.#b.lookup(dir, name)
      return { ref: r.ref, type: r.attr.type }
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

/**
 * Who the standby's backend is told it acts for: root. The primary already judged the caller
 * (its permissions, and whether it may take the file system's reserved blocks, as root may on
 * the engine); a standby that judged again could refuse what the primary acknowledged, and the
 * copies would part. A standby's disk must be at least as large as the primary's.
 */
const REPLICA: Caller = { uid: 0, gid: 0 }

function owner(obj: NewObject): Owner {
  return { uid: obj.uid, gid: obj.gid, caller: REPLICA }
}

/**
 * The objects a REMOVE, RMDIR or RENAME names in its times besides its directories, in order:
 * the removed object; the moved object, then the one it replaced (replicating-vfs.ts).
 */
function objects(times: readonly ChangeTimes[], dirs: readonly FileRef[]): (FileRef | undefined)[] {
  return times.filter((t) => !dirs.some((d) => d.id === t.ref.id)).map((t) => t.ref)
}
