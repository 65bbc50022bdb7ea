/*
 * A reply the duplicate request cache holds back (sync replication: onComplete's
 * promise, server/replication/drc-ship.ts) is not handed to a retransmission
 * before it may go: while held the entry stays in progress (the retransmission is
 * dropped, as one of a call still running), and once released it is replayed.
 * Otherwise a client could get, by retransmitting, a reply whose change the
 * standbys do not have yet.
 */
import t from 'tap'
import { DuplicateRequestCache } from '../../../server/rpc/drc.ts'

t.test('a held reply is in progress until released, then replayed', async (t) => {
  const drc = new DuplicateRequestCache({ max: 16, ttlMs: 60_000 })
  let release: () => void = () => undefined
  const seen: { key: string; reply: string }[] = []
  drc.onComplete = (key, reply) => {
    seen.push({ key, reply: reply.toString() })
    return new Promise<void>((resolve) => {
      release = resolve
    })
  }
  t.same(drc.begin('k'), { state: 'new' })
  const held = drc.complete('k', [Buffer.from('re'), Buffer.from('ply')])
  t.ok(held !== undefined, 'the hook holds the reply')
  t.same(seen, [{ key: 'k', reply: 'reply' }], 'the hook saw the whole reply at once')
  t.same(drc.begin('k'), { state: 'in-progress' }, 'a retransmission while held: in progress (dropped)')
  release()
  await held
  const again = drc.begin('k')
  t.equal(again.state, 'done', 'released: replayed')
  t.equal(again.state === 'done' ? again.reply.toString() : '', 'reply')
})

t.test('no hold: the entry is done at once', (t) => {
  const drc = new DuplicateRequestCache({ max: 16, ttlMs: 60_000 })
  drc.begin('k')
  t.equal(drc.complete('k', [Buffer.from('r')]), undefined)
  t.equal(drc.begin('k').state, 'done')
  t.end()
})
