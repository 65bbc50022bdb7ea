/*
 * vfs/replica/replicating-vfs.ts: a COMMIT asks for the log's durability while the backend's
 * flush runs, not after it (the reply waits for the slower of the two, not their sum). The
 * backend's commit here returns only once the sink has been asked for durable(seq); a layer
 * that waits for the backend first never asks, and the watchdog fails the COMMIT by name.
 */
import t from 'tap'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import { ReplicatingVfs } from '../../../vfs/replica/replicating-vfs.ts'
import { IdMap } from '../../../vfs/replica/id-map.ts'
import type { Attr, FileRef } from '../../../vfs/types.ts'
import { ArraySink } from './replica-helpers.ts'

const WATCHDOG_MS = 3000

/** A sink that tells when durable() is next called. */
class AskedSink extends ArraySink {
  #asked: (() => void) | null = null

  nextDurable(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#asked = resolve
    })
  }

  override durable(seq: bigint): Promise<void> {
    this.#asked?.()
    return super.durable(seq)
  }
}

/** A backend whose commit() finishes only once `gate` settles (or fails after the watchdog). */
class GatedCommit extends MemoryVfs {
  gate: Promise<void> = Promise.resolve()

  override async commit(f: FileRef): Promise<{ before: Attr; after: Attr }> {
    let timer: NodeJS.Timeout | undefined
    const watchdog = new Promise<never>((_, reject) => {
      timer = setTimeout(() => { reject(new Error('the backend commit ran alone: the log was not asked for durability meanwhile')) }, WATCHDOG_MS)
    })
    try {
      await Promise.race([this.gate, watchdog])
    } finally {
      clearTimeout(timer)
    }
    return super.commit(f)
  }
}

t.test('COMMIT: the log is asked for durability while the backend flushes', async (t) => {
  const backend = new GatedCommit()
  const map = await IdMap.open({ dir: t.testdir(), root: backend.root() })
  t.teardown(() => map.close())
  const sink = new AskedSink()
  const layer = new ReplicatingVfs({ backend, map, sink })
  const f = await layer.create(layer.root(), Buffer.from('f'), { how: 'guarded', attr: { mode: 0o600 } }, { uid: 0, gid: 0 })
  await layer.write(f.ref, 0n, Buffer.from('data'), 'unstable')
  backend.gate = sink.nextDurable()
  const r = await layer.commit(f.ref, 0n, 0)
  t.equal(r.after.fileid, f.ref.id, 'the reply in vids')
  t.strictSame(sink.durableAsked, [1n, 2n], 'the COMMIT waited for the WRITE logged before it')
})
