/*
 * vfs/replica/object-locks.ts: exclusive locks serialize, shared ones overlap, waiters are served
 * in arrival order (a writer is not starved), and lock sets taken in opposite orders by many
 * callers never deadlock.
 */
import t from 'tap'
import { fileLock, nameLock, ObjectLocks } from '../../../vfs/replica/object-locks.ts'
import { prng } from '../../helpers/prng.ts'

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))
const D = { id: 5n, gen: 1 }
const F = { id: 9n, gen: 1 }

t.test('exclusive serializes, shared overlaps, FIFO across modes', async (t) => {
  const locks = new ObjectLocks()
  const log: string[] = []
  const r1 = await locks.acquire([fileLock(F, 'shared')])
  const r2 = await locks.acquire([fileLock(F, 'shared')])
  const w = locks.acquire([fileLock(F, 'exclusive')]).then((rel) => {
    log.push('writer')
    return rel
  })
  const r3 = locks.acquire([fileLock(F, 'shared')]).then((rel) => {
    log.push('late reader')
    return rel
  })
  await tick()
  t.strictSame(log, [], 'the writer waits for readers; a later reader waits behind it')
  r1()
  await tick()
  t.strictSame(log, [])
  r2()
  const wr = await w
  await tick()
  t.strictSame(log, ['writer'])
  wr()
  ;(await r3)()
  t.strictSame(log, ['writer', 'late reader'])
  t.equal(locks.size, 0, 'idle locks are dropped')
})

t.test('a name lock is per (directory, name); releasing twice is harmless', async (t) => {
  const locks = new ObjectLocks()
  const a = await locks.acquire([nameLock(D, Buffer.from('a'))])
  const other = await locks.acquire([nameLock(D, Buffer.from('b'))])
  let got = false
  const again = locks.acquire([nameLock(D, Buffer.from('a'))]).then((r) => {
    got = true
    return r
  })
  await tick()
  t.notOk(got)
  a()
  a()
  ;(await again)()
  t.ok(got)
  other()
  t.equal(locks.size, 0)
})

t.test('rename-like pairs in opposite orders, with writers, never deadlock', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed}`)
  const rnd = prng(seed)
  const locks = new ObjectLocks()
  const names = ['a', 'b', 'c', 'd'].map((n) => Buffer.from(n))
  const inside = new Set<string>()
  let done = 0
  const work = Array.from({ length: 400 }, async () => {
    const x = names[Math.floor(rnd() * 4)]!
    const y = names[Math.floor(rnd() * 4)]!
    const reqs = [nameLock(D, x), nameLock({ id: 6n, gen: 1 }, y), fileLock(F, rnd() < 0.5 ? 'shared' : 'exclusive')]
    const release = await locks.acquire(rnd() < 0.5 ? reqs : [...reqs].reverse())
    for (const r of reqs.slice(0, 2)) {
      t.notOk(inside.has(r.key), 'an exclusive key is held once')
      inside.add(r.key)
    }
    await tick()
    for (const r of reqs.slice(0, 2)) inside.delete(r.key)
    release()
    done++
  })
  await Promise.all(work)
  t.equal(done, 400)
  t.equal(locks.size, 0)
})
