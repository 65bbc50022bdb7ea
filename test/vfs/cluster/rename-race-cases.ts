/*
 * Renames racing across two servers on one database (seeded; set
 * TSNFS_SEED to reproduce), checked against an oracle of the tree, and
 * loop prevention when A moves x under y while B moves y under x. Run by
 * rename-race.test.ts (PostgreSQL, change notifications) and
 * per-request.test.ts (no notifications: CockroachDB's mode), with the
 * server options each gives.
 */
import type { Test } from 'tap'
import { VfsError } from '../../../vfs/errors.ts'
import type { ClusterVfs } from '../../../vfs/cluster/cluster-vfs.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { b, mkdir, mkfile } from '../conformance-helpers.ts'
import { listAll } from '../conformance-readdir.ts'
import { newCluster, type ServerOptions } from './meta-helpers.ts'

/** xorshift32: small, seedable, good enough to pick names. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1
  return (n) => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s % n
  }
}

/** Every (dir index, name) → fileid below the listed directories, from a server's own view. */
async function treeOf(vfs: ClusterVfs, dirs: FileRef[]): Promise<Map<string, bigint>> {
  const out = new Map<string, bigint>()
  for (const [i, d] of dirs.entries()) {
    for (const e of await listAll(vfs, d, 50)) {
      const name = e.name.toString()
      if (name !== '.' && name !== '..') out.set(`${i}/${name}`, e.fileid)
    }
  }
  return out
}

/** Follow ".." from `d` to the root; throws if that takes more than `max` steps (a cycle). */
async function depthOf(vfs: ClusterVfs, d: FileRef, max = 50): Promise<number> {
  let at = d
  for (let depth = 0; depth < max; depth++) {
    if (at.id === vfs.root().id) return depth
    at = (await vfs.lookup(at, b('..'))).ref
  }
  throw new Error(`no way to the root from ${d.id}: a cycle`)
}

export function renameRaceCases(t: Test, opts: ServerOptions = {}): void {
  t.test('renames racing across servers match the oracle', async t => {
    const seed = Number(process.env['TSNFS_SEED'] ?? Date.now() % 1_000_000)
    t.comment(`seed ${seed}`)
    const rand = rng(seed)
    const c = await newCluster()
    t.teardown(() => c.close())
    const servers = [(await c.server(opts)).vfs, (await c.server(opts)).vfs]
    const a = servers[0]!
    const dirs: FileRef[] = []
    for (let i = 0; i < 4; i++) dirs.push(await mkdir(a, a.root(), `d${i}`))
    // Where each name is now, as the oracle knows it: "dir/name" -> fileid.
    const initial = new Map<string, bigint>()
    for (let i = 0; i < 24; i++) {
      const d = i % 4
      const f = await mkfile(a, dirs[d]!, `f${i}`)
      initial.set(`${d}/f${i}`, f.id)
    }
    // Each op moves a name that existed initially or was an earlier op's target to a new unique
    // name, from one of the two servers, several in flight at once. Every name is the source of at
    // most one successful rename (it is gone after, and targets are never reused), so the final tree
    // is the initial one with every successful op's chain followed: whatever order the database chose.
    const known = [...initial.keys()]
    const ops: { from: string; to: string; ok: boolean; code?: string }[] = []
    const OPS = 120
    let n = 0
    const worker = async (): Promise<void> => {
      while (n < OPS) {
        const k = n++
        const from = known[rand(known.length)]!
        const [fd, fname] = from.split('/') as [string, string]
        const td = rand(4)
        const to = `${td}/m${k}`
        const vfs = servers[rand(2)]!
        const op: { from: string; to: string; ok: boolean; code?: string } = { from, to, ok: false }
        ops.push(op)
        known.push(to)
        try {
          await vfs.rename(dirs[Number(fd)]!, b(fname), dirs[td]!, b(`m${k}`))
          op.ok = true
        } catch (err) {
          if (!(err instanceof VfsError) || err.code !== 'ENOENT') throw err
          op.code = err.code
        }
      }
    }
    await Promise.all([0, 1, 2, 3, 4, 5].map(() => worker()))
    const moved = new Map<string, string>()
    for (const op of ops) {
      if (!op.ok) continue
      t.notOk(moved.has(op.from), `${op.from} moved only once`)
      moved.set(op.from, op.to)
    }
    const expected = new Map<string, bigint>()
    for (const [name, id] of initial) {
      let at = name
      for (let next = moved.get(at); next !== undefined; next = moved.get(at)) at = next
      expected.set(at, id)
    }
    const ok = ops.filter(o => o.ok).length
    t.ok(ok > 24, `${ok} of ${OPS} renames succeeded, the rest found their source gone (ENOENT)`)
    const fresh = (await c.server(opts)).vfs
    const sorted = (m: Map<string, bigint>): [string, bigint][] => [...m].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    t.same(sorted(await treeOf(fresh, dirs)), sorted(expected), 'a third server lists exactly the oracle tree')
    for (const [i, vfs] of servers.entries()) {
      for (const [name, id] of expected) {
        const [d, base] = name.split('/') as [string, string]
        const found = await vfs.lookup(dirs[Number(d)]!, b(base))
        if (found.attr.fileid !== id) t.fail(`server ${i}: ${name} is ${found.attr.fileid}, expected ${id}`)
      }
    }
    for (const d of dirs) t.equal((await fresh.getattr(d)).nlink, 2, 'files only: every directory keeps 2 links')
  })

  t.test('A moves x under y while B moves y under x: one wins, no cycle', async t => {
    const seed = Number(process.env['TSNFS_SEED'] ?? Date.now() % 1_000_000)
    t.comment(`seed ${seed}`)
    const rand = rng(seed)
    const c = await newCluster()
    t.teardown(() => c.close())
    const a = (await c.server(opts)).vfs
    const bv = (await c.server(opts)).vfs
    const root = a.root()
    const ROUNDS = 8
    let aWon = 0
    let bWon = 0
    for (let r = 0; r < ROUNDS; r++) {
      const top = await mkdir(a, root, `r${r}`)
      const x = await mkdir(a, top, 'x')
      const y = await mkdir(a, top, 'y')
      // The targets: a random depth below each, so the walk up from the target is longer than one step.
      let xDeep = x
      for (let i = rand(3); i > 0; i--) xDeep = await mkdir(a, xDeep, `x${i}`)
      let yDeep = y
      for (let i = rand(3); i > 0; i--) yDeep = await mkdir(a, yDeep, `y${i}`)
      const [ra, rb] = await Promise.allSettled([
        a.rename(top, b('x'), yDeep, b('x')),
        bv.rename(top, b('y'), xDeep, b('y')),
      ])
      const won = [ra, rb].filter(p => p.status === 'fulfilled').length
      t.equal(won, 1, `round ${r}: exactly one rename succeeded`)
      const lost = [ra, rb].find(p => p.status === 'rejected')
      t.match(lost?.reason, { code: 'EINVAL' }, `round ${r}: the other is EINVAL (its target is now inside its source)`)
      if (ra.status === 'fulfilled') aWon++
      else bWon++
      const fresh = a
      t.ok(await depthOf(fresh, xDeep) > 0 && await depthOf(fresh, yDeep) > 0, `round ${r}: both reach the root`)
      t.ok(await depthOf(bv, xDeep) > 0 && await depthOf(bv, yDeep) > 0, `round ${r}: on B too`)
    }
    t.comment(`A won ${aWon}, B won ${bWon} of ${ROUNDS}`)
  })
}
