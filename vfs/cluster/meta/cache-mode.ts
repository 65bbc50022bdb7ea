/*
 * How a server keeps what it caches of the metadata current, chosen by the
 * engine (issue 17 §3: "LISTEN/NOTIFY or a change sequence polled per
 * request").
 *
 * 'notify' (PostgreSQL): every change sends pg_notify in its own
 * transaction; each server LISTENs and drops what the notification names
 * (meta/cache.ts). Cached nodes and names answer GETATTR and LOOKUP with no
 * statement of their own: each waits for a barrier on the LISTEN connection
 * (one round trip there, shared by the requests that arrive together), so a
 * change committed anywhere before the request arrived has been heard
 * (ClusterVfs #current, clients/feed.ts).
 *
 * 'per-request' (CockroachDB: no LISTEN/NOTIFY, pg_notify is refused;
 * YugabyteDB: only from v2025.2.3, early access): nothing is sent or
 * listened for, and every GETATTR, LOOKUP, READDIR and READ reads the rows
 * it answers from. Checking a cached copy's version would cost the same
 * round trip as reading the row, so the row is read: GETATTR 1 round trip,
 * LOOKUP 1, READDIR 1 (the directory's row comes with the page), READ 1
 * plus the chunk rows. A change committed anywhere before a request starts is seen
 * by it: the latency is 0 after the commit.
 */
import type { SqlDialect } from '../sql.ts'

export type CacheMode = 'notify' | 'per-request'

/** PostgreSQL notifies; CockroachDB cannot; YugabyteDB is validated per request unless told it notifies. */
export function cacheModeOf(d: SqlDialect): CacheMode {
  return d === 'postgresql' ? 'notify' : 'per-request'
}
