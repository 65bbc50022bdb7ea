/*
 * Deadlock detection on the waits-for graph of owners: an edge X -> Y when a
 * queued request of X conflicts with a lock Y holds (waiters never wait on
 * other waiters: a request is granted as soon as no holder is in its way).
 * Queueing a request of owner O behind holders H closes a cycle exactly when
 * O is reachable from one of H, so that is what the table asks before queueing
 * (NLM4_DEADLCK; Linux answers such an F_SETLKW with EDEADLK the same way).
 */

/**
 * Whether `owner` is reachable from `holders` along `waitsFor` edges. Each
 * owner is expanded once, so the walk is bounded by the queued requests.
 */
export function closesCycle(owner: string, holders: Iterable<string>, waitsFor: (o: string) => Iterable<string>): boolean {
  const seen = new Set<string>()
  const stack = [...holders]
  for (let o = stack.pop(); o !== undefined; o = stack.pop()) {
    if (o === owner) return true
    if (seen.has(o)) continue
    seen.add(o)
    for (const next of waitsFor(o)) if (!seen.has(next)) stack.push(next)
  }
  return false
}
