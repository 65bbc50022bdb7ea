/*
 * A Vfs wrapper for fault tests: counts every operation that reaches the
 * backend (proof that a retransmitted call did not execute twice) and makes
 * chosen operations fail with a chosen errno (EIO, ENOSPC...), a given
 * number of times or until cleared.
 */
import { VfsError } from '../../vfs/errors.ts'
import type { Errno } from '../../vfs/errors.ts'
import type { Vfs } from '../../vfs/types.ts'

export type VfsOp = Exclude<keyof Vfs, 'root' | 'capabilities'>

export class FaultyVfs {
  readonly vfs: Vfs
  readonly inner: Vfs
  /** Calls per operation that reached the wrapper, failed or not. */
  readonly calls = new Map<string, number>()
  /** Faults injected per operation. */
  readonly injected = new Map<string, number>()
  private readonly faults = new Map<string, { errno: Errno; times: number }>()

  constructor(inner: Vfs) {
    this.inner = inner
    this.vfs = new Proxy(inner, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver)
        if (typeof value !== 'function') return value
        const fn = value as (...args: unknown[]) => unknown
        // Called on the real object: backends keep state in #private fields a Proxy cannot reach.
        if (typeof prop !== 'string' || prop === 'root' || prop === 'capabilities') return fn.bind(target)
        return (...args: unknown[]): unknown => {
          this.calls.set(prop, (this.calls.get(prop) ?? 0) + 1)
          const fault = this.faults.get(prop)
          if (fault !== undefined && fault.times > 0) {
            fault.times--
            this.injected.set(prop, (this.injected.get(prop) ?? 0) + 1)
            return Promise.reject(new VfsError(fault.errno, `injected ${fault.errno} in ${prop}`))
          }
          return fn.apply(target, args)
        }
      },
    })
  }

  /** Make `op` fail with `errno` the next `times` calls (default: until clear()). */
  fail(op: VfsOp, errno: Errno, times = Number.POSITIVE_INFINITY): void {
    this.faults.set(op, { errno, times })
  }

  clear(op?: VfsOp): void {
    if (op === undefined) this.faults.clear()
    else this.faults.delete(op)
  }

  count(op: VfsOp): number {
    return this.calls.get(op) ?? 0
  }
}
