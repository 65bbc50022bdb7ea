/*
 * Blocked lock requests waiting for the server's GRANTED callback (RFC
 * 1813 §6.2: a LOCK answered NLM4_BLOCKED is granted later by a call to
 * the client's NLM). A waiter is registered before its LOCK goes out, as
 * the callback may overtake the BLOCKED reply. It is matched, as Linux's
 * nlmclnt_grant does, by handle, svid and range; a GRANTED nobody waits
 * for is refused (NLM4_DENIED), so the server does not count on a lock
 * nobody will use.
 */

export interface WaitKey {
  fh: Buffer
  svid: number
  l_offset: bigint
  l_len: bigint
}

/** How a wait ended: the GRANTED came, the poll interval passed (re-send the LOCK), the server restarted (re-send), or the caller gave up. */
export type WaitEnd = 'granted' | 'poll' | 'rebooted' | 'aborted'

export class Waiter {
  readonly key: WaitKey
  /** Which server it waits on (a LockClient), to wake it when that server restarts. */
  readonly server: object
  granted = false
  private wake: ((end: WaitEnd) => void) | null = null

  constructor(key: WaitKey, server: object) {
    this.key = key
    this.server = server
  }

  matches(k: WaitKey): boolean {
    return k.svid === this.key.svid && k.l_offset === this.key.l_offset && k.l_len === this.key.l_len && k.fh.equals(this.key.fh)
  }

  /** Until granted (at once if it already was), pollMs passed, a wake-up, or signal aborts. */
  wait(pollMs: number, signal?: AbortSignal): Promise<WaitEnd> {
    if (this.granted) return Promise.resolve('granted')
    if (signal?.aborted === true) return Promise.resolve('aborted')
    return new Promise(resolve => {
      const timer = setTimeout(() => { finish('poll') }, pollMs)
      const onAbort = (): void => { finish('aborted') }
      const finish = (end: WaitEnd): void => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.wake = null
        resolve(end)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.wake = finish
    })
  }

  grant(): void {
    this.granted = true
    this.wake?.('granted')
  }

  rebooted(): void {
    this.wake?.('rebooted')
  }
}

export class Waiters {
  private readonly set = new Set<Waiter>()

  add(key: WaitKey, server: object): Waiter {
    const w = new Waiter(key, server)
    this.set.add(w)
    return w
  }

  remove(w: Waiter): void {
    this.set.delete(w)
  }

  /** A GRANTED callback: true when a waiter took it. */
  grant(k: WaitKey): boolean {
    for (const w of this.set) {
      if (w.granted || !w.matches(k)) continue
      w.grant()
      return true
    }
    return false
  }

  /** The server restarted: every waiter on it re-sends its LOCK (the old queue is gone). */
  rebooted(server: object): void {
    for (const w of this.set) if (w.server === server) w.rebooted()
  }

  get size(): number {
    return this.set.size
  }
}
