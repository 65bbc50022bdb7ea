/*
 * Levels: a chain 0, 1, 2 with creates, edits, renames and deletes restores exactly the last
 * state (memory and local backends, into a Vfs and into a host directory); an incremental of an
 * unchanged tree copies no file; the level store picks dump's base.
 */
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { createBackupFormat, LevelStore } from '../../backup/index.ts'
import type { BackupSummary, FileHistoryEntry } from '../../backup/types.ts'
import { LocalVfs } from '../../vfs/local/local-vfs.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { Vfs } from '../../vfs/types.ts'
import { bufferSource, fileSink, fileSource, link, memorySink, mkdirp, remove, rename, snapshotTree, symlink, writeFile } from './helpers.ts'

async function runLevel(vfs: Vfs, store: LevelStore, level: number, tape: string): Promise<{ sum: BackupSummary; files: FileHistoryEntry[] }> {
  const format = createBackupFormat({ levels: store })
  const files: FileHistoryEntry[] = []
  const sink = fileSink(tape)
  const sum = await format.writeBackup({ vfs, root: vfs.root(), live: true, name: '/exp' }, sink, { level, base: store.base('/exp', level), onFile: (e) => files.push(e) })
  sink.close()
  await store.record('/exp', sum)
  return { sum, files }
}

/** Waits past the clock's granularity so later edits have a later mtime than a backup's start. */
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20))

async function chain(t: Test, vfs: Vfs, dir: string): Promise<void> {
  const store = await LevelStore.open(path.join(dir, 'levels'))
  await writeFile(vfs, 'keep.txt', 'unchanged\n')
  await writeFile(vfs, 'edit.txt', 'version 1\n')
  await writeFile(vfs, 'gone.txt', 'deleted at level 1\n')
  await writeFile(vfs, 'olddir/inner.txt', 'inside a renamed dir\n')
  await writeFile(vfs, 'moveme.txt', 'renamed at level 2\n')
  await writeFile(vfs, 'tree/a/b/c.txt', 'deep\n')
  await symlink(vfs, 'tree/ln', 'a/b/c.txt')
  await tick()
  const l0 = await runLevel(vfs, store, 0, path.join(dir, 'l0.tar'))
  t.ok(l0.files.some((f) => f.path === 'keep.txt' && f.sha256 !== undefined), 'level 0 copies everything, with checksums')
  await tick()

  await writeFile(vfs, 'edit.txt', 'version 2, longer\n')
  await remove(vfs, 'gone.txt')
  await writeFile(vfs, 'new1.txt', 'created at level 1\n')
  await rename(vfs, 'olddir', 'newdir')
  await mkdirp(vfs, 'emptydir')
  await tick()
  const l1 = await runLevel(vfs, store, 1, path.join(dir, 'l1.tar'))
  const l1files = l1.files.filter((f) => f.type !== 'dir').map((f) => f.path).sort()
  t.same(l1files, ['edit.txt', 'new1.txt', 'newdir/inner.txt'], 'level 1 copies the edit, the new file and the renamed dir')
  await tick()

  await rename(vfs, 'moveme.txt', 'tree/moved.txt')
  await writeFile(vfs, 'tree/a/b/c.txt', 'deep, edited\n')
  await remove(vfs, 'new1.txt')
  await link(vfs, 'keep.txt', 'tree/keep-link')
  await tick()
  const l2 = await runLevel(vfs, store, 2, path.join(dir, 'l2.tar'))
  const l2files = l2.files.filter((f) => f.type !== 'dir').map((f) => f.path).sort()
  t.ok(l2files.includes('tree/moved.txt') && l2files.includes('tree/a/b/c.txt'), 'level 2 copies the renamed file and the edit')
  t.notOk(l2files.includes('edit.txt'), 'level 2 leaves level 1 work alone')

  const format = createBackupFormat({ levels: store })
  const want = await snapshotTree(vfs)
  const restoreChain = async (target: Parameters<typeof format.readBackup>[2]): Promise<string[]> => {
    const deleted: string[] = []
    for (const n of [0, 1, 2]) {
      const r = await format.readBackup(fileSource(path.join(dir, `l${n}.tar`)), `l${n}.tar`, target, { overwrite: true, applyDeletions: true })
      deleted.push(...r.deleted)
    }
    return deleted.sort()
  }
  const mem = new MemoryVfs({ rootMode: 0o755 })
  const deleted = await restoreChain({ kind: 'vfs', vfs: mem, root: mem.root(), owner: { uid: 0, gid: 0 } })
  t.same(deleted, ['gone.txt', 'moveme.txt', 'new1.txt', 'olddir'], 'deleted and renamed-away names are removed')
  t.same(await snapshotTree(mem), want, 'chain restored into a memory tree equals the last state')

  const hostDir = path.join(dir, 'host-restore')
  await restoreChain({ kind: 'host', dir: hostDir })
  const host = new LocalVfs({ root: hostDir, stateDir: path.join(dir, 'host-state') })
  t.same(await snapshotTree(host), want, 'chain restored into a host directory equals the last state')
  await host.close()

  // GNU tar reads the same listings: --incremental extraction of the chain ends in the same tree.
  const gnuDir = path.join(dir, 'gnu-restore')
  fs.mkdirSync(gnuDir)
  for (const n of [0, 1, 2]) {
    const r = spawnSync('tar', ['--incremental', '--numeric-owner', '-xf', path.join(dir, `l${n}.tar`), '-C', gnuDir], { encoding: 'utf8' })
    t.equal(r.status, 0, `tar --incremental -xf l${n}.tar exits 0`)
    t.equal(r.stderr, '', `tar --incremental -xf l${n}.tar is silent`)
  }
  const gnu = new LocalVfs({ root: gnuDir, stateDir: path.join(dir, 'gnu-state') })
  t.same(await snapshotTree(gnu), want, 'GNU tar --incremental restores the chain to the last state too')
  await gnu.close()

  await tick()
  const l3 = await runLevel(vfs, store, 3, path.join(dir, 'l3.tar'))
  t.equal(l3.sum.files, 0, 'an incremental of an unchanged tree copies no file')
  t.equal(store.base('/exp', 1)?.level, 0, 'level 1 bases on level 0')
  t.equal(store.base('/exp', 9)?.level, 3, 'level 9 bases on the newest lower level')
  t.equal(store.base('/exp', 0), null, 'level 0 has no base')
}

t.test('chain on the memory backend', async (t) => {
  const dir = t.testdir({})
  await chain(t, new MemoryVfs({ rootMode: 0o755 }), dir)
})

t.test('chain on the local backend', async (t) => {
  const dir = t.testdir({ src: {}, state: {} })
  const vfs = new LocalVfs({ root: path.join(dir, 'src'), stateDir: path.join(dir, 'state') })
  t.teardown(() => vfs.close())
  await chain(t, vfs, dir)
  t.ok(fs.existsSync(path.join(dir, 'levels', 'dumpdates.json')), 'dumpdates kept in the state directory')
})

t.test('selection: a subtree renamed to a destination, no overwrite', async (t) => {
  const dir = t.testdir({})
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(vfs, 'docs/a.txt', 'A')
  await writeFile(vfs, 'docs/sub/b.txt', 'B')
  await writeFile(vfs, 'other.txt', 'O')
  const store = await LevelStore.open(path.join(dir, 'levels'))
  await runLevel(vfs, store, 0, path.join(dir, 'l0.tar'))
  const format = createBackupFormat()
  const target = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(target, 'restored/a.txt', 'already here')
  const logs: string[] = []
  const r = await format.readBackup(fileSource(path.join(dir, 'l0.tar')), 'l0.tar', { kind: 'vfs', vfs: target, root: target.root(), owner: { uid: 0, gid: 0 } }, {
    select: [{ path: 'docs', dest: 'restored' }],
    overwrite: false,
    applyDeletions: false,
    onLog: (_l, m) => logs.push(m),
  })
  const snap = await snapshotTree(target)
  t.same(Object.keys(snap), ['restored', 'restored/a.txt', 'restored/sub', 'restored/sub/b.txt'], 'only the selection, under its new name')
  t.equal(Buffer.from(snap['restored/a.txt']?.data ?? '', 'base64').toString(), 'already here', 'an existing file is kept')
  t.same(r.skipped, ['restored/a.txt'], 'and reported as skipped')
  t.ok(logs.some((m) => m.includes('not overwritten')), 'the log says so')
})

t.test('direct access: a source positioned at a file reads that file only', async (t) => {
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  for (let i = 0; i < 20; i++) await writeFile(vfs, `d/f${i}.bin`, Buffer.alloc(200_000, i))
  const files: FileHistoryEntry[] = []
  const sink = memorySink()
  await createBackupFormat().writeBackup({ vfs, root: vfs.root(), live: false, name: '/d' }, sink, { level: 0, base: null, onFile: (e) => files.push(e) })
  const stream = sink.bytes()
  const f = files.find((x) => x.path === 'd/f7.bin')
  if (f === undefined) throw new Error('no d/f7.bin')
  let read = 0
  const src = bufferSource(stream.subarray(Number(f.offset)))
  const counting = {
    async read(max: number): Promise<Buffer | null> {
      const b = await src.read(max)
      read += b?.length ?? 0
      return b
    },
  }
  const target = new MemoryVfs({ rootMode: 0o755 })
  const r = await createBackupFormat().readBackup(counting, 'tape@offset', { kind: 'vfs', vfs: target, root: target.root(), owner: { uid: 0, gid: 0 } }, { select: [{ path: 'd/f7.bin', dest: 'got.bin' }], overwrite: false, applyDeletions: false })
  t.equal(r.files, 1)
  const snap = await snapshotTree(target)
  t.equal(Buffer.from(snap['got.bin']?.data ?? '', 'base64').equals(Buffer.alloc(200_000, 7)), true, 'the file restored whole')
  t.ok(read < 400_000, `read ${read} bytes of a ${stream.length}-byte stream`)
})

t.test('exclude globs leave objects out by path or base name, and the log says so', async (t) => {
  const vfs = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(vfs, 'keep/a.txt', 'a')
  await writeFile(vfs, 'keep/b.tmp', 'b')
  await writeFile(vfs, 'cache/big.bin', 'c')
  await writeFile(vfs, 'deep/x/skip-me.log', 'd')
  const files: FileHistoryEntry[] = []
  const logs: string[] = []
  const sink = memorySink()
  await createBackupFormat().writeBackup({ vfs, root: vfs.root(), live: false, name: '/e' }, sink, {
    level: 0,
    base: null,
    exclude: ['*.tmp', 'cache', 'deep/**/*.log'],
    onFile: (e) => files.push(e),
    onLog: (_l, m) => logs.push(m),
  })
  t.same(files.map((f) => f.path).sort(), ['', 'deep', 'deep/x', 'keep', 'keep/a.txt'], 'only what no pattern matches')
  t.ok(logs.includes('cache: excluded') && logs.includes('keep/b.tmp: excluded'), 'each exclusion is logged')
  // An excluded name stays in its directory's listing, so a restore with deletions keeps it.
  const target = new MemoryVfs({ rootMode: 0o755 })
  await writeFile(target, 'keep/b.tmp', 'already there')
  const r = await createBackupFormat().readBackup(bufferSource(sink.bytes()), 'e', { kind: 'vfs', vfs: target, root: target.root(), owner: { uid: 0, gid: 0 } }, { overwrite: true, applyDeletions: true })
  t.same(r.deleted, [], 'nothing excluded is deleted on restore')
})
