/*
 * The replicating layer in a held scope (vfs/replica/held-changes.ts): over a
 * change log whose sync gate the test opens, a CREATE made inside collectHeld
 * returns once the change is appended to the local log, before the log's
 * flush and the standbys' acknowledgement, and names the change (export, seq)
 * with a promise of each; the same call outside a scope waits for both, as
 * every stable reply did before. A sync primary's NFS dispatch uses the scope
 * to build the reply while the change is on its way, so its cached copy can
 * ride in the change's APPEND (drc-ship.ts, carried-replies.ts).
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openReplica } from '../../../server/replication/primary.ts'
import { LocalVfs } from '../../../vfs/local/local-vfs.ts'
import { collectHeld } from '../../../vfs/replica/held-changes.ts'

const EXPORT = 3
const owner = { uid: 0, gid: 0 }
const file = { how: 'guarded', attr: { mode: 0o644 } } as const

t.test('inside a held scope a CREATE returns before the gate and names its change; outside it waits', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'tsnfs-held-'))
  const opened: { close(): Promise<void> }[] = []
  t.teardown(async () => {
    for (const o of opened) await o.close().catch(() => undefined)
    rmSync(base, { recursive: true, force: true })
  })
  // The sync gate: each seq asked for waits until the test acknowledges it.
  const acks = new Map<bigint, () => void>()
  const gate = (seq: bigint): Promise<void> => new Promise((resolve) => acks.set(seq, resolve))
  mkdirSync(join(base, 'data'))
  const backend = new LocalVfs({ root: join(base, 'data'), stateDir: join(base, 'local-state') })
  const parts = await openReplica(join(base, 'state'), EXPORT, backend, 1n, gate)
  opened.push(parts.vfs)
  const root = parts.vfs.root()

  let acked = false
  const { value, held } = await collectHeld(() => parts.vfs.create(root, Buffer.from('a'), file, owner))
  t.equal(value.attr.type, 'file', 'created')
  t.equal(held.length, 1, 'one change left to the caller')
  t.equal(held[0]?.exportId, EXPORT)
  t.equal(held[0]?.seq, parts.log.lastSeq(), 'the CREATE\'s change')
  const seq0 = held[0]?.seq ?? 1n
  // The log's write starts in an immediate, after the call's own continuations: not flushed yet.
  t.ok(parts.log.durableSeq() < seq0, 'returned before the local log\'s flush')
  await held[0]?.durableHere
  t.ok(parts.log.durableSeq() >= seq0, 'durableHere follows the local log\'s flush')
  const replicated = held[0]?.replicated.then(() => {
    acked = true
  })
  t.notOk(acked, 'returned before the standbys acknowledged it')
  acks.get(held[0]?.seq ?? 0n)?.()
  await replicated
  t.ok(acked, 'the promise follows the acknowledgement')

  let returned = false
  const outside = parts.vfs.create(root, Buffer.from('b'), file, owner).then(() => {
    returned = true
  })
  const seq = parts.log.lastSeq() + 1n
  // Wait for the call to reach the gate (its change appended and durable here), then check it is still waiting.
  const end = Date.now() + 20_000
  while (!acks.has(seq)) {
    if (Date.now() > end) throw new Error('the CREATE never reached the gate')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(returned, 'outside a scope the call waits for the gate')
  acks.get(seq)?.()
  await outside
  t.ok(returned, 'and returns once it opens')
})
