/*
 * How much the table holds, in total and per client and file, so that every
 * limit is checked before anything is allocated, and FREE_ALL (or a reboot
 * notice) finds a client's files without walking the whole table.
 */
import type { FileState } from './file-state.ts'
import type { LockLimits } from './types.ts'

/** A change in held ranges, queued requests and shares; omitted fields are 0. */
export interface Delta {
  readonly held?: number
  readonly waiting?: number
  readonly shares?: number
}

interface ClientCount {
  total: number
  /** Entries per file, deleted at 0: the map stays as small as what the client holds. */
  readonly files: Map<string, number>
}

export class Counts {
  held = 0
  waiting = 0
  shares = 0
  private readonly clients = new Map<string, ClientCount>()

  get total(): number {
    return this.held + this.waiting + this.shares
  }

  ofClient(client: string): number {
    return this.clients.get(client)?.total ?? 0
  }

  /**
   * Whether `d` fits the limits for `client` on `file` (undefined: not yet in
   * the table). Only what grows is checked: a change that shrinks the count
   * (a merge, an unlock) is always allowed, even above a lowered limit.
   */
  room(limits: LockLimits, client: string, file: FileState | undefined, d: Delta): boolean {
    const held = d.held ?? 0
    const waiting = d.waiting ?? 0
    const shares = d.shares ?? 0
    const n = held + waiting + shares
    if (n > 0 && (this.total + n > limits.maxTotal || this.ofClient(client) + n > limits.maxPerClient)) return false
    const inFile = (file?.held ?? 0) + (file?.shares.size ?? 0)
    if (held + shares > 0 && inFile + held + shares > limits.maxPerFile) return false
    if (waiting > 0 && (file?.waiters.length ?? 0) + waiting > limits.maxWaitersPerFile) return false
    return true
  }

  add(client: string, file: string, d: Delta): void {
    const held = d.held ?? 0
    const waiting = d.waiting ?? 0
    const shares = d.shares ?? 0
    const n = held + waiting + shares
    this.held += held
    this.waiting += waiting
    this.shares += shares
    if (n === 0) return
    let c = this.clients.get(client)
    if (c === undefined) this.clients.set(client, (c = { total: 0, files: new Map() }))
    c.total += n
    const inFile = (c.files.get(file) ?? 0) + n
    if (inFile === 0) c.files.delete(file)
    else c.files.set(file, inFile)
    if (c.total === 0) this.clients.delete(client)
  }

  filesOf(client: string): string[] {
    return [...(this.clients.get(client)?.files.keys() ?? [])]
  }

  names(): string[] {
    return [...this.clients.keys()]
  }

  has(client: string): boolean {
    return this.clients.has(client)
  }
}
