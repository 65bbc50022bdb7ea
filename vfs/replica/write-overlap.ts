/*
 * The WRITEs running on the backend now, per object (vfs/replica/replicating-vfs.ts): a shared
 * file lock lets several run at once, and when two overlap, which reached the file last is not
 * known to the layer. A WRITE that overlapped none ran alone over its range, so the bytes it
 * wrote are the range's bytes as of its change: they may be shipped as they are.
 */

/** One WRITE in flight: its range, and whether an overlapping one ran beside it. */
export interface Writing {
  from: bigint
  to: bigint
  mixed: boolean
}

export class WriteOverlaps {
  readonly #writing = new Map<bigint, Writing[]>()

  /** Registers a WRITE of [offset, offset + length) of object `id`; it and any running one it overlaps become mixed. */
  start(id: bigint, offset: bigint, length: number): Writing {
    const me: Writing = { from: offset, to: offset + BigInt(length), mixed: false }
    const list = this.#writing.get(id)
    if (list === undefined) {
      this.#writing.set(id, [me])
      return me
    }
    for (const w of list) {
      if (w.from < me.to && me.from < w.to) w.mixed = me.mixed = true
    }
    list.push(me)
    return me
  }

  end(id: bigint, me: Writing): void {
    const list = this.#writing.get(id)
    if (list === undefined) return
    const i = list.indexOf(me)
    if (i >= 0) list.splice(i, 1)
    if (list.length === 0) this.#writing.delete(id)
  }
}
