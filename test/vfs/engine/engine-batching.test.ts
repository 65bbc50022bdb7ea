/*
 * Group commit under a steady stream (issue 13 item 7): 32 callers, each creating and then
 * removing files one at a time and waiting for every reply (as an NFS client with 32 requests in
 * flight), share one commit per round of 32, not one per operation. engine-concurrency.test.ts
 * checks one burst; this checks that the batching holds round after round, for CREATE and REMOVE.
 */
import t from 'tap'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'

const owner = { uid: 0, gid: 0 }

class FlushCounter extends PassThroughDevice {
  flushes = 0
  override async flush(): Promise<void> {
    await this.inner.flush()
    this.flushes++
  }
}

t.test('32 callers in a steady stream: about one commit (two flushes) per 32 creates and per 32 removes', async (t) => {
  const mem = new MemoryDevice(64 * 2 ** 20)
  await makeFileSystem(mem, { zeroed: true })
  const dev = new FlushCounter(mem)
  const e = await openEngineOn(dev, { commitIntervalMs: 0 })
  try {
    const { ref: d } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
    const K = 32
    const N = 640
    const run = async (op: (i: number) => Promise<unknown>): Promise<number> => {
      const before = dev.flushes
      let next = 0
      await Promise.all(Array.from({ length: K }, async () => {
        while (next < N) await op(next++)
      }))
      return dev.flushes - before
    }
    const created = await run((i) => e.create(d, Buffer.from(`f${i}`), { how: 'guarded', attr: {} }, owner))
    const removed = await run((i) => e.remove(d, Buffer.from(`f${i}`)))
    t.comment(`${N} creates: ${created} flushes; ${N} removes: ${removed} flushes (K=${K})`)
    // Each commit flushes twice. N / K = 20 rounds: 40 flushes if every round is one commit; a
    // commit per operation (no batching) would be 2 * N. Room for a few split rounds, no more.
    const most = 2 * (N / K) * 1.5
    t.ok(created <= most, `${created} flushes for ${N} creates (at most ${most})`)
    t.ok(removed <= most, `${removed} flushes for ${N} removes (at most ${most})`)
    const left = await e.readdir(d, 0n, 100)
    t.equal(left.entries.length, 2, 'every file removed again')
  } finally {
    await e.close()
  }
})
