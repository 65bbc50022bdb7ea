import { RpcError } from './errors.ts'

interface Waiter {
  resolve: (record: Buffer) => void
  reject: (err: Error) => void
}

/** Calls waiting for their reply, matched by xid; replies may come in any order (RFC 5531 §9). */
export class PendingCalls {
  private readonly waiters = new Map<number, Waiter>()

  get size(): number {
    return this.waiters.size
  }

  has(xid: number): boolean {
    return this.waiters.has(xid)
  }

  add(xid: number): Promise<Buffer> {
    if (this.waiters.has(xid)) return Promise.reject(new RpcError('RPC_BAD_REPLY', `xid ${xid} already in flight`, { xid }))
    return new Promise<Buffer>((resolve, reject) => {
      this.waiters.set(xid, { resolve, reject })
    })
  }

  /** Deliver a reply record; false when no call waits for its xid (late, duplicate or stray). */
  resolve(record: Buffer): boolean {
    if (record.length < 4) return false
    const xid = record.readUInt32BE(0)
    const w = this.waiters.get(xid)
    if (w === undefined) return false
    this.waiters.delete(xid)
    w.resolve(record)
    return true
  }

  reject(xid: number, err: Error): void {
    const w = this.waiters.get(xid)
    if (w === undefined) return
    this.waiters.delete(xid)
    w.reject(err)
  }

  rejectAll(err: Error): void {
    const all = [...this.waiters.values()]
    this.waiters.clear()
    for (const w of all) w.reject(err)
  }
}
