/* The held-lock rules of the table: conflicts, split, merge, upgrade, downgrade, EOF and 64-bit ranges. */
import t from 'tap'
import { LockTable } from '../../locks/table.ts'
import { LOCK_EOF } from '../../locks/types.ts'
import { owner, req, spans } from './helpers.ts'

const A = owner('hostA')
const B = owner('hostB')
const now = { block: false }

t.test('unlock in the middle splits; the hole is free for others, the rest is not', async (t) => {
  const lt = new LockTable()
  t.equal(lt.lock(req('f', A, 0, 100), now).status, 'granted')
  t.equal(lt.unlock('f', A, { start: 40n, end: 60n }), 'unlocked')
  t.strictSame(spans(lt.held('f')), ['hostA/1 X 0-40', 'hostA/1 X 60-100'])
  t.equal(lt.lock(req('f', B, 40, 60), now).status, 'granted', 'the hole')
  t.match(lt.lock(req('f', B, 39, 40), now), { status: 'denied', holder: { start: 0n, end: 40n, exclusive: true, owner: { client: 'hostA' } } })
  t.equal(lt.size.held, 3)
})

t.test('same-mode ranges of one owner merge when they overlap or touch; other modes stay apart', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10, false), now)
  lt.lock(req('f', A, 10, 20, false), now)
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-20'], 'adjacent')
  lt.lock(req('f', A, 15, 30, false), now)
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-30'], 'overlapping')
  lt.lock(req('f', A, 30, 40, true), now)
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-30', 'hostA/1 X 30-40'], 'adjacent of the other mode')
  lt.lock(req('f', B, 50, 60, false), now)
  lt.lock(req('f', A, 40, 50, true), now)
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-30', 'hostA/1 X 30-50', 'hostB/1 S 50-60'], 'never merged across owners')
  t.equal(lt.size.held, 3)
})

t.test('upgrade in place splits the shared lock; downgrade in place lets readers in', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 100, false), now)
  t.equal(lt.lock(req('f', A, 40, 60, true), now).status, 'granted', 'upgrade of the middle')
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-40', 'hostA/1 S 60-100', 'hostA/1 X 40-60'])
  t.equal(lt.lock(req('f', B, 0, 10, false), now).status, 'granted', 'readers still share the shared part')
  t.equal(lt.lock(req('f', B, 50, 51, false), now).status, 'denied', 'but not the upgraded part')
  t.equal(lt.lock(req('f', A, 0, 100, true), now).status, 'denied', 'an upgrade waits for the other reader like anyone')
  t.strictSame(spans(lt.held('f')).filter((s) => s.startsWith('hostA')), ['hostA/1 S 0-40', 'hostA/1 S 60-100', 'hostA/1 X 40-60'], 'a denied upgrade changes nothing')
  t.equal(lt.lock(req('f', A, 40, 60, false), now).status, 'granted', 'downgrade')
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-100', 'hostB/1 S 0-10'], 'merged back into one range')
  t.equal(lt.lock(req('f', B, 50, 51, false), now).status, 'granted')
})

t.test('ranges to end of file (LOCK_EOF) and offsets near 2^64', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 100, LOCK_EOF), now)
  t.equal(lt.lock(req('f', B, 0, 100), now).status, 'granted', 'below the EOF lock')
  t.equal(lt.lock(req('f', B, 1n << 63n, (1n << 63n) + 1n), now).status, 'denied', 'in the middle of the 64-bit space')
  t.match(lt.test(req('f', B, LOCK_EOF - 1n, LOCK_EOF)), { ok: false, holder: { start: 100n, end: LOCK_EOF } }, 'the last byte')
  lt.unlock('f', A, { start: 200n, end: LOCK_EOF })
  t.strictSame(spans(lt.held('f')), ['hostA/1 X 100-200', 'hostB/1 X 0-100'])
  t.equal(lt.lock(req('f', B, 200, LOCK_EOF), now).status, 'granted')

  const top = LOCK_EOF - 10n
  lt.lock(req('g', A, top, top + 5n), now)
  t.equal(lt.lock(req('g', B, top + 5n, LOCK_EOF), now).status, 'granted', 'adjacent at the top')
  t.match(lt.lock(req('g', B, top - 1n, top + 1n), now), { status: 'denied', holder: { start: top, end: top + 5n } }, 'exact 64-bit values in the holder')
  lt.lock(req('g', A, top + 4n, top + 5n, false), now)
  t.strictSame(spans(lt.held('g')), [`hostA/1 S ${String(top + 4n)}-${String(top + 5n)}`, `hostA/1 X ${String(top)}-${String(top + 4n)}`, `hostB/1 X ${String(top + 5n)}-EOF`])
})

t.test("one owner's locks never conflict; any other owner's do", async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10), now)
  t.equal(lt.lock(req('f', A, 5, 15), now).status, 'granted', 'the same owner again')
  t.strictSame(lt.test(req('f', A, 0, 15)), { ok: true }, 'TEST by the holder')
  t.equal(lt.test(req('f', owner('hostA', 2), 0, 1)).ok, false, 'same host, other svid')
  t.equal(lt.test(req('f', owner('hostA', 1, 'other'), 0, 1)).ok, false, 'same svid, other oh')
  t.equal(lt.test(req('f', owner('hostC', 1, 'hostA#1'), 0, 1)).ok, false, 'same svid and oh, other host')
  t.strictSame(lt.test(req('other', B, 0, 1)), { ok: true }, 'another file')
  lt.lock(req('s', A, 0, 10, false), now)
  t.strictSame(lt.test(req('s', B, 0, 10, false)), { ok: true }, 'shared with shared')
  t.equal(lt.test(req('s', B, 9, 10, true)).ok, false, 'exclusive against shared')
})

t.test('TEST names the conflicting lock with the lowest start', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', owner('hostC'), 50, 60), now)
  lt.lock(req('f', A, 30, 40), now)
  lt.lock(req('f', B, 10, 20, false), now)
  t.match(lt.test(req('f', owner('hostD'), 0, 100, false)), { ok: false, holder: { start: 30n, end: 40n, owner: { client: 'hostA' } } }, 'a shared lock is not in a reader\'s way')
  t.match(lt.test(req('f', owner('hostD'), 0, 100, true)), { ok: false, holder: { file: 'f', start: 10n, end: 20n, exclusive: false, owner: { client: 'hostB', svid: 1 } } })
})

t.test('the table keeps its own copy of the owner', async (t) => {
  const lt = new LockTable()
  const o = owner('hostA', 7, 'abc')
  lt.lock(req('f', o, 0, 10), now)
  o.oh.write('xyz')
  const [held] = lt.held('f')
  t.equal(held?.owner.oh.toString(), 'abc', 'a reused request buffer does not change the holder')
  t.strictSame(lt.test(req('f', owner('hostA', 7, 'abc'), 0, 10)), { ok: true }, 'still that owner')
})

t.test('queries, and files dropped once empty', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('g', A, 0, 10), now)
  lt.lock(req('g', B, 20, 30), now)
  t.strictSame(spans(lt.heldBy('hostA')), ['hostA/1 X 0-10', 'hostA/1 X 0-10'])
  t.strictSame(lt.heldBy('hostA').map((l) => l.file).sort(), ['f', 'g'])
  t.strictSame(lt.clients().sort(), ['hostA', 'hostB'])
  t.strictSame(lt.size, { held: 3, waiting: 0, shares: 0, files: 2 })
  t.equal(lt.unlock('f', A, { start: 0n, end: LOCK_EOF }), 'unlocked')
  t.equal(lt.unlock('nowhere', A, { start: 0n, end: 1n }), 'unlocked', 'unlocking what is not held')
  t.strictSame(lt.size, { held: 2, waiting: 0, shares: 0, files: 1 }, 'f is gone')
  t.strictSame(lt.held('f'), [])
  t.equal(lt.freeOwner(null, A), 1, 'freeOwner across files')
  t.equal(lt.freeOwner('g', B), 1, 'freeOwner on one file')
  t.strictSame(lt.size, { held: 0, waiting: 0, shares: 0, files: 0 })
  t.strictSame(lt.clients(), [])
})

t.test('bad ranges are errors, not statuses', async (t) => {
  const lt = new LockTable()
  t.throws(() => lt.lock(req('f', A, 10, 10), now), RangeError)
  t.throws(() => lt.test(req('f', A, 0, LOCK_EOF + 1n)), RangeError)
  t.throws(() => lt.unlock('f', A, { start: 5n, end: 1n }), RangeError)
  t.throws(() => lt.cancel(req('f', A, -1, 1)), RangeError)
  t.strictSame(lt.size, { held: 0, waiting: 0, shares: 0, files: 0 })
})
