/* DOS share reservations: access against deny both ways, replacement by the same owner, independence from locks. */
import t from 'tap'
import { LockTable } from '../../locks/table.ts'
import type { LockOwner } from '../../locks/types.ts'
import { owner, req } from './helpers.ts'

const A = owner('hostA')
const B = owner('hostB')
const R = 1
const W = 2
const share = (file: string, o: LockOwner, access: number, deny: number) => ({ file, owner: o, access, deny })

t.test('access meets deny, either way round', async (t) => {
  const lt = new LockTable()
  t.equal(lt.share(share('f', A, R, W)), 'granted', 'A reads, denies writers')
  t.equal(lt.share(share('f', B, R, 0)), 'granted', 'another reader is fine')
  t.equal(lt.share(share('f', owner('hostC'), R | W, 0)), 'denied', 'a writer is denied by A')
  t.equal(lt.share(share('f', owner('hostC'), R, R)), 'denied', 'denying readers while A and B read')
  t.equal(lt.share(share('g', owner('hostC'), R | W, R | W)), 'granted', 'another file')
  t.equal(lt.share(share('g', A, 0, 0)), 'granted', 'no access and no deny meet nothing, even deny-all')
})

t.test('the same owner sharing again replaces its reservation', async (t) => {
  const lt = new LockTable()
  lt.share(share('f', A, R | W, W))
  t.equal(lt.share(share('f', B, W, 0)), 'denied')
  t.equal(lt.share(share('f', A, R, 0)), 'granted', 'its own reservation is not in its way')
  t.equal(lt.shares('f').length, 1)
  t.match(lt.shares('f')[0], { access: R, deny: 0 })
  t.equal(lt.share(share('f', B, W, 0)), 'granted', 'now allowed')
  t.equal(lt.size.shares, 2)
})

t.test('unshare and FREE_ALL drop reservations; the file goes with the last one', async (t) => {
  const lt = new LockTable()
  lt.share(share('f', A, R, W))
  lt.share(share('f', B, R, 0))
  lt.unshare(share('f', A, 0, 0))
  t.equal(lt.share(share('f', owner('hostC'), W, 0)), 'granted', 'modes of the UNSHARE do not matter')
  lt.unshare(share('f', A, R, W))
  t.equal(lt.size.shares, 2, 'unsharing again is harmless')
  t.equal(lt.freeClient('hostB'), 1)
  t.equal(lt.freeClient('hostC'), 1)
  t.strictSame(lt.size, { held: 0, waiting: 0, shares: 0, files: 0 })
})

t.test('shares and byte-range locks do not interact', async (t) => {
  const lt = new LockTable()
  lt.lock(req('f', A, 0, 10), { block: false })
  t.equal(lt.share(share('f', B, R | W, R | W)), 'granted')
  t.equal(lt.lock(req('f', owner('hostC'), 20, 30), { block: false }).status, 'granted')
  t.strictSame(lt.size, { held: 2, waiting: 0, shares: 1, files: 1 })
})

t.test('a mode outside the 2-bit masks is an error', async (t) => {
  const lt = new LockTable()
  t.throws(() => lt.share(share('f', A, 4, 0)), RangeError)
  t.throws(() => lt.share(share('f', A, 0, -1)), RangeError)
  t.throws(() => lt.share(share('f', A, 1.5, 0)), RangeError)
  t.equal(lt.size.files, 0)
})
