/*
 * The replicating layer hands each WRITE's bytes to the sink (ChangeSink.append's `data`, kept in
 * memory by the change log so the sender need not read the file back), except when an
 * overlapping WRITE of the same file ran beside it: then which of the two reached the file last
 * is not known, and the bytes shipped must be read from the file. Checked by replaying what a
 * sender would ship (the given bytes, else the range read now) against the primary's file, with a
 * backend whose WRITE replies are held so that two overlapping writes finish in the other order.
 */
import t from 'tap'
import type { Test } from 'tap'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import type { Change, ChangeSink, MapEdit } from '../../../vfs/replica/change.ts'
import { IdMap } from '../../../vfs/replica/id-map.ts'
import { ReplicatingVfs } from '../../../vfs/replica/replicating-vfs.ts'
import type { FileRef, Vfs } from '../../../vfs/types.ts'

class DataSink implements ChangeSink {
  readonly changes: { seq: bigint; change: Change; data: Buffer | undefined }[] = []

  append(change: Change, _edits?: readonly MapEdit[], data?: Buffer): bigint {
    const seq = BigInt(this.changes.length + 1)
    this.changes.push({ seq, change, data })
    return seq
  }

  durable(): Promise<void> {
    return Promise.resolve()
  }
}

interface Held {
  /** Resolves once the backend's write is done and its reply held. */
  entered: Promise<void>
  release: () => void
}

/** A memory backend whose next WRITEs, one per hold(), finish on the backend and then wait for release() before replying. */
function holding(): { vfs: Vfs; hold: () => Held } {
  const backend = new MemoryVfs()
  const queue: { entered: () => void; gate: Promise<void> }[] = []
  const vfs = new Proxy(backend, {
    get(target, prop, receiver) {
      if (prop === 'write') {
        return async (...args: Parameters<MemoryVfs['write']>) => {
          const g = queue.shift()
          const r = await target.write(...args)
          if (g !== undefined) {
            g.entered()
            await g.gate
          }
          return r
        }
      }
      const v: unknown = Reflect.get(target, prop, receiver)
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v
    },
  })
  return {
    vfs,
    hold: () => {
      let entered!: () => void
      let release!: () => void
      const e = new Promise<void>((r) => (entered = r))
      const gate = new Promise<void>((r) => (release = r))
      queue.push({ entered, gate })
      return { entered: e, release }
    },
  }
}

async function setup(t: Test): Promise<{ layer: ReplicatingVfs; sink: DataSink; hold: () => Held; file: FileRef }> {
  const { vfs, hold } = holding()
  const map = await IdMap.open({ dir: t.testdir(), root: vfs.root() })
  t.teardown(() => map.close())
  const sink = new DataSink()
  const layer = new ReplicatingVfs({ backend: vfs, map, sink })
  const file = (await layer.create(layer.root(), Buffer.from('f'), { how: 'guarded', attr: { mode: 0o644 } }, { uid: 0, gid: 0 })).ref
  return { layer, sink, hold, file }
}

/** What a standby ends with: the WRITEs applied in seq order, each with the bytes a sender ships. */
async function replay(layer: ReplicatingVfs, sink: DataSink, size: number): Promise<Buffer> {
  const out = Buffer.alloc(size)
  for (const { change, data } of sink.changes) {
    if (change.op !== 'write') continue
    const bytes = data ?? (await layer.readRange(change.ref, change.offset, change.length)) ?? Buffer.alloc(change.length)
    bytes.copy(out, Number(change.offset))
  }
  return out
}

const writes = (sink: DataSink) => sink.changes.filter((c) => c.change.op === 'write')

t.test('a WRITE alone over its range gives its bytes, a copy', async (t) => {
  const { layer, sink, file } = await setup(t)
  const a = Buffer.from('AAAA')
  await layer.write(file, 0n, a, 'unstable')
  await layer.write(file, 2n, Buffer.from('BBBB'), 'unstable')
  a.fill(0x7a)
  t.strictSame(writes(sink).map((w) => w.data?.toString()), ['AAAA', 'BBBB'], 'one after the other: both give their bytes')
  t.equal((await replay(layer, sink, 6)).toString(), 'AABBBB')
})

t.test('two concurrent WRITEs of separate ranges both give their bytes', async (t) => {
  const { layer, sink, hold, file } = await setup(t)
  const h1 = hold()
  const h2 = hold()
  const p1 = layer.write(file, 0n, Buffer.from('AAAA'), 'unstable')
  const p2 = layer.write(file, 4n, Buffer.from('CCCC'), 'unstable')
  await Promise.all([h1.entered, h2.entered])
  h2.release()
  await p2
  h1.release()
  await p1
  t.strictSame(writes(sink).map((w) => w.data?.toString()), ['CCCC', 'AAAA'])
})

t.test('two overlapping WRITEs that finish in the other order give no bytes: the file is read', async (t) => {
  const { layer, sink, hold, file } = await setup(t)
  const h1 = hold()
  const h2 = hold()
  const p1 = layer.write(file, 0n, Buffer.from('AAAA'), 'unstable')
  const p2 = layer.write(file, 2n, Buffer.from('BBBB'), 'unstable')
  // Both are on the file now (the second's bytes last); the second is logged first.
  await Promise.all([h1.entered, h2.entered])
  h2.release()
  await p2
  h1.release()
  await p1
  const primary = (await layer.read(file, 0n, 6)).data.toString()
  t.equal(primary, 'AABBBB', 'the primary holds the later write over the overlap')
  t.strictSame(writes(sink).map((w) => [w.change.op === 'write' ? w.change.offset : -1n, w.data]), [[2n, undefined], [0n, undefined]], 'neither gives its bytes')
  t.equal((await replay(layer, sink, 6)).toString(), primary, 'the standby ends with the primary\'s bytes')
  // After both, a write alone gives its bytes again.
  await layer.write(file, 1n, Buffer.from('Z'), 'unstable')
  t.equal(writes(sink).at(-1)?.data?.toString(), 'Z')
})
