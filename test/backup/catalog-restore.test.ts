/*
 * Catalog to restore on real streams: two levels written by the backup format to tape files,
 * their file history and listings ingested, then a one-file restore through the plan reads only
 * that file's records (direct access) and a full restore of the chain rebuilds the last state.
 */
import fs from 'node:fs'
import path from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import t from 'tap'
import { Catalog } from '../../backup/catalog/catalog.ts'
import { restorePlan } from '../../backup/catalog/plan.ts'
import { toNs } from '../../backup/catalog/rows.ts'
import { TapeFileExecutor } from '../../backup/catalog/tape-executor.ts'
import { createBackupFormat, LevelStore } from '../../backup/index.ts'
import type { FileHistoryEntry } from '../../backup/types.ts'
import { runBrowser } from '../../cli/restore-browser.ts'
import type { BrowserState } from '../../cli/restore-browser.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { Vfs } from '../../vfs/types.ts'
import { fileSink, remove, writeFile } from './helpers.ts'

const tick = (): Promise<void> => new Promise(r => setTimeout(r, 20))

async function level(vfs: Vfs, store: LevelStore, cat: Catalog, n: number, tapes: string, label: string, baseId: number | null): Promise<number> {
  const format = createBackupFormat({ levels: store })
  const files: FileHistoryEntry[] = []
  const sink = fileSink(path.join(tapes, `${label}.tape`))
  const sum = await format.writeBackup({ vfs, root: vfs.root(), live: true, name: '/exp' }, sink, { level: n, base: store.base('/exp', n), onFile: e => files.push(e) })
  sink.close()
  await store.record('/exp', sum)
  const id = cat.beginBackup({ filesystem: '/exp', level: n, baseId, startedNs: toNs(sum.startedAt) })
  cat.addTape(id, { label, fileNumber: 0, streamOffset: 0n })
  cat.ingestAll(id, files)
  cat.addListing(id, sum.listing)
  cat.finishBackup(id, { endedNs: toNs(sum.startedAt) + 1n, bytes: sum.bytes })
  return id
}

t.test('one file by direct access, and the whole chain', async t => {
  const dir = t.testdir({ tapes: {}, one: {}, all: {} })
  const tapes = path.join(dir, 'tapes')
  const vfs = new MemoryVfs()
  const store = await LevelStore.open(path.join(dir, 'levels'))
  const cat = Catalog.open(path.join(dir, 'cat.db'))
  t.teardown(() => { cat.close() })
  const big = Buffer.alloc(4 << 20, 7)
  await writeFile(vfs, 'big/a.bin', big)
  await writeFile(vfs, 'big/b.bin', big)
  await writeFile(vfs, 'docs/note.txt', 'version 1\n')
  await writeFile(vfs, 'docs/gone.txt', 'deleted at level 1\n')
  await writeFile(vfs, 'z-last.bin', big)
  await tick()
  const l0 = await level(vfs, store, cat, 0, tapes, 'L0', null)
  await tick()
  await writeFile(vfs, 'docs/note.txt', 'version 2, edited\n')
  await remove(vfs, 'docs/gone.txt')
  await tick()
  await level(vfs, store, cat, 1, tapes, 'L1', l0)
  const now = BigInt(Date.now()) * 1_000_000n

  const format = createBackupFormat()
  const ex = new TapeFileExecutor({ tapeFile: l => path.join(tapes, `${l}.tape`), format, target: to => ({ kind: 'host', dir: to ?? '' }) })
  // The edited note comes from level 1; a.bin from the middle of level 0's 12 MiB stream.
  const plan = restorePlan(cat, '/exp', ['/docs/note.txt', '/big/b.bin'], now)
  t.same(plan.steps.map(s => s.files.map(f => f.path)), [['/big/b.bin'], ['/docs/note.txt']])
  const sum = await ex.execute(plan, { to: path.join(dir, 'one'), overwrite: false })
  t.equal(sum.files, 2)
  t.equal(fs.readFileSync(path.join(dir, 'one/docs/note.txt'), 'utf8'), 'version 2, edited\n')
  t.ok(fs.readFileSync(path.join(dir, 'one/big/b.bin')).equals(big))
  t.notOk(fs.existsSync(path.join(dir, 'one/big/a.bin')), 'only the selection')
  const l0size = fs.statSync(path.join(tapes, 'L0.tape')).size
  t.ok(ex.bytesRead < BigInt(big.length + 64 * 1024), `read ${ex.bytesRead} of ${l0size + fs.statSync(path.join(tapes, 'L1.tape')).size} tape bytes`)

  const full = restorePlan(cat, '/exp', ['/'], now)
  await ex.execute(full, { to: path.join(dir, 'all'), overwrite: false })
  t.equal(fs.readFileSync(path.join(dir, 'all/docs/note.txt'), 'utf8'), 'version 2, edited\n')
  t.notOk(fs.existsSync(path.join(dir, 'all/docs/gone.txt')), 'the deletion of level 1 applied')
  t.ok(fs.readFileSync(path.join(dir, 'all/z-last.bin')).equals(big))

  // The browser's restore command through the same executor.
  const out = new PassThrough()
  let text = ''
  out.on('data', (d: Buffer) => (text += d.toString()))
  const st: BrowserState = { cat, fs: '/exp', atNs: now, cwd: '/', selection: new Set(), executor: ex, out }
  const code = await runBrowser(st, Readable.from(['cd docs\nadd note.txt\nrestore --to ' + path.join(dir, 'browsed') + '\n']), out, false)
  t.equal(code, 0, text)
  t.match(text, /restored 1 file\(s\), 0 dir\(s\), 18 bytes\n/)
  t.equal(fs.readFileSync(path.join(dir, 'browsed/docs/note.txt'), 'utf8'), 'version 2, edited\n')
})
