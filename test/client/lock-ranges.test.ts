/*
 * The client's record of one owner's locks (client/lock/ranges.ts): NLM's
 * (offset, length) and back, and POSIX replace/split/merge checked against
 * a byte map on random operations (the seed is printed).
 */
import t from 'tap'
import { LOCK_EOF } from '../../locks/types.ts'
import { apply, subtract, toRange, toWire } from '../../client/lock/ranges.ts'
import type { HeldRange } from '../../client/lock/ranges.ts'

t.test('offset and length', async t => {
  t.same(toRange(10, 0), { start: 10n, end: LOCK_EOF }, 'length 0 runs to the end')
  t.same(toRange(10n, 5n), { start: 10n, end: 15n })
  t.same(toRange(0, LOCK_EOF), { start: 0n, end: LOCK_EOF }, 'the whole 64-bit space')
  t.throws(() => toRange(1, LOCK_EOF), { code: 'NLM_BAD_RANGE' })
  t.throws(() => toRange(-1, 1), { code: 'NLM_BAD_RANGE' })
  t.throws(() => toRange(LOCK_EOF, 0), { code: 'NLM_BAD_RANGE' })
  t.same(toWire({ start: 7n, end: LOCK_EOF }), { l_offset: 7n, l_len: 0n })
  t.same(toWire({ start: 7n, end: 9n }), { l_offset: 7n, l_len: 2n })
})

t.test('replace, split, merge', async t => {
  let r: HeldRange[] = []
  r = apply(r, { start: 0n, end: 10n, exclusive: false })
  r = apply(r, { start: 10n, end: 20n, exclusive: false })
  t.same(r, [{ start: 0n, end: 20n, exclusive: false }], 'touching ranges of one kind merge')
  r = apply(r, { start: 5n, end: 8n, exclusive: true })
  t.same(r, [{ start: 0n, end: 5n, exclusive: false }, { start: 5n, end: 8n, exclusive: true }, { start: 8n, end: 20n, exclusive: false }], 'an upgrade in the middle splits')
  r = subtract(r, { start: 6n, end: 15n })
  t.same(r, [{ start: 0n, end: 5n, exclusive: false }, { start: 5n, end: 6n, exclusive: true }, { start: 15n, end: 20n, exclusive: false }])
  r = apply(r, { start: 0n, end: LOCK_EOF, exclusive: true })
  t.same(r, [{ start: 0n, end: LOCK_EOF, exclusive: true }])
})

t.test('random operations against a byte map', async t => {
  const seed = Number(process.env.SEED ?? Date.now() % 1_000_000)
  t.comment(`seed ${String(seed)}`)
  let x = seed || 1
  const rnd = (n: number): number => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    return (x >>> 0) % n
  }
  const N = 64
  for (let round = 0; round < 200; round++) {
    let r: HeldRange[] = []
    const map: (boolean | null)[] = Array.from({ length: N }, () => null)
    for (let op = 0; op < 20; op++) {
      const s = rnd(N)
      const e = s + 1 + rnd(N - s)
      if (rnd(3) === 0) {
        r = subtract(r, { start: BigInt(s), end: BigInt(e) })
        for (let i = s; i < e; i++) map[i] = null
      } else {
        const ex = rnd(2) === 0
        r = apply(r, { start: BigInt(s), end: BigInt(e), exclusive: ex })
        for (let i = s; i < e; i++) map[i] = ex
      }
    }
    const got: (boolean | null)[] = Array.from({ length: N }, () => null)
    for (const h of r) for (let i = Number(h.start); i < Number(h.end); i++) got[i] = h.exclusive
    if (JSON.stringify(got) !== JSON.stringify(map)) return t.fail(`round ${String(round)}: ranges ${JSON.stringify(r, (_, v: unknown) => typeof v === 'bigint' ? String(v) : v)}`)
    for (let i = 1; i < r.length; i++) {
      const a = r[i - 1]
      const b = r[i]
      if (a !== undefined && b !== undefined && (a.end > b.start || (a.end === b.start && a.exclusive === b.exclusive))) return t.fail(`round ${String(round)}: not sorted, disjoint and merged`)
    }
  }
  t.pass('200 rounds agree with the byte map')
})
