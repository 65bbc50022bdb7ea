/**
 * The backup catalog (issue 16 §6): `npx tsx bench/catalog.ts [FILES_PER_BACKUP] [BACKUPS]`.
 *
 * Ingests BACKUPS backups (default 10) of a tree of FILES_PER_BACKUP objects (default 100,000:
 * 1,000 directories of 99 files) into a fresh catalog in a temporary directory, each with its
 * directory listing, timing each ingest; then, over the whole catalog (1,000,000 file rows by
 * default), times the one-path questions: which backups hold a path, its newest version before
 * a date, what a directory held at a date, a one-file restore plan, and a name search.
 * Ingest times leave out making the entries (they come from the backup's file history); wall
 * and CPU time are both printed, since on a shared machine the wall time is mostly waiting.
 * Prints one line per figure (median of the repeated queries, in ms).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Catalog } from '../backup/catalog/catalog.ts'
import { restorePlan } from '../backup/catalog/plan.ts'
import { backupsContaining, dirAt, findFiles, newestBefore } from '../backup/catalog/queries.ts'
import type { DirListing, FileHistoryEntry } from '../backup/types.ts'

const perBackup = Number(process.argv[2] ?? 100_000)
const backups = Number(process.argv[3] ?? 10)
const DIRS = Math.max(1, Math.round(perBackup / 100))
const FILES = Math.max(1, Math.floor(perBackup / DIRS) - 1)
const S = 1_000_000_000n

function* tree(n: number): Generator<FileHistoryEntry> {
  let offset = 0n
  const t = { sec: 1_700_000_000 + n * 86400, nsec: 0 }
  const base = { mode: 0o644, uid: 1000, gid: 1000, atime: t, mtime: t, ctime: t }
  for (let d = 0; d < DIRS; d++) {
    yield { ...base, path: `d${d}`, type: 'dir', size: 4096n, fileid: BigInt(d + 10), offset, mode: 0o755 }
    offset += 1024n
    for (let f = 0; f < FILES; f++) {
      yield { ...base, path: `d${d}/file-${f}.dat`, type: 'file', size: 10_000n, fileid: BigInt(1_000_000 + d * 1000 + f), offset, sha256: 'ab'.repeat(32) }
      offset += 11_264n
    }
  }
}

function listing(): DirListing {
  const l: DirListing = new Map()
  l.set('', Array.from({ length: DIRS }, (_, d) => ({ name: `d${d}`, fileid: BigInt(d + 10), type: 'dir' as const })))
  for (let d = 0; d < DIRS; d++) l.set(`d${d}`, Array.from({ length: FILES }, (_, f) => ({ name: `file-${f}.dat`, fileid: BigInt(f), type: 'file' as const })))
  return l
}

function ms(fn: () => unknown, runs: number): number {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    fn()
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)] ?? 0
}

const dir = mkdtempSync(join(tmpdir(), 'catalog-bench-'))
const file = join(dir, 'cat.db')
const cat = Catalog.open(file)
const lst = listing()
let rows = 0
for (let n = 0; n < backups; n++) {
  const startedNs = BigInt(1_700_000_000 + n * 86400) * S
  const id = cat.beginBackup({ filesystem: '/data', level: n === 0 ? 0 : 1, startedNs })
  cat.addTape(id, { label: `T${n}`, fileNumber: 1, streamOffset: 0n })
  const entries = [...tree(n)]
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  const count = cat.ingestAll(id, entries)
  const t1 = performance.now()
  const cpu = process.cpuUsage(c0)
  cat.addListing(id, lst)
  cat.finishBackup(id, { endedNs: startedNs + 3600n * S, bytes: 0n, files: count })
  const t2 = performance.now()
  rows += count
  console.log(`ingest backup ${n + 1}: ${count} rows in ${(t1 - t0).toFixed(0)} ms (${Math.round(count / ((t1 - t0) / 1000))} rows/s; CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms), listing + finish ${(t2 - t1).toFixed(0)} ms`)
}
const at = BigInt(1_700_000_000 + backups * 86400) * S
const path = `/d${DIRS >> 1}/file-${FILES >> 1}.dat`
console.log(`catalog: ${rows} file rows, ${(statSync(file).size / 2 ** 20).toFixed(0)} MiB (+ WAL)`)
console.log(`backupsContaining(${path}): ${ms(() => backupsContaining(cat, '/data', path), 50).toFixed(3)} ms median (${backupsContaining(cat, '/data', path).length} versions)`)
console.log(`newestBefore: ${ms(() => newestBefore(cat, '/data', path, at), 50).toFixed(3)} ms`)
console.log(`dirAt(/d${DIRS >> 1}, ${FILES} names): ${ms(() => dirAt(cat, '/data', `/d${DIRS >> 1}`, at), 20).toFixed(3)} ms`)
console.log(`restorePlan(one file): ${ms(() => restorePlan(cat, '/data', [path], at), 50).toFixed(3)} ms`)
console.log(`findFiles(file-4?.dat under /d7): ${ms(() => findFiles(cat, '/data', 'file-4?.dat', { under: '/d7' }), 10).toFixed(3)} ms`)
console.log(`findFiles(file-4?.dat, whole catalog, limit 1000): ${ms(() => findFiles(cat, '/data', 'file-4?.dat'), 5).toFixed(3)} ms`)
cat.close()
rmSync(dir, { recursive: true, force: true })
