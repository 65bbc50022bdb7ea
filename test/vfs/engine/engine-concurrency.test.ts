/*
 * Concurrent NFS-shaped calls on one engine: writes queue behind each other, reads of one file and
 * lookups in one directory run side by side. Found by nfsprobe: concurrent reads of one file
 * walked its extent tree at once and read other blocks' data.
 */
import t from 'tap'
import path from 'node:path'
import { ImageFile } from '../../../vfs/engine/blockdev/image-file.ts'
import { openEngine } from '../../../vfs/engine/fs/assemble.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { Vfs } from '../../../vfs/types.ts'
import { rng } from './engine-helpers.ts'
import { scratch } from './format-helpers.ts'

const owner = { uid: 0, gid: 0 }

t.test('1024 shuffled 4 KiB writes (64 in flight), then 64 concurrent 64 KiB reads and 600 concurrent lookups', async (t) => {
  const seed = Number(process.env.ENGINE_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed}`)
  const r = rng(seed)
  const image = path.join(scratch(t, 'engine-conc'), 'e.img')
  const dev = await ImageFile.create(image, 128 * 2 ** 20)
  await makeFileSystem(dev, { zeroed: true })
  await dev.close()
  const e = await openEngine(image)
  t.teardown(() => e.close())
  const { ref } = await e.create(e.root(), Buffer.from('f'), { how: 'unchecked', attr: {} }, owner)
  const N = 1024
  const order = Array.from({ length: N }, (_, i) => i)
  for (let i = N - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1))
    ;[order[i], order[j]] = [order[j] as number, order[i] as number]
  }
  const block = (i: number): Buffer => Buffer.alloc(4096, (i * 7 + 1) & 0xff)
  let next = 0
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < N) {
      const i = order[next++] as number
      await e.write(ref, BigInt(i * 4096), block(i), 'unstable')
    }
  }))
  await (e as Vfs).commit(ref, 0n, 0)
  const parts = await Promise.all(Array.from({ length: 64 }, (_, k) => e.read(ref, BigInt(k * 65536), 65536)))
  let bad = -1
  for (let i = 0; i < N && bad < 0; i++) {
    const got = parts[Math.floor(i / 16)]?.data.subarray((i % 16) * 4096, (i % 16 + 1) * 4096)
    if (got === undefined || !got.equals(block(i))) bad = i
  }
  t.equal(bad, -1, 'every block reads back its own data')

  const { ref: dir } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  for (let i = 0; i < 600; i++) await e.create(dir, Buffer.from(`name-${i}`), { how: 'guarded', attr: {} }, owner)
  const found = await Promise.all(Array.from({ length: 600 }, (_, i) => e.lookup(dir, Buffer.from(`name-${i}`))))
  t.equal(new Set(found.map((f) => f.ref.id)).size, 600, "600 concurrent lookups in one htree directory find 600 distinct files")
})

t.test('group commit: a burst of 64 concurrent creates shares a few commits, and every create is durable on return', async (t) => {
  const { MemoryDevice } = await import('../../../vfs/engine/blockdev/memory-device.ts')
  const { RecordingDevice } = await import('../../../vfs/engine/blockdev/recording-device.ts')
  const { openEngineOn } = await import('../../../vfs/engine/fs/assemble.ts')
  const mem = new MemoryDevice(64 * 2 ** 20)
  await makeFileSystem(mem, { zeroed: true })
  const base = mem.clone()
  const dev = new RecordingDevice(mem)
  const e = await openEngineOn(dev, { commitIntervalMs: 0 })
  t.teardown(() => e.close())
  const { ref: dir } = await e.mkdir(e.root(), Buffer.from('d'), {}, owner)
  const before = dev.flushes.length
  const K = 64
  const made = await Promise.all(Array.from({ length: K }, (_, i) => e.create(dir, Buffer.from(`f${i}`), { how: 'guarded', attr: {} }, owner)))
  const flushes = dev.flushes.length - before
  t.comment(`${K} concurrent creates: ${flushes} flushes`)
  t.equal(new Set(made.map((m) => m.ref.id)).size, K, `${K} distinct files`)
  // Each commit flushes twice (the log, then its commit block). Before a change left its commit to
  // the changes queued behind it, every create's commit started at its own return: ~K/2 commits.
  t.ok(flushes <= 3 * 2, `${flushes} flushes (at most 3 commits) for ${K} creates`)
  // Durable on return: a crash right after the last create returned keeps every file.
  const crashed = dev.crashState(base, { flushes: dev.flushes.length, apply: [] })
  const { recover } = await import('../../../vfs/engine/jbd2/recovery.ts')
  await recover(crashed)
  const again = await openEngineOn(crashed, { commitIntervalMs: 0 })
  const page = await again.readdir((await again.lookup(again.root(), Buffer.from('d'))).ref, 0n, 1000)
  t.equal(page.entries.filter((x) => x.name.toString().startsWith('f')).length, K, 'all creates survive a crash after the last reply')
  await again.close()
})
