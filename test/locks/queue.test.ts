/* Blocking requests: FIFO grants after unlock, downgrade and FREE_ALL; cancel; retransmissions; deadlock. */
import t from 'tap'
import { LockTable } from '../../locks/table.ts'
import type { HeldLock } from '../../locks/types.ts'
import { owner, req, span, spans } from './helpers.ts'

const A = owner('hostA')
const B = owner('hostB')
const C = owner('hostC')
const D = owner('hostD')
const now = { block: false }

/** A blocking option whose grants are recorded in `log` as "name: span". */
function waits(log: string[], name: string) {
  return { block: true, onGranted: (l: HeldLock) => log.push(`${name}: ${span(l)}`) }
}

t.test('a blocked request is granted when the holder unlocks, then the next in line', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  t.strictSame(lt.lock(req('f', B, 0, 10), waits(log, 'B')), { status: 'blocked' })
  t.strictSame(lt.lock(req('f', C, 5, 6), waits(log, 'C')), { status: 'blocked' })
  t.strictSame(lt.waiting('f').map(span), ['hostB/1 X 0-10', 'hostC/1 X 5-6'], 'FIFO')
  t.equal(lt.size.waiting, 2)
  lt.unlock('f', A, { start: 0n, end: 10n })
  t.strictSame(log, ['B: hostB/1 X 0-10'], 'first in line first; C still conflicts with B')
  t.strictSame(spans(lt.held('f')), ['hostB/1 X 0-10'])
  t.strictSame(lt.waiting('f').map(span), ['hostC/1 X 5-6'])
  lt.unlock('f', B, { start: 0n, end: 10n })
  t.strictSame(log, ['B: hostB/1 X 0-10', 'C: hostC/1 X 5-6'])
  t.strictSame(lt.size, { held: 1, waiting: 0, shares: 0, files: 1 })
})

t.test('onGranted runs after the table holds the lock', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10), now)
  let seen: string[] = []
  let queued = -1
  lt.lock(req('f', B, 0, 10), { block: true, onGranted: () => { seen = spans(lt.held('f')); queued = lt.waiting('f').length } })
  lt.unlock('f', A, { start: 0n, end: 10n })
  t.strictSame(seen, ['hostB/1 X 0-10'])
  t.equal(queued, 0)
})

t.test('a waiter still in the way does not hold back a later one that fits', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 20, 30), now)
  lt.lock(req('f', C, 0, 10), waits(log, 'C'))
  lt.lock(req('f', D, 20, 30), waits(log, 'D'))
  lt.unlock('f', B, { start: 20n, end: 30n })
  t.strictSame(log, ['D: hostD/1 X 20-30'])
  t.strictSame(lt.waiting('f').map(span), ['hostC/1 X 0-10'])
})

t.test('readers queued behind a writer are all granted together', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 0, 10, false), waits(log, 'B'))
  lt.lock(req('f', C, 0, 10, false), waits(log, 'C'))
  lt.lock(req('f', D, 0, 10, true), waits(log, 'D'))
  lt.unlock('f', A, { start: 0n, end: 10n })
  t.strictSame(log, ['B: hostB/1 S 0-10', 'C: hostC/1 S 0-10'])
  t.strictSame(lt.waiting('f').map(span), ['hostD/1 X 0-10'])
})

t.test('a downgrade in place grants the readers waiting for those bytes', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 0, 5, false), waits(log, 'B'))
  t.equal(lt.lock(req('f', A, 0, 10, false), now).status, 'granted')
  t.strictSame(log, ['B: hostB/1 S 0-5'])
})

t.test('a granted waiter that downgrades frees bytes for one queued before it', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 10, 20), now)
  lt.lock(req('f', C, 0, 10, false), waits(log, 'C')) // waits for A's exclusive lock
  lt.lock(req('f', A, 0, 20, false), waits(log, 'A')) // A's downgrade waits for B
  lt.unlock('f', B, { start: 10n, end: 20n })
  t.strictSame(log, ['A: hostA/1 S 0-20', 'C: hostC/1 S 0-10'], 'C granted on the second look')
  t.strictSame(lt.waiting('f'), [])
})

t.test('FREE_ALL (freeClient) drops locks, waiters and shares of one client and grants the waiters behind it', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  const A2 = owner('hostA', 2)
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('g', A2, 0, 10, false), now)
  lt.lock(req('g', A2, 20, 30, true), now)
  lt.lock(req('h', D, 0, 10), now)
  lt.lock(req('h', A, 0, 10), waits(log, 'A'))
  t.equal(lt.share({ file: 'g', owner: A2, access: 1, deny: 0 }), 'granted')
  lt.lock(req('f', B, 0, 10), waits(log, 'B'))
  lt.lock(req('g', C, 0, 30), waits(log, 'C'))
  t.equal(lt.freeClient('hostA'), 5, '3 held ranges (f, and g split by mode), 1 queued request, 1 share')
  t.strictSame(log, ['B: hostB/1 X 0-10', 'C: hostC/1 X 0-30'])
  t.strictSame(lt.heldBy('hostA'), [])
  t.strictSame(lt.waiting('h'), [], "A's own waiter is gone, never granted")
  t.strictSame(lt.clients().sort(), ['hostB', 'hostC', 'hostD'])
  t.ok(lt.holds('hostB') && !lt.holds('hostA'), 'holds() agrees with clients()')
  t.strictSame(lt.size, { held: 3, waiting: 0, shares: 0, files: 3 })
  t.equal(lt.freeClient('hostA'), 0, 'again: nothing')
})

t.test('CANCEL withdraws only the equal request', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 0, 10), waits(log, 'B'))
  t.equal(lt.cancel(req('f', B, 0, 10, false)), false, 'other mode')
  t.equal(lt.cancel(req('f', B, 0, 9)), false, 'other range')
  t.equal(lt.cancel(req('f', owner('hostB', 2), 0, 10)), false, 'other owner')
  t.equal(lt.cancel(req('g', B, 0, 10)), false, 'other file')
  t.equal(lt.cancel(req('f', B, 0, 10)), true)
  t.equal(lt.cancel(req('f', B, 0, 10)), false, 'already withdrawn')
  lt.unlock('f', A, { start: 0n, end: 10n })
  t.strictSame(log, [], 'never granted')
  t.strictSame(lt.size, { held: 0, waiting: 0, shares: 0, files: 0 })
})

t.test('a retransmitted blocking request is queued once; the later callback wins', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  t.strictSame(lt.lock(req('f', B, 0, 10), waits(log, 'first')), { status: 'blocked' })
  t.strictSame(lt.lock(req('f', B, 0, 10), waits(log, 'second')), { status: 'blocked' })
  t.equal(lt.waiting('f').length, 1)
  t.equal(lt.lock(req('f', B, 0, 10), now).status, 'denied', 'a non-blocking copy is answered, not queued')
  lt.unlock('f', A, { start: 0n, end: 10n })
  t.strictSame(log, ['second: hostB/1 X 0-10'])
})

t.test('deadlock between two owners, on one file and across files', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 20, 30), now)
  t.equal(lt.lock(req('f', A, 20, 30), { block: true }).status, 'blocked')
  t.strictSame(lt.lock(req('f', B, 0, 10), { block: true }), { status: 'deadlock' })
  t.equal(lt.lock(req('f', B, 0, 10), now).status, 'denied', 'non-blocking: plain denied')
  t.equal(lt.waiting('f').length, 1, 'the refused request is not queued')

  const x = new LockTable()
  x.lock(req('f1', A, 0, 1), now)
  x.lock(req('f2', B, 0, 1), now)
  x.lock(req('f2', A, 0, 1), { block: true })
  t.strictSame(x.lock(req('f1', B, 0, 1), { block: true }), { status: 'deadlock' })
})

t.test('deadlock of two readers upgrading the same range', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10, false), now)
  lt.lock(req('f', B, 0, 10, false), now)
  t.equal(lt.lock(req('f', A, 0, 10), { block: true }).status, 'blocked')
  t.strictSame(lt.lock(req('f', B, 5, 6), { block: true }), { status: 'deadlock' })
})

t.test('deadlock of three owners; a chain without a cycle just waits', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 10, 20), now)
  lt.lock(req('g', C, 0, 10), now)
  t.equal(lt.lock(req('f', A, 10, 20), { block: true }).status, 'blocked', 'A waits for B')
  t.equal(lt.lock(req('g', B, 0, 10), { block: true }).status, 'blocked', 'B waits for C')
  t.equal(lt.lock(req('f', D, 0, 10), { block: true }).status, 'blocked', 'D waits for A: a chain D -> A -> B -> C')
  t.strictSame(lt.lock(req('f', C, 5, 6), { block: true }), { status: 'deadlock' }, 'C waiting for A closes C -> A -> B -> C')
  lt.unlock('g', C, { start: 0n, end: 10n })
  t.strictSame(spans(lt.held('g')), ['hostB/1 X 0-10'], 'B got it')
  t.strictSame(lt.size.waiting, 2, 'A and D still wait')
})

t.test('a cycle closed by a lock granted without waiting is found at the retransmission', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 1, false), now)
  lt.lock(req('f', B, 1, 2, false), now)
  t.equal(lt.lock(req('f', C, 1, 2), { block: true }).status, 'blocked', 'C waits for B')
  t.equal(lt.lock(req('f', B, 0, 1), { block: true }).status, 'blocked', 'B waits for A')
  t.equal(lt.lock(req('f', C, 0, 1, false), now).status, 'granted', 'C reads byte 0 beside A: now B waits for C too')
  t.strictSame(lt.lock(req('f', B, 0, 1), { block: true }), { status: 'deadlock' }, "B's retransmission")
  t.strictSame(lt.waiting('f').map(span), ['hostC/1 X 1-2'], "B's request left the queue")
})

t.test('a callback that throws does not cost the others theirs', async (t) => {
  const lt = new LockTable()
  const log: string[] = []
  lt.lock(req('f', A, 0, 10), now)
  lt.lock(req('f', B, 0, 5, false), { block: true, onGranted: () => { throw new Error('boom') } })
  lt.lock(req('f', C, 5, 10, false), waits(log, 'C'))
  t.throws(() => lt.unlock('f', A, { start: 0n, end: 10n }), { message: 'boom' })
  t.strictSame(log, ['C: hostC/1 S 5-10'])
  t.strictSame(spans(lt.held('f')), ['hostB/1 S 0-5', 'hostC/1 S 5-10'], 'the table is consistent')
})
