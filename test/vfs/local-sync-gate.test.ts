/* The gate that lets WRITEs run on the event loop until one is slow. */
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { SyncGate } from '../../vfs/local/sync-gate.ts'
import { localDirs, openLocal } from './local-helpers.ts'

function busy(ms: number): number {
  const end = performance.now() + ms
  let spins = 0
  while (performance.now() < end) spins++
  return spins
}

t.test('open until a call is slow, then closed for the backoff, then open again', async (t) => {
  const gate = new SyncGate(5, 50)
  t.equal(gate.open, true)
  t.equal(gate.run(() => 42), 42, 'returns what the call returns')
  t.equal(gate.open, true, 'a fast call leaves it open')
  t.equal(gate.trips, 0)
  gate.run(() => busy(10))
  t.equal(gate.open, false, 'a slow call closes it')
  t.equal(gate.trips, 1)
  await new Promise(resolve => setTimeout(resolve, 80))
  t.equal(gate.open, true, 'open again after the backoff')
})

t.test('a call that throws is timed too, and its error passes through', (t) => {
  const gate = new SyncGate(5, 10_000)
  t.throws(() => gate.run(() => {
    busy(10)
    throw new Error('boom')
  }), { message: 'boom' })
  t.equal(gate.open, false)
  t.end()
})

t.test('slowMs 0: never open', (t) => {
  t.equal(new SyncGate(0, 10).open, false)
  t.end()
})

for (const syncWriteMs of [20, 0]) t.test(`WRITE stores the right bytes (syncWriteMs ${syncWriteMs})`, async (t) => {
  const dirs = localDirs()
  const vfs = openLocal(dirs, { syncWriteMs })
  t.teardown(() => vfs.close())
  const made = await vfs.create(vfs.root(), Buffer.from('w'), { how: 'unchecked', attr: {} }, { uid: 0, gid: 0 })
  const a = Buffer.alloc(300_000, 0x41)
  const b = Buffer.alloc(300_000, 0x42)
  const w1 = await vfs.write(made.ref, 0n, a, 'unstable')
  t.equal(w1.count, a.length)
  t.equal(w1.after.size, BigInt(a.length))
  // Writes overlap and extend; the file must hold exactly what a sequence of pwrites would.
  const w2 = await vfs.write(made.ref, 100_000n, b, 'file_sync')
  t.equal(w2.count, b.length)
  t.equal(w2.committed, 'file_sync')
  t.equal(w2.after.size, 400_000n)
  const want = Buffer.concat([a.subarray(0, 100_000), b])
  t.ok(fs.readFileSync(path.join(dirs.root, 'w')).equals(want))
  await t.rejects(vfs.write(made.ref, -1n, a, 'unstable'), { code: 'EINVAL' })
})
