/* Range arithmetic: overlap, subtraction with splits, and the overlay that upgrades, downgrades and merges. */
import t from 'tap'
import { carve, checkRange, downgrades, overlaps, overlay, subtract, touches, type ModeRange } from '../../locks/ranges.ts'
import { LOCK_EOF } from '../../locks/types.ts'

const X = (start: number | bigint, end: number | bigint): ModeRange => ({ start: BigInt(start), end: BigInt(end), exclusive: true })
const S = (start: number | bigint, end: number | bigint): ModeRange => ({ start: BigInt(start), end: BigInt(end), exclusive: false })

t.test('overlaps and touches at the boundaries', async (t) => {
  t.ok(overlaps(X(0, 10), X(9, 20)), 'one common byte')
  t.notOk(overlaps(X(0, 10), X(10, 20)), 'end is exclusive')
  t.ok(touches(X(0, 10), X(10, 20)), 'adjacent ranges touch')
  t.notOk(touches(X(0, 10), X(11, 20)), 'a gap of one byte')
  t.ok(overlaps(X(100, LOCK_EOF), X(LOCK_EOF - 1n, LOCK_EOF)), 'the last byte of the 64-bit space')
})

t.test('subtract: none, one or two pieces', async (t) => {
  t.strictSame(subtract(X(0, 10), S(20, 30)), [X(0, 10)], 'disjoint: unchanged')
  t.strictSame(subtract(X(0, 10), S(0, 10)), [], 'covered: nothing left')
  t.strictSame(subtract(X(0, 10), S(5, 20)), [X(0, 5)], 'right part cut')
  t.strictSame(subtract(X(0, 10), S(0, 3)), [X(3, 10)], 'left part cut')
  t.strictSame(subtract(S(0, LOCK_EOF), X(4, 6)), [S(0, 4), S(6, LOCK_EOF)], 'a hole splits it in two, keeping the mode')
})

t.test('carve removes bytes across several ranges', async (t) => {
  t.strictSame(carve([X(0, 10), S(10, 20), X(30, 40)], { start: 5n, end: 35n }), [X(0, 5), X(35, 40)])
  t.strictSame(carve([X(0, 10)], { start: 20n, end: 30n }), [X(0, 10)], 'nothing held there')
})

t.test('overlay merges same-mode neighbours, upgrades and downgrades in place', async (t) => {
  t.strictSame(overlay([], S(0, 10)), [S(0, 10)], 'first lock')
  t.strictSame(overlay([S(0, 10)], S(10, 20)), [S(0, 20)], 'adjacent, same mode: merged')
  t.strictSame(overlay([S(0, 10), S(20, 30)], S(5, 25)), [S(0, 30)], 'bridges two ranges')
  t.strictSame(overlay([S(0, 10)], X(10, 20)), [S(0, 10), X(10, 20)], 'adjacent, other mode: kept apart')
  t.strictSame(overlay([S(0, 100)], X(40, 60)), [S(0, 40), X(40, 60), S(60, 100)], 'upgrade inside splits in three')
  t.strictSame(overlay([X(0, 100)], S(0, 100)), [S(0, 100)], 'downgrade of the whole range')
  t.strictSame(overlay([S(0, 10), X(10, 20), S(20, 30)], S(10, 20)), [S(0, 30)], 'downgrading the middle joins all three')
  t.strictSame(overlay([X(50, 60), X(0, 10)].sort((a, b) => Number(a.start - b.start)), X(20, 30)), [X(0, 10), X(20, 30), X(50, 60)], 'kept sorted')
  t.strictSame(overlay([X(0, 10)], X(5, LOCK_EOF)), [X(0, LOCK_EOF)], 'to end of file')
})

t.test('downgrades: only shared over exclusive', async (t) => {
  t.ok(downgrades([X(0, 10)], S(5, 6)))
  t.notOk(downgrades([X(0, 10)], X(5, 6)), 'exclusive over exclusive')
  t.notOk(downgrades([X(0, 10)], S(10, 20)), 'no common byte')
  t.notOk(downgrades([S(0, 10)], S(0, 10)), 'shared over shared')
})

t.test('checkRange accepts [0, 2^64] and rejects the rest', async (t) => {
  t.doesNotThrow(() => { checkRange({ start: 0n, end: LOCK_EOF }) })
  t.doesNotThrow(() => { checkRange({ start: LOCK_EOF - 1n, end: LOCK_EOF }) })
  for (const [start, end] of [[5n, 5n], [6n, 5n], [-1n, 5n], [0n, LOCK_EOF + 1n]] as const) {
    t.throws(() => { checkRange({ start, end }) }, RangeError, `[${String(start)}, ${String(end)})`)
  }
})
