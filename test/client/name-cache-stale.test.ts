/*
 * A handle the server calls STALE (RFC 1813 §2.6: another client removed
 * the object): every name cached as that handle goes, in every directory,
 * and the handle's own names if it is a directory; so the next lookup of
 * such a name asks the server (issue 11).
 */
import t from 'tap'
import { AttrCache } from '../../client/cache/attr-cache.ts'
import { NameCache } from '../../client/cache/name-cache.ts'
import { ftype3 } from '../../xdr/generated/nfs3.ts'
import type { fattr3 } from '../../xdr/generated/nfs3.ts'
import { fattr } from '../helpers/fattr.ts'

const dirAttrs = (fileid: bigint): fattr3 => fattr({ type: ftype3.NF3DIR, mode: 0o755, nlink: 2, size: 4096n, used: 4096n, fileid })

t.test('STALE for a handle drops every name cached as it, and its own names; others stay', async t => {
  const c = new AttrCache({ acregminMs: 3000, acregmaxMs: 60_000, acdirminMs: 30_000, acdirmaxMs: 60_000, noac: false, maxEntries: 100, now: () => 0 })
  const counters = { hits: 0, misses: 0, negativeHits: 0, dirDrops: 0 }
  const n = new NameCache(c, { mode: 'all', maxDirs: 10, maxNamesPerDir: 10 }, counters)
  const d1 = Buffer.from('d1')
  const d2 = Buffer.from('d2')
  const gone = Buffer.from('gone')
  const other = Buffer.from('other')
  c.update(d1, dirAttrs(1n))
  c.update(d2, dirAttrs(2n))
  n.markComplete(d1)
  n.addPositive(d1, 'x', gone)
  n.addPositive(d2, 'y', gone)
  n.addPositive(d1, 'z', other)
  // In d2: a directory known complete (d1) holds no negative entries (name-cache.ts addNegative).
  n.addNegative(d2, 'absent')
  // gone's own names, though its attributes are not cached: the STALE speaks of the handle either way.
  n.addPositive(gone, 'inner', other)
  c.forget(gone)
  t.strictSame(n.lookup(d1, 'x'), { kind: 'miss' }, 'd1/x asks the server')
  t.strictSame(n.lookup(d2, 'y'), { kind: 'miss' }, 'd2/y (another name of it) asks the server')
  t.strictSame(n.lookup(d1, 'z'), { kind: 'positive', fh: other }, 'a name for another handle stays')
  t.strictSame(n.lookup(d2, 'absent'), { kind: 'negative' }, 'a negative entry stays')
  t.equal(n.isComplete(d1), false, 'd1 lost a name it knew: no longer complete')
  t.equal(n.peek(gone, 'inner'), undefined, "the stale directory's own names are gone")
  t.equal(n.size, 2, 'z and absent left')
})
