/*
 * Space and inode accounting across two servers (ClusterVfs instances with
 * their own pools on one database): GETATTR's used is the bytes of stored
 * slices a file's chunk records show, at most its size rounded up to 4 KiB;
 * FSSTAT's used bytes and files are counter rows that each server moves
 * (creates and attached bytes about once a second, releases in their own
 * transaction), so what A did is what B's FSSTAT says once A's deltas are
 * applied: at once after flushCounters, within about a second without.
 */
import t from 'tap'
import type { Test } from 'tap'
import { b, mkdir, mkfile, OWNER } from '../conformance-helpers.ts'
import type { FsStat, Vfs } from '../../../vfs/types.ts'
import { checkReferences } from '../../../vfs/cluster/data/fsck.ts'
import { PgStore } from '../../../vfs/cluster/clients/pg-store.ts'
import { TICK_MS } from '../../../vfs/cluster/meta/counter-delta.ts'
import { newCluster, dropTemplate } from './meta-helpers.ts'

t.teardown(dropTemplate)

const used = (s: FsStat): { bytes: bigint; files: bigint } => ({ bytes: s.totalBytes - s.freeBytes, files: s.totalFiles - s.freeFiles })

async function fsstatOf(t: Test, v: Vfs): Promise<{ bytes: bigint; files: bigint }> {
  const s = await v.fsstat(v.root())
  t.equal(s.freeBytes, s.availBytes, 'abytes = fbytes (no reserve)')
  t.equal(s.freeFiles, s.availFiles, 'afiles = ffiles')
  return used(s)
}

t.test('GETATTR used and FSSTAT counters, changes on A, FSSTAT on B', async (t) => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const a = (await c.server()).vfs
  const bs = await c.server()
  const bv = bs.vfs
  const root = a.root()
  t.strictSame(await fsstatOf(t, bv), { bytes: 0n, files: 1n }, 'a new file system: the root, no bytes')

  // f: 10000 bytes, then 3 far past them: the hole takes nothing.
  const f = await mkfile(a, root, 'f', 'x'.repeat(10_000))
  const far = await a.write(f, 1n << 30n, b('end'), 'file_sync')
  t.equal(far.after.used, 10_003n, 'used: the bytes stored, not the size (a hole takes no space)')
  // g: 5000 bytes written twice over: two slices until compaction, capped at the size rounded to 4 KiB.
  const g = await mkfile(a, root, 'g', 'y'.repeat(5000))
  t.equal((await a.getattr(g)).used, 5000n)
  const over = await a.write(g, 0n, b('z'.repeat(5000)), 'file_sync')
  t.equal(over.after.used, 8192n, 'an overwrite counts at most the size rounded up to 4 KiB')
  const cut = await a.setattr(g, { size: 100n })
  t.equal(cut.after.used, 4096n, 'a truncation cuts used to the new size rounded up')
  const grown = await a.setattr(g, { size: 100_000n })
  t.equal(grown.after.used, 4096n, 'growing adds a hole, not space')
  const d = await mkdir(a, root, 'd')
  t.equal((await a.getattr(d)).used, 4096n, 'a directory: one 4 KiB unit')
  const l = await a.symlink(root, b('l'), b('f'), {}, OWNER)
  t.equal(l.attr.used, 4096n, 'a symlink: its target length rounded up')
  // B reads the same rows (its own cache holds none of them yet).
  t.equal((await bv.getattr(f)).used, 10_003n, 'B reports the same used')

  await a.flushCounters()
  t.strictSame(await fsstatOf(t, bv), { bytes: 20_003n, files: 5n }, "B's FSSTAT: root, f, g, d, l; f's 10003 bytes and g's two slices")

  // Removals: a file's node and bytes go in its release, a directory's node at once.
  await a.remove(root, b('f'))
  await a.rmdir(root, b('d'))
  // Replacing an empty directory by rename removes its node too.
  await mkdir(a, root, 'e1')
  await mkdir(a, root, 'e2')
  await a.rename(root, b('e1'), root, b('e2'))
  await a.flushCounters()
  t.strictSame(await fsstatOf(t, bv), { bytes: 10_000n, files: 4n }, "B's FSSTAT after A's removals: root, g, l, e2")

  // B's changes and A's meet in the same rows.
  const h = await mkfile(bv, root, 'h', 'w'.repeat(1234))
  await a.remove(root, b('g'))
  await Promise.all([a.flushCounters(), bv.flushCounters()])
  t.strictSame(await fsstatOf(t, a), { bytes: 1234n, files: 4n }, "A's FSSTAT counts B's create and its own removal")
  t.equal((await a.getattr(h)).used, 1234n)

  const store = new PgStore(bs.db)
  t.strictSame((await checkReferences(bs.db, store)).problems, [], 'fsck: the counters agree with the rows')
})

t.test('without a flush, B sees A\'s create within the stated bound (one tick)', async (t) => {
  const c = await newCluster()
  t.teardown(() => c.close())
  const a = (await c.server()).vfs
  const bv = (await c.server()).vfs
  const before = await fsstatOf(t, bv)
  const t0 = performance.now()
  await mkfile(a, a.root(), 'x', 'abc')
  // Polled, not timed: the assertion is that the counters get there; the limit (10 ticks) only
  // keeps a lost delta from hanging the test. The lag seen is printed.
  let now = before
  while (performance.now() - t0 < 10 * TICK_MS) {
    now = used(await bv.fsstat(bv.root()))
    if (now.files === before.files + 1n && now.bytes === before.bytes + 3n) break
    await new Promise((r) => setTimeout(r, 50))
  }
  t.strictSame(now, { bytes: before.bytes + 3n, files: before.files + 1n }, `B counted A's file and bytes after ${(performance.now() - t0).toFixed(0)} ms (tick ${TICK_MS} ms)`)
})
