/*
 * The map between the shared ids every node presents (vids) and this node's
 * backend objects, for one export (server/replication/README.md "One id
 * space"). A vid is `epoch << 40 | counter`: the epoch rises with every
 * takeover and only one node serves an epoch, so two primaries never hand
 * out the same vid. The root is vid {1, 1} on every node, bound at open to
 * the backend's root.
 *
 * Each local object has at most one vid (hard links share it). A backend may
 * reuse an id with a new generation: a reverse lookup checks the generation,
 * so a recycled id is not taken for the object that had it before.
 *
 * Persistence is id-map-file.ts: bind/unbind records, made durable by
 * flush(), which may also record the standby's applied position.
 *
 * On a primary the change log carries the binds and unbinds of each change
 * (MapEdit), so its replies need not wait for this map's fsync: logged(seq)
 * records a checkpoint (the map holds every edit of the log's records up to
 * seq) and at start server/replication/map-recovery.ts redoes the edits of
 * the records after it with recover().
 */
import { VfsError } from '../errors.ts'
import type { FileRef } from '../types.ts'
import type { MapEdit } from './change.ts'
import { MapFile } from './id-map-file.ts'
import type { MapRecord } from './id-map-format.ts'

export const ROOT_VID: FileRef = { id: 1n, gen: 1 }
export const COUNTER_BITS = 40n
const COUNTER_MAX = (1n << COUNTER_BITS) - 1n
/** Vids stay below 2^63 (some clients treat fileids as signed). */
export const MAX_EPOCH = 2 ** 23 - 1

export interface IdMapOptions {
  /** Where the map's files live (created if missing); one directory per export. */
  dir: string
  /** The backend's root, bound to ROOT_VID. */
  root: FileRef
  /** The epoch of a new map (default 1); an existing map keeps its own. */
  epoch?: number
  /** Log records before compaction is considered (tests make it small). */
  compactRecords?: number
}

interface Binding {
  vidGen: number
  local: FileRef
}

export class IdMap {
  readonly #byVid = new Map<bigint, Binding>()
  readonly #byLocal = new Map<bigint, { vid: bigint; localGen: number }>()
  #file: MapFile | null = null
  #epoch = 1
  #counter = 0n
  #position = 0n
  #requested = 0n
  /** The last change a standby applied as the map last recorded it (written through, maybe not synced). */
  #appliedHint = 0n
  /** The last checkpoint against a primary's change log (logged()). */
  #logged: { epoch: number; seq: bigint } | null = null

  private constructor() {}

  static async open(o: IdMapOptions): Promise<IdMap> {
    const map = new IdMap()
    const { file, records, oldVersion } = await MapFile.open(o.dir, {
      snapshot: () => map.#records(),
      live: () => map.#byVid.size,
      ...(o.compactRecords === undefined ? {} : { compactRecords: o.compactRecords }),
    })
    map.#file = file
    let seenState = false
    const counters: bigint[] = []
    for (const r of records) {
      if (r.kind === 'bind') {
        map.#set(r.vid, r.vidGen, { id: r.local, gen: r.localGen })
        counters.push(r.vid)
      } else if (r.kind === 'unbind') {
        map.#drop(r.vid)
      } else if (r.kind === 'applied') {
        if (r.seq > map.#appliedHint) map.#appliedHint = r.seq
      } else if (r.kind === 'logged') {
        map.#logged = { epoch: r.epoch, seq: r.seq }
      } else {
        seenState = true
        map.#epoch = r.epoch
        map.#counter = r.counter
        map.#position = r.position
        // The hints before a state record are covered by it, or were dropped by a rebase().
        map.#appliedHint = r.position
      }
    }
    if (!seenState) map.#epoch = o.epoch ?? 1
    // Vids bound after the last state record still count: the counter never goes back.
    for (const vid of counters) {
      if (vid >> COUNTER_BITS === BigInt(map.#epoch) && (vid & COUNTER_MAX) > map.#counter) map.#counter = vid & COUNTER_MAX
    }
    map.#requested = map.#position
    if (!seenState) map.#file.append(map.#stateRecord())
    map.bind(ROOT_VID, o.root)
    if (oldVersion) await map.#file.rewrite()
    await map.flush()
    return map
  }

  get epoch(): number {
    return this.#epoch
  }

  /** Bindings held (the root included). */
  get size(): number {
    return this.#byVid.size
  }

  root(): FileRef {
    return ROOT_VID
  }

  /** A new vid of this node's epoch, generation 1. */
  allocate(): FileRef {
    if (this.#counter >= COUNTER_MAX) throw new VfsError('ENOSPC', `id map: the ${this.#epoch} epoch's vids are used up`)
    this.#counter++
    return { id: (BigInt(this.#epoch) << COUNTER_BITS) | this.#counter, gen: 1 }
  }

  /** Raises the epoch (a takeover): later allocate() calls start a new range. */
  setEpoch(epoch: number): void {
    if (!Number.isInteger(epoch) || epoch <= this.#epoch || epoch > MAX_EPOCH) {
      throw new VfsError('EINVAL', `id map: epoch ${epoch} is not above ${this.#epoch} (or over ${MAX_EPOCH})`)
    }
    this.#epoch = epoch
    this.#counter = 0n
    this.#file?.append(this.#stateRecord())
  }

  /** Binds `vid` to `local`; either's previous binding is dropped (one vid per object, one object per vid). */
  bind(vid: FileRef, local: FileRef): void {
    const cur = this.#byVid.get(vid.id)
    if (cur?.vidGen === vid.gen && cur.local.id === local.id && cur.local.gen === local.gen) return
    this.#set(vid.id, vid.gen, local)
    this.#file?.append({ kind: 'bind', vid: vid.id, vidGen: vid.gen, local: local.id, localGen: local.gen })
  }

  unbind(vid: FileRef): void {
    if (vid.id === ROOT_VID.id) return
    if (this.#drop(vid.id)) this.#file?.append({ kind: 'unbind', vid: vid.id })
  }

  /**
   * Redoes an edit a primary's change log carried (map-recovery.ts, at start). Binds and unbinds
   * redone over a map that already has them change nothing; a vid of this epoch raises the counter,
   * so allocate() never hands it out again.
   */
  recover(edit: MapEdit): void {
    if (edit.kind === 'unbind') {
      this.unbind(edit.vid)
      return
    }
    this.bind(edit.vid, edit.local)
    const id = edit.vid.id
    // The bind record just appended keeps it raised after the next open (open() counts binds too).
    if (id >> COUNTER_BITS === BigInt(this.#epoch) && (id & COUNTER_MAX) > this.#counter) this.#counter = id & COUNTER_MAX
  }

  /**
   * Records a checkpoint: the map holds every edit of the change log's records up to `seq` (a
   * primary's; the log's numbering is its epoch's). Written with the next flush; never moves back
   * unless `back` (a log that lost an unsynced tail in a crash numbers its next records from
   * where it ends: the checkpoint must not claim them).
   */
  logged(seq: bigint, back = false): void {
    const cur = this.#logged
    if (cur !== null && cur.epoch === this.#epoch && (back ? seq === cur.seq : seq <= cur.seq)) return
    this.#logged = { epoch: this.#epoch, seq }
    this.#file?.append({ kind: 'logged', epoch: this.#epoch, seq })
  }

  /** The last checkpoint of this epoch's change log (null when none: redo every record the log holds). */
  loggedThrough(): bigint | null {
    const cur = this.#logged
    return cur !== null && cur.epoch === this.#epoch ? cur.seq : null
  }

  /** The local object of `vid`, or undefined when it is not bound (or its generation is not this one). */
  local(vid: FileRef): FileRef | undefined {
    const b = this.#byVid.get(vid.id)
    return b?.vidGen === vid.gen ? b.local : undefined
  }

  /** The vid of a local object (its generation checked), or undefined. */
  vidOf(local: FileRef): FileRef | undefined {
    const r = this.#byLocal.get(local.id)
    if (r?.localGen !== local.gen) return undefined
    const b = this.#byVid.get(r.vid)
    return b === undefined ? undefined : { id: r.vid, gen: b.vidGen }
  }

  /** The vid of a local id when no generation is at hand (a READDIR entry without a ref). */
  vidOfId(localId: bigint): FileRef | undefined {
    const r = this.#byLocal.get(localId)
    const b = r === undefined ? undefined : this.#byVid.get(r.vid)
    return r === undefined || b === undefined ? undefined : { id: r.vid, gen: b.vidGen }
  }

  /**
   * Makes every bind and unbind so far durable, and `position` too when given (a standby's
   * applied position, read back by position() after reopen). Concurrent calls share one fsync.
   */
  flush(position?: bigint): Promise<void> {
    if (this.#file === null) return Promise.reject(new VfsError('EIO', 'id map: closed'))
    if (position !== undefined && position !== this.#requested) {
      this.#requested = position
      this.#file.append(this.#stateRecord())
    }
    const want = this.#requested
    return this.#file.sync().then(() => {
      if (want > this.#position) this.#position = want
    })
  }

  /**
   * Writes the binds and unbinds so far to the file without syncing (a standby, after each
   * change): a process crash then leaves the map in step with the backend (id-map-file.ts).
   */
  writeThrough(applied?: bigint): void {
    if (applied !== undefined && applied > this.#appliedHint) {
      this.#appliedHint = applied
      this.#file?.append({ kind: 'applied', seq: applied })
    }
    this.#file?.push()
  }

  /**
   * The last change applied before the map was last closed or lost (from writeThrough(); never
   * below position()): changes up to it may already be in the backend.
   */
  appliedHint(): bigint {
    return this.#appliedHint > this.#position ? this.#appliedHint : this.#position
  }

  /**
   * Sets the applied position to `position`, down as well as up, durably (a standby at the end of
   * a full resync: its tree now matches the primary's at `position`, whatever it had applied
   * before). Hints of changes applied past it are dropped.
   */
  async rebase(position: bigint): Promise<void> {
    if (this.#file === null) throw new VfsError('EIO', 'id map: closed')
    this.#requested = position
    this.#appliedHint = position
    this.#file.append(this.#stateRecord())
    await this.#file.sync()
    this.#position = position
  }

  /** The last position made durable by flush(position) (0n before any). */
  position(): bigint {
    return this.#position
  }

  async close(): Promise<void> {
    const file = this.#file
    this.#file = null
    await file?.close()
  }

  #stateRecord(): MapRecord {
    return { kind: 'state', epoch: this.#epoch, counter: this.#counter, position: this.#requested }
  }

  #records(): MapRecord[] {
    const out: MapRecord[] = [this.#stateRecord()]
    for (const [vid, b] of this.#byVid) out.push({ kind: 'bind', vid, vidGen: b.vidGen, local: b.local.id, localGen: b.local.gen })
    if (this.#logged !== null) out.push({ kind: 'logged', ...this.#logged })
    return out
  }

  #set(vid: bigint, vidGen: number, local: FileRef): void {
    this.#drop(vid)
    const other = this.#byLocal.get(local.id)
    if (other !== undefined) this.#byVid.delete(other.vid)
    this.#byVid.set(vid, { vidGen, local: { id: local.id, gen: local.gen } })
    this.#byLocal.set(local.id, { vid, localGen: local.gen })
  }

  #drop(vid: bigint): boolean {
    const b = this.#byVid.get(vid)
    if (b === undefined) return false
    this.#byVid.delete(vid)
    if (this.#byLocal.get(b.local.id)?.vid === vid) this.#byLocal.delete(b.local.id)
    return true
  }
}
