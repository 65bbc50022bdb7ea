/*
 * The brute-force model the property tests compare the table with: for each
 * file, each "cell" maps owners to their mode. Cells 0..63 are bytes; cell 64
 * stands for [64, 2^64), so ranges to LOCK_EOF are modelled too.
 */
import { LOCK_EOF, type HeldLock, type LockOwner, type LockRequest } from '../../locks/types.ts'

export const CELLS = 65

export const keyOf = (o: LockOwner): string => `${o.client}/${o.svid}`
export const toOffset = (cell: number): bigint => (cell === CELLS ? LOCK_EOF : BigInt(cell))
export const toCell = (offset: bigint): number => (offset === LOCK_EOF ? CELLS : Number(offset))

export class Model {
  private readonly files = new Map<string, Map<string, boolean>[]>()

  private cells(file: string): Map<string, boolean>[] {
    let c = this.files.get(file)
    if (c === undefined) this.files.set(file, (c = Array.from({ length: CELLS }, () => new Map<string, boolean>())))
    return c
  }

  /** Owners (other than the requester) holding a byte of the request in a conflicting mode. */
  blockers(r: LockRequest): Set<string> {
    const me = keyOf(r.owner)
    const out = new Set<string>()
    for (const cell of this.cells(r.file).slice(toCell(r.start), toCell(r.end))) {
      for (const [k, x] of cell) if (k !== me && (x || r.exclusive)) out.add(k)
    }
    return out
  }

  apply(r: LockRequest): void {
    for (const cell of this.cells(r.file).slice(toCell(r.start), toCell(r.end))) cell.set(keyOf(r.owner), r.exclusive)
  }

  remove(file: string, o: LockOwner, start: bigint, end: bigint): void {
    for (const cell of this.cells(file).slice(toCell(start), toCell(end))) cell.delete(keyOf(o))
  }

  drop(pick: (key: string) => boolean, file?: string): void {
    for (const [name, cells] of this.files) {
      if (file !== undefined && name !== file) continue
      for (const cell of cells) for (const k of [...cell.keys()]) if (pick(k)) cell.delete(k)
    }
  }

  /** Every (cell, owner, mode) of `file`, as sorted strings. */
  bytes(file: string): string[] {
    return this.cells(file).flatMap((cell, i) => [...cell].map(([k, x]) => `${i} ${k} ${x ? 'X' : 'S'}`)).sort()
  }
}

/** The table's held locks of a file, spelled as Model.bytes spells them. */
export function tableBytes(held: readonly HeldLock[]): string[] {
  const out: string[] = []
  for (const l of held) for (let i = toCell(l.start); i < toCell(l.end); i++) out.push(`${i} ${keyOf(l.owner)} ${l.exclusive ? 'X' : 'S'}`)
  return out.sort()
}

/** What is wrong with one owner's ranges, if anything: unsorted, overlapping, or touching in one mode (unmerged). */
export function shapeErrors(held: readonly HeldLock[]): string[] {
  const errors: string[] = []
  const byOwner = new Map<string, HeldLock[]>()
  for (const l of held) byOwner.set(keyOf(l.owner), [...(byOwner.get(keyOf(l.owner)) ?? []), l])
  for (const [k, ls] of byOwner) {
    for (let i = 1; i < ls.length; i++) {
      const a = ls[i - 1]!
      const b = ls[i]!
      if (a.end > b.start) errors.push(`${k}: [${String(a.start)},${String(a.end)}) then [${String(b.start)},${String(b.end)}) overlap or are unsorted`)
      else if (a.end === b.start && a.exclusive === b.exclusive) errors.push(`${k}: [${String(a.start)},${String(a.end)}) and [${String(b.start)},${String(b.end)}) not merged`)
    }
  }
  return errors
}

/**
 * Whether `to` is reachable from `from` in the waits-for graph (edges from
 * each owner to the owners it waits for): a request of `to` waiting for the
 * owners `from` would close a cycle.
 */
export function reaches(edges: ReadonlyMap<string, ReadonlySet<string>>, from: Iterable<string>, to: string): boolean {
  const seen = new Set<string>()
  const stack = [...from]
  for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
    if (n === to) return true
    if (seen.has(n)) continue
    seen.add(n)
    stack.push(...(edges.get(n) ?? []))
  }
  return false
}
