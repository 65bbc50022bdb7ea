/*
 * The engine's name cache (vfs/engine/fs/name-cache.ts) never answers a stale name → inode: after
 * every change of a directory (create, unlink, rename within and across directories and over an
 * existing name, link, mkdir, rmdir, a directory growing from linear to htree and splitting), a
 * restart, a journal replay after a crash and a read-only open, the next lookup of every name
 * agrees with a model map. Each check looks every name up first, so the cache holds them when the
 * change comes. A seeded random sequence does the same (TSNFS_SEED replays one); the cache keeps
 * to its byte bound when filled past it.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Test } from 'tap'
import { VfsError } from '../../../vfs/errors.ts'
import { MemoryDevice } from '../../../vfs/engine/blockdev/memory-device.ts'
import { PassThroughDevice } from '../../../vfs/engine/blockdev/pass-through.ts'
import { RecordingDevice } from '../../../vfs/engine/blockdev/recording-device.ts'
import { openEngineOn } from '../../../vfs/engine/fs/assemble.ts'
import { isDirMode } from '../../../vfs/engine/fs/attr.ts'
import { FT } from '../../../vfs/engine/format/dirent.ts'
import { Ext4Image } from '../../../vfs/engine/reader/image.ts'
import type { EngineVfs } from '../../../vfs/engine/fs/engine-vfs.ts'
import { NAME_DIR_BYTES, NAME_ENTRY_BYTES, NameCache } from '../../../vfs/engine/fs/name-cache.ts'
import { recover } from '../../../vfs/engine/jbd2/recovery.ts'
import { makeFileSystem } from '../../../vfs/engine/mkfs/mkfs.ts'
import type { FileRef } from '../../../vfs/types.ts'
import { rng } from './format-helpers.ts'

const owner = { uid: 0, gid: 0 }
const b = (s: string): Buffer => Buffer.from(s)

/** A device whose close only flushes: the image stays readable after the engine on it closed. */
class KeepOpen extends PassThroughDevice {
  override close(): Promise<void> {
    return this.flush()
  }
}

/** Directory id → name → the inode number it names (what every lookup must answer). */
type Model = Map<bigint, Map<string, bigint>>

async function freshDevice(blockSize: 1024 | 4096 = 1024): Promise<MemoryDevice> {
  const mem = new MemoryDevice(64 * 2 ** 20)
  await makeFileSystem(mem, { zeroed: true, blockSize })
  return mem
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    if (err instanceof VfsError) return err.code
    throw err
  }
}

/**
 * Look every name of `pool` up in every directory of `dirs`: each must answer the model's inode
 * or ENOENT. Returns the mismatches (the first few also fail the test, named).
 */
async function checkAll(t: Test, e: EngineVfs, model: Model, dirs: Map<bigint, FileRef>, pool: readonly string[], step: string): Promise<number> {
  let bad = 0
  for (const [id, ref] of dirs) {
    const names = model.get(id) ?? new Map<string, bigint>()
    for (const name of pool) {
      const want = names.get(name)
      let got: string
      try {
        got = String((await e.lookup(ref, b(name))).ref.id)
      } catch (err) {
        if (!(err instanceof VfsError)) throw err
        got = err.code
      }
      const expected = want === undefined ? 'ENOENT' : String(want)
      if (got !== expected && bad++ < 3) t.fail(`${step}: lookup ${id}/${name} answered ${got}, expected ${expected}`)
    }
  }
  return bad
}

function entries(model: Model, dir: bigint): Map<string, bigint> {
  let m = model.get(dir)
  if (m === undefined) {
    m = new Map<string, bigint>()
    model.set(dir, m)
  }
  return m
}

t.test('every directory change is seen by the next lookup of a cached name', async (t) => {
  const e = await openEngineOn(await freshDevice(), { commitIntervalMs: 0 })
  t.teardown(() => e.close())
  const root = e.root()
  const model: Model = new Map()
  const { ref: a } = await e.mkdir(root, b('a'), {}, owner)
  const { ref: bd } = await e.mkdir(root, b('b'), {}, owner)
  entries(model, root.id).set('a', a.id).set('b', bd.id)
  const dirs = new Map([[root.id, root], [a.id, a], [bd.id, bd]])
  const pool = ['a', 'b', 'f1', 'f2', 'f3', 'g', 'sub']
  let bad = 0
  const step = async (what: string): Promise<void> => {
    bad += await checkAll(t, e, model, dirs, pool, what)
  }
  await step('start')

  const f1 = (await e.create(a, b('f1'), { how: 'guarded', attr: {} }, owner)).ref
  entries(model, a.id).set('f1', f1.id)
  await step('create a/f1')
  const f2 = (await e.create(a, b('f2'), { how: 'guarded', attr: {} }, owner)).ref
  entries(model, a.id).set('f2', f2.id)
  await step('create a/f2')

  await e.rename(a, b('f1'), a, b('f3'))
  entries(model, a.id).delete('f1')
  entries(model, a.id).set('f3', f1.id)
  await step('rename a/f1 → a/f3 (within a directory)')

  await e.rename(a, b('f3'), a, b('f2'))
  entries(model, a.id).delete('f3')
  entries(model, a.id).set('f2', f1.id)
  await step('rename a/f3 → a/f2 (over an existing name)')

  await e.rename(a, b('f2'), bd, b('f1'))
  entries(model, a.id).delete('f2')
  entries(model, bd.id).set('f1', f1.id)
  await step('rename a/f2 → b/f1 (across directories)')

  const g = (await e.create(a, b('g'), { how: 'guarded', attr: {} }, owner)).ref
  entries(model, a.id).set('g', g.id)
  await step('create a/g')
  await e.rename(a, b('g'), bd, b('f1'))
  entries(model, a.id).delete('g')
  entries(model, bd.id).set('f1', g.id)
  await step('rename a/g → b/f1 (across directories, over an existing name)')

  await e.link(g, a, b('f2'))
  entries(model, a.id).set('f2', g.id)
  await step('link b/f1 as a/f2')

  await e.remove(bd, b('f1'))
  entries(model, bd.id).delete('f1')
  await step('unlink b/f1 (a/f2 still links it)')
  t.equal((await e.getattr(g)).nlink, 1, 'the remaining link counted')

  const sub = (await e.mkdir(a, b('sub'), {}, owner)).ref
  entries(model, a.id).set('sub', sub.id)
  dirs.set(sub.id, sub)
  await step('mkdir a/sub')
  t.equal((await e.lookup(sub, b('..'))).ref.id, a.id, "a/sub/.. is a")
  await e.rename(a, b('sub'), bd, b('sub'))
  entries(model, a.id).delete('sub')
  entries(model, bd.id).set('sub', sub.id)
  await step('rename the directory a/sub → b/sub')
  t.equal((await e.lookup(sub, b('..'))).ref.id, bd.id, "b/sub/.. is b after the move")

  await e.rmdir(bd, b('sub'))
  entries(model, bd.id).delete('sub')
  dirs.delete(sub.id)
  await step('rmdir b/sub')
  // The freed inode number comes back as a new directory: nothing of the old one may show.
  const sub2 = (await e.mkdir(bd, b('sub'), {}, owner)).ref
  entries(model, bd.id).set('sub', sub2.id)
  dirs.set(sub2.id, sub2)
  await step('mkdir b/sub again')

  await e.remove(a, b('f2'))
  entries(model, a.id).delete('f2')
  await step('unlink a/f2 (the last link)')
  t.equal(await codeOf(e.getattr(g)), 'ESTALE', 'the unlinked file is gone')
  t.equal(bad, 0, 'every lookup after every change agreed with the model')
})

t.test('a directory growing from linear to htree and splitting: every name found after every create and remove', async (t) => {
  const e = await openEngineOn(await freshDevice(1024), { commitIntervalMs: 0 })
  t.teardown(() => e.close())
  const { ref: d } = await e.mkdir(e.root(), b('big'), {}, owner)
  const made = new Map<string, bigint>()
  const name = (i: number): string => `entry-${i}-${'x'.repeat(40)}`
  let bad = 0
  const N = 160
  for (let i = 0; i < N; i++) {
    made.set(name(i), (await e.create(d, b(name(i)), { how: 'guarded', attr: {} }, owner)).ref.id)
    // Every name made so far, and the next one (not there yet).
    for (let j = 0; j <= i + 1; j++) {
      const got = await codeOf(e.lookup(d, b(name(j))).then((r) => { if (r.ref.id !== made.get(name(j))) throw new Error(`${name(j)}: ${r.ref.id}`) }))
      if (got !== (j <= i ? 'ok' : 'ENOENT') && bad++ < 3) t.fail(`after create ${i}: lookup ${j} answered ${got}`)
    }
  }
  const page = await e.readdir(d, 0n, 10_000)
  t.equal(page.entries.length, N + 2, 'every entry listed')
  // Past one block a directory is indexed (dir_index), and a leaf that fills splits.
  const size = (await e.getattr(d)).size
  t.ok(size >= 8n * 1024n, `the directory grew to ${size} bytes (an htree of several leaves)`)
  // Removals from the now-indexed directory, each seen at once.
  for (let i = 0; i < N; i += 3) {
    await e.remove(d, b(name(i)))
    made.delete(name(i))
    for (let j = 0; j < N; j++) {
      const got = await codeOf(e.lookup(d, b(name(j))))
      if (got !== (made.has(name(j)) ? 'ok' : 'ENOENT') && bad++ < 3) t.fail(`after remove ${i}: lookup ${j} answered ${got}`)
    }
  }
  t.equal(bad, 0, 'every lookup agreed while the directory grew, split and shrank')
})

t.test('a restart, a journal replay after a crash and a read-only open answer what the image holds', async (t) => {
  const mem = await freshDevice()
  const base = mem.clone()
  const dev = new RecordingDevice(mem)
  const e = await openEngineOn(dev, { commitIntervalMs: 0 })
  const root = e.root()
  const pool = ['x', 'y', 'z', 'w']
  const model: Model = new Map()
  const dirs = new Map([[root.id, root]])
  for (const n of ['x', 'y', 'z']) entries(model, root.id).set(n, (await e.create(root, b(n), { how: 'guarded', attr: {} }, owner)).ref.id)
  t.equal(await checkAll(t, e, model, dirs, pool, 'before the changes'), 0, 'all cached')
  await e.remove(root, b('x'))
  entries(model, root.id).delete('x')
  await e.rename(root, b('y'), root, b('w'))
  entries(model, root.id).set('w', entries(model, root.id).get('y') ?? 0n)
  entries(model, root.id).delete('y')
  t.equal(await checkAll(t, e, model, dirs, pool, 'after the changes'), 0, 'the running engine agrees')

  // A crash now: the journal holds the changes (each was durable on return); replay, then open.
  const crashed = dev.crashState(base, { flushes: dev.flushes.length, apply: [] })
  await e.close()
  await recover(crashed)
  const replayed = await openEngineOn(new KeepOpen(crashed), { commitIntervalMs: 0 })
  t.equal(await checkAll(t, replayed, model, dirs, pool, 'after journal replay'), 0, 'after a crash and journal replay')
  await replayed.close()

  const again = await openEngineOn(new KeepOpen(crashed), { commitIntervalMs: 0 })
  t.equal(await checkAll(t, again, model, dirs, pool, 'after a restart'), 0, 'after a clean restart')
  await again.remove(root, b('z'))
  entries(model, root.id).delete('z')
  t.equal(await checkAll(t, again, model, dirs, pool, 'after unlink in the restarted engine'), 0, 'a change after the restart seen')
  await again.close()
  const snap = crashed.clone({ readOnly: true })

  const ro = await openEngineOn(snap, { readOnly: true })
  t.equal(await checkAll(t, ro, model, dirs, pool, 'read-only open'), 0, 'a read-only open of the image')
  t.equal(await codeOf(ro.create(root, b('new'), { how: 'guarded', attr: {} }, owner)), 'EROFS', 'and it stays read-only')
  await ro.close()
})

t.test('a seeded random sequence of directory changes against a model map', async (t) => {
  const seed = Number(process.env.TSNFS_SEED ?? Math.floor(Math.random() * 2 ** 31))
  t.comment(`seed ${seed} (TSNFS_SEED=${seed} replays it)`)
  const r = rng(seed)
  const mem = await freshDevice(1024)
  const e = await openEngineOn(new KeepOpen(mem), { commitIntervalMs: 0 })
  const root = e.root()
  const model: Model = new Map()
  const fileDirs: FileRef[] = [root]
  for (const n of ['p', 'q']) {
    const ref = (await e.mkdir(root, b(n), {}, owner)).ref
    entries(model, root.id).set(n, ref.id)
    fileDirs.push(ref)
  }
  const dirs = new Map(fileDirs.map((d) => [d.id, d]))
  // Long names fill 1 KiB blocks fast: the directories turn htree and split along the way.
  const pool = Array.from({ length: 48 }, (_, i) => (i % 2 === 0 ? `n${i}` : `n${i}-${'y'.repeat(30 + (i % 7) * 10)}`))
  const subs = ['s0', 's1', 's2']
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)] as T
  let bad = 0
  const steps = 220
  for (let i = 0; i < steps; i++) {
    const d = pick(fileDirs)
    const d2 = pick(fileDirs)
    const n = pick(pool)
    const n2 = pick(pool)
    const m = entries(model, d.id)
    const m2 = entries(model, d2.id)
    const kind = pick(['create', 'create', 'create', 'remove', 'rename', 'rename', 'link', 'mkdir', 'rmdir'])
    let op = `${kind} ${d.id}/${n}`
    let got: string
    let want: string
    switch (kind) {
      case 'create': {
        want = m.has(n) ? 'EEXIST' : 'ok'
        got = await codeOf(e.create(d, b(n), { how: 'guarded', attr: {} }, owner).then((c) => { m.set(n, c.ref.id) }))
        break
      }
      case 'remove': {
        want = m.has(n) ? 'ok' : 'ENOENT'
        got = await codeOf(e.remove(d, b(n)))
        if (got === 'ok') m.delete(n)
        break
      }
      case 'rename': {
        op += ` → ${d2.id}/${n2}`
        const src = m.get(n)
        want = src === undefined ? 'ENOENT' : 'ok'
        got = await codeOf(e.rename(d, b(n), d2, b(n2)))
        if (got === 'ok' && src !== undefined) {
          m.delete(n)
          m2.set(n2, src)
        }
        break
      }
      case 'link': {
        const src = m.get(n)
        if (src === undefined) continue
        op += ` as ${d2.id}/${n2}`
        want = m2.has(n2) ? 'EEXIST' : 'ok'
        got = await codeOf(e.link({ id: src, gen: (await e.lookup(d, b(n))).ref.gen }, d2, b(n2)))
        if (got === 'ok') m2.set(n2, src)
        break
      }
      case 'mkdir': {
        // Empty directories in root, made and removed: their inode numbers are reused.
        const s = pick(subs)
        op = `mkdir ${s}`
        const rm = entries(model, root.id)
        want = rm.has(s) ? 'EEXIST' : 'ok'
        got = await codeOf(e.mkdir(root, b(s), {}, owner).then((c) => { rm.set(s, c.ref.id) }))
        break
      }
      default: {
        const s = pick(subs)
        op = `rmdir ${s}`
        const rm = entries(model, root.id)
        want = rm.has(s) ? 'ok' : 'ENOENT'
        got = await codeOf(e.rmdir(root, b(s)))
        if (got === 'ok') rm.delete(s)
      }
    }
    if (got !== want && bad++ < 3) t.fail(`step ${i} ${op}: ${got}, the model says ${want}`)
    bad += await checkAll(t, e, model, dirs, [...pool, ...subs, 'p', 'q'], `step ${i} ${op}`)
  }
  t.equal(bad, 0, `${steps} steps, every outcome and every lookup after each as the model says (seed ${seed})`)
  await e.close()
  // A rename writes the type the cache gave for the source entry: every entry's type byte must
  // be its inode's (e2fsck -n lets a type of 0 pass silently, so the reader checks it here).
  const img = await Ext4Image.open(mem)
  let types = 0
  let wrongTypes = 0
  for (const id of dirs.keys()) {
    for (const d of await img.readDir(Number(id))) {
      if (d.text === '.' || d.text === '..') continue
      const want = isDirMode((await img.readInode(d.inode)).mode) ? FT.DIR : FT.REG_FILE
      types++
      if (d.fileType !== want && wrongTypes++ < 3) t.fail(`${id}/${d.text}: type ${d.fileType}, its inode says ${want}`)
    }
  }
  t.equal(wrongTypes, 0, `the type of all ${types} entries is their inode's`)
  const dir = mkdtempSync(path.join(tmpdir(), 'tsnfs-name-cache-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const image = path.join(dir, 'e.img')
  writeFileSync(image, mem.toBuffer())
  const fsck = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' })
  t.equal(fsck.status, 0, 'e2fsck -fn clean after the sequence')
  if (fsck.status !== 0) t.comment(fsck.stdout)
})

t.test('the name cache keeps to its byte bound when filled past it', async (t) => {
  const limit = 64 * 1024
  const names = new NameCache(limit)
  let held = 0
  for (let i = 0; i < 5000; i++) {
    names.set(2 + (i % 7), b(`name-${i}-${'z'.repeat(i % 50)}`), { ino: 100 + i, fileType: 1 }, names.epoch)
    held = Math.max(held, names.bytes)
  }
  t.ok(held <= limit, `at most ${held} bytes held (bound ${limit})`)
  t.ok(names.size > limit / (NAME_ENTRY_BYTES + 60 + NAME_DIR_BYTES), `still ${names.size} names kept`)
  t.ok(names.counts.evictions > 4000, `${names.counts.evictions} evicted`)
  t.equal(names.peek(2, b('name-0-')), undefined, 'the oldest went first')
  t.same(names.peek(2 + (4999 % 7), b(`name-4999-${'z'.repeat(4999 % 50)}`)), { ino: 5099, fileType: 1 }, 'the newest is kept')
  const before = names.bytes
  t.equal(names.trim(limit / 16), before - names.bytes, 'a trim returns what it let go')
  t.ok(names.bytes <= limit / 16, `down to its low mark: ${names.bytes}`)
  // A search that a drop overtook fills nothing.
  const epoch = names.epoch
  names.drop(3, b('other'))
  names.set(3, b('late'), { ino: 7, fileType: 1 }, epoch)
  t.equal(names.peek(3, b('late')), undefined, 'a fill older than a drop is refused')

  // Through an engine with a small cache=: the names cache shows its bound, keeps to it, and
  // lookups stay right while its entries are evicted.
  const e = await openEngineOn(await freshDevice(4096), { commitIntervalMs: 0, cacheBytes: 2 * 2 ** 20 })
  t.teardown(() => e.close())
  const cache = e.caches().find((c) => c.name === 'names')
  if (cache === undefined) throw new Error('no names cache shown')
  const bound = cache.limit?.() ?? 0
  t.equal(bound, 2 * 2 ** 20 / 32, 'a thirty-second of cache=')
  const { ref: d } = await e.mkdir(e.root(), b('d'), {}, owner)
  const ids: bigint[] = []
  const count = 1200
  for (let i = 0; i < count; i++) ids.push((await e.create(d, b(`file-${i}-${'w'.repeat(30)}`), { how: 'guarded', attr: {} }, owner)).ref.id)
  let wrong = 0
  let most = 0
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < count; i++) {
      if ((await e.lookup(d, b(`file-${i}-${'w'.repeat(30)}`))).ref.id !== ids[i]) wrong++
      most = Math.max(most, cache.bytes())
    }
  }
  t.equal(wrong, 0, `${count} names looked up twice through a cache of ${bound} bytes, all right`)
  t.ok(most <= bound, `at most ${most} bytes held`)
  t.ok(cache.bytes() > bound / 2, `the cache is used (${cache.bytes()} bytes)`)
  t.ok((cache.counts?.().evictions ?? 0) > 0, 'entries were evicted to keep the bound')
})
