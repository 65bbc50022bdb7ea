/*
 * What the daemon remembers of the entries the kernel holds
 * (client/fuse/kernel-entries.ts): a LOOKUP for a positive entry still
 * valid is a forced revalidation; negative entries are listed per
 * directory until they expire or the name is made.
 */
import t from 'tap'
import { KernelEntries } from '../../client/fuse/kernel-entries.ts'

t.test('positive entries: forced while valid, not after their timeout or once dropped', async t => {
  const now = { t: 1000 }
  const k = new KernelEntries(() => now.t)
  k.given(1n, 'a', 500)
  k.given(1n, 'b', 0)
  t.equal(k.forced(1n, 'a'), true, 'a LOOKUP of a held valid entry')
  t.equal(k.forced(2n, 'a'), false, 'another directory')
  t.equal(k.forced(1n, 'b'), false, 'an entry given without validity is not held')
  now.t = 1500
  t.equal(k.forced(1n, 'a'), false, 'expired: the kernel asks on its own')
  k.given(1n, 'a', 500)
  k.drop(1n, 'a')
  t.equal(k.forced(1n, 'a'), false, 'removed or renamed through this mount')
})

t.test('negative entries: listed while valid, taken once, forgotten when the name is made', async t => {
  const now = { t: 0 }
  const k = new KernelEntries(() => now.t)
  t.equal(k.hasAbsent(1n), false)
  k.givenAbsent(1n, 'x', 100)
  k.givenAbsent(1n, 'y', 300)
  k.givenAbsent(1n, 'made', 300)
  k.given(1n, 'made', 300)
  t.equal(k.forced(1n, 'made'), true, 'made since: now a positive entry')
  t.equal(k.hasAbsent(1n), true)
  now.t = 200
  t.strictSame(k.takeAbsent(1n), ['y'], 'x expired, made was made')
  t.equal(k.hasAbsent(1n), false, 'taken')
  t.strictSame(k.takeAbsent(1n), [])
  k.givenAbsent(2n, 'z', 50)
  now.t = 300
  t.equal(k.hasAbsent(2n), false, 'all expired')
})

t.test('a directory whose mode changed through the kernel: its entry is no longer held, and only that one', async t => {
  const now = { t: 0 }
  const k = new KernelEntries(() => now.t)
  k.given(1n, 'd', 1000, 7n)
  k.given(1n, 'e', 1000, 8n)
  k.expired(7n)
  t.equal(k.forced(1n, 'd'), false, 'the kernel dropped d: its LOOKUP is its own')
  t.equal(k.forced(1n, 'e'), true, 'e still held')
  k.given(2n, 'd2', 1000, 7n)
  k.given(1n, 'd', 1000, 9n)
  k.expired(7n)
  t.equal(k.forced(2n, 'd2'), false, 'the node under its latest name')
  t.equal(k.forced(1n, 'd'), true, 'another node given under the old name is kept')
  k.expired(42n)
  t.equal(k.forced(1n, 'e'), true, 'an unknown node changes nothing')
})

t.test('a name removed or renamed onto through this mount is no longer held as absent', async t => {
  const now = { t: 0 }
  const k = new KernelEntries(() => now.t)
  k.givenAbsent(1n, 'f', 1000)
  k.givenAbsent(1n, 'g', 1000)
  k.drop(1n, 'f')
  t.strictSame(k.takeAbsent(1n), ['g'], 'f dropped, g still absent')
  k.givenAbsent(2n, 'h', 1000)
  k.drop(2n, 'h')
  t.equal(k.hasAbsent(2n), false, 'nothing left absent in 2')
})
