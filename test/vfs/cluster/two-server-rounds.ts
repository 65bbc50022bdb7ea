/*
 * Rounds of two servers changing one file (its mode) and one directory (a new name from each) at
 * the same moment, then both asked for the file's and the directory's attributes and both new
 * names: every answer must be what the database holds. `watch` is called before each round's
 * changes and gives what to await after them, before the questions: until each server heard the
 * other's notifications (notify mode), or nothing at all (per-request mode). Seeded; the seed is printed. Returns the number of
 * stale answers, each also a failed assertion naming the round and the server.
 */
import type { Test } from 'tap'
import type { FileRef } from '../../../vfs/types.ts'
import { b, OWNER } from '../conformance-helpers.ts'
import type { Server } from './meta-helpers.ts'

export async function twoServerRounds(
  t: Test, A: Server, B: Server, d: FileRef, f: FileRef, rounds: number, watch: () => () => Promise<void>,
): Promise<number> {
  const seed = Number(process.env['TSNFS_SEED'] ?? Date.now() % 1_000_000)
  t.comment(`seed ${seed}`)
  let s = seed >>> 0 || 1
  const rand = (n: number): number => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0
    return s % n
  }
  let stale = 0
  for (let i = 0; i < rounds; i++) {
    const settled = watch()
    // Each server changes the file and the directory's entries at the same moment.
    await Promise.all([
      A.vfs.setattr(f, { mode: 0o600 | rand(0o100) }),
      B.vfs.setattr(f, { mode: 0o600 | rand(0o100) }),
      A.vfs.create(d, b(`a${i}`), { how: 'guarded', attr: {} }, OWNER),
      B.vfs.create(d, b(`b${i}`), { how: 'guarded', attr: {} }, OWNER),
    ])
    await settled()
    const truth = await A.db.query('SELECT mode FROM tsnfs_node WHERE inode = $1', [f.id])
    const dirTruth = await A.db.query('SELECT mtime_sec, mtime_nsec FROM tsnfs_node WHERE inode = $1', [d.id])
    for (const [name, srv] of [['A', A], ['B', B]] as const) {
      const fa = await srv.vfs.getattr(f)
      const da = await srv.vfs.getattr(d)
      const ok = fa.mode === Number(truth.rows[0]?.['mode']) &&
        da.mtime.sec === Number(dirTruth.rows[0]?.['mtime_sec']) && da.mtime.nsec === Number(dirTruth.rows[0]?.['mtime_nsec'])
      if (!ok) {
        stale++
        t.fail(`round ${i}: server ${name} answered from a stale copy (mode ${fa.mode.toString(8)}, db ${Number(truth.rows[0]?.['mode']).toString(8)})`)
      }
      // Both new names are found, whichever server made them.
      for (const n of [`a${i}`, `b${i}`]) await srv.vfs.lookup(d, b(n))
    }
  }
  return stale
}
