/* Limits: past one, nolocks, and nothing was stored. Plus the churn check: memory follows what is held. */
import t from 'tap'
import { LockTable } from '../../locks/table.ts'
import type { LockTable as Table } from '../../locks/table.ts'
import { LOCK_EOF } from '../../locks/types.ts'
import { owner, req, span, spans } from './helpers.ts'

const A = owner('hostA')
const B = owner('hostB')
const now = { block: false }

/** Everything observable about the table, to show that a refused call changed nothing. */
function snapshot(lt: Table, files: readonly string[]): unknown {
  return { size: lt.size, clients: lt.clients().sort(), files: files.map((f) => [spans(lt.held(f)), lt.waiting(f).map(span), lt.shares(f).length]) }
}

t.test('maxPerClient counts held ranges, waiters and shares of one client', async (t) => {
  const lt = new LockTable({ maxPerClient: 3 })
  lt.lock(req('f', A, 0, 1), now)
  lt.lock(req('g', A, 2, 3), now)
  t.equal(lt.share({ file: 'g', owner: A, access: 1, deny: 0 }), 'granted')
  const before = snapshot(lt, ['f', 'g', 'h'])
  t.strictSame(lt.lock(req('h', A, 4, 5), now), { status: 'nolocks' })
  t.equal(lt.share({ file: 'h', owner: A, access: 1, deny: 0 }), 'nolocks')
  t.strictSame(snapshot(lt, ['f', 'g', 'h']), before, 'nothing stored, no file h')
  t.equal(lt.share({ file: 'g', owner: A, access: 3, deny: 2 }), 'granted', 'replacing its own share takes no room')
  t.equal(lt.lock(req('f', A, 1, 10), now).status, 'granted', 'a merge takes no room')
  t.equal(lt.lock(req('h', B, 0, 1), now).status, 'granted', 'another client has its own count')
  lt.unshare({ file: 'g', owner: A, access: 0, deny: 0 })
  lt.lock(req('x', B, 0, 1), now)
  t.equal(lt.lock(req('x', A, 0, 1), { block: true }).status, 'blocked', 'a waiter takes the third place')
  t.strictSame(lt.lock(req('x', owner('hostA', 2), 0, 1), { block: true }), { status: 'nolocks' }, 'a waiter counts too')
  t.equal(lt.size.waiting, 1)
})

t.test('maxPerFile counts all owners on the file; maxTotal all files', async (t) => {
  const lt = new LockTable({ maxPerFile: 2, maxTotal: 3 })
  lt.lock(req('f', A, 0, 1), now)
  lt.lock(req('f', B, 2, 3), now)
  t.strictSame(lt.lock(req('f', owner('hostC'), 4, 5), now), { status: 'nolocks' }, 'per file')
  t.equal(lt.share({ file: 'f', owner: owner('hostC'), access: 1, deny: 0 }), 'nolocks', 'a share counts on the file')
  lt.lock(req('g', A, 0, 1), now)
  const before = snapshot(lt, ['f', 'g', 'h'])
  t.strictSame(lt.lock(req('h', owner('hostC'), 0, 1), now), { status: 'nolocks' }, 'total')
  t.strictSame(snapshot(lt, ['f', 'g', 'h']), before)
  t.equal(lt.size.files, 2, 'h was never allocated')
})

t.test('maxWaitersPerFile', async (t) => {
  const lt = new LockTable({ maxWaitersPerFile: 2 })
  lt.lock(req('f', A, 0, 10), now)
  t.equal(lt.lock(req('f', B, 0, 10), { block: true }).status, 'blocked')
  t.equal(lt.lock(req('f', owner('hostC'), 0, 10), { block: true }).status, 'blocked')
  const before = snapshot(lt, ['f'])
  t.strictSame(lt.lock(req('f', owner('hostD'), 0, 10), { block: true }), { status: 'nolocks' })
  t.strictSame(snapshot(lt, ['f']), before)
  t.equal(lt.lock(req('f', B, 0, 10), { block: true }).status, 'blocked', 'a retransmission takes no room')
})

t.test('an upgrade in place that splits a range checks the limits', async (t) => {
  const lt = new LockTable({ maxPerClient: 2 })
  lt.lock(req('f', A, 0, 100, false), now)
  t.strictSame(lt.lock(req('f', A, 40, 60), now), { status: 'nolocks' }, 'would make three ranges')
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-100'], 'the shared lock is whole')
  t.equal(lt.lock(req('f', A, 0, 60), now).status, 'granted', 'an upgrade of one end makes two')
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 60-100', 'hostA/1 X 0-60'])
})

t.test('an unlock that splits a range checks the limits; one that trims does not', async (t) => {
  const lt = new LockTable({ maxPerClient: 1 })
  lt.lock(req('f', A, 0, LOCK_EOF), now)
  t.equal(lt.unlock('f', A, { start: 10n, end: 20n }), 'nolocks')
  t.strictSame(spans(lt.held('f')), ['hostA/1 X 0-EOF'], 'kept whole')
  t.equal(lt.unlock('f', A, { start: 10n, end: LOCK_EOF }), 'unlocked')
  t.strictSame(spans(lt.held('f')), ['hostA/1 X 0-10'])
})

t.test('a waiter whose grant would pass a limit stays queued; its retransmission gets nolocks', async (t) => {
  const lt = new LockTable({ maxPerClient: 2 })
  const granted: string[] = []
  const C = owner('hostC')
  lt.lock(req('f', A, 0, 30, false), now)
  lt.lock(req('f', C, 10, 20, false), now)
  t.equal(lt.lock(req('f', A, 10, 20), { block: true, onGranted: (l) => granted.push(span(l)) }).status, 'blocked')
  lt.unlock('f', C, { start: 0n, end: LOCK_EOF })
  t.strictSame(granted, [], 'granting would split A\'s shared lock in three')
  t.strictSame(lt.waiting('f').map(span), ['hostA/1 X 10-20'])
  t.strictSame(lt.lock(req('f', A, 10, 20), { block: true }), { status: 'nolocks' })
  t.equal(lt.cancel(req('f', A, 10, 20)), true)
  t.strictSame(lt.size, { held: 1, waiting: 0, shares: 0, files: 1 })
})

t.test("a waiter's own place counts as freed when it is granted", async (t) => {
  const lt = new LockTable({ maxPerClient: 3 })
  const granted: string[] = []
  const C = owner('hostC')
  lt.lock(req('f', A, 0, 30, false), now)
  lt.lock(req('f', C, 10, 20, false), now)
  lt.lock(req('f', A, 10, 20), { block: true, onGranted: (l) => granted.push(span(l)) })
  lt.unlock('f', C, { start: 0n, end: LOCK_EOF }) // A: 1 range + 1 waiter becomes 3 ranges
  t.strictSame(granted, ['hostA/1 X 10-20'])
  t.strictSame(lt.size, { held: 3, waiting: 0, shares: 0, files: 1 })
})

t.test('a retransmission that fits after room was freed elsewhere is granted and replaces its queued copy', async (t) => {
  const lt = new LockTable({ maxPerClient: 3 })
  const granted: string[] = []
  const C = owner('hostC')
  lt.lock(req('f', A, 0, 30, false), now)
  lt.lock(req('g', A, 0, 1), now)
  lt.lock(req('f', C, 10, 20, false), now)
  lt.lock(req('f', A, 10, 20), { block: true, onGranted: (l) => granted.push(span(l)) })
  lt.unlock('f', C, { start: 0n, end: LOCK_EOF })
  t.strictSame(granted, [], 'would make A 4')
  lt.unlock('g', A, { start: 0n, end: LOCK_EOF })
  t.strictSame(granted, [], 'an unlock on g does not look at f\'s queue')
  t.strictSame(lt.lock(req('f', A, 10, 20), { block: true }), { status: 'granted' })
  t.strictSame(granted, [], 'answered directly, not through the callback')
  t.strictSame(spans(lt.held('f')), ['hostA/1 S 0-10', 'hostA/1 S 20-30', 'hostA/1 X 10-20'])
  t.strictSame(lt.size, { held: 3, waiting: 0, shares: 0, files: 1 })
})

t.test('100k lock/unlock pairs on distinct files leave nothing behind', async (t) => {
  const lt = new LockTable()
  const o = owner('churn')
  let granted = 0
  for (let i = 0; i < 100_000; i++) {
    const file = `file-${i}`
    if (lt.lock(req(file, o, 0, LOCK_EOF), now).status === 'granted') granted++
    lt.unlock(file, o, { start: 0n, end: LOCK_EOF })
  }
  t.equal(granted, 100_000)
  t.strictSame(lt.size, { held: 0, waiting: 0, shares: 0, files: 0 })
  t.strictSame(lt.clients(), [])
})
