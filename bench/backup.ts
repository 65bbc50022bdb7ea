/*
 * The backup format (issue 16 §9): a level-0 backup of a host tree through the local backend to a
 * tape file, against `tar cf` of the same tree in the same run (runs interleaved, medians, the
 * rate ratio ours/tar); an incremental of the unchanged many-file tree against its level 0 (time
 * ratio); gzip and brotli rates.
 *
 *   npx tsx bench/backup.ts [--short] [--runs N] [--dir DIR] [--data MiB] [--files N] [--keep]
 *
 * Default (the long run): 1 GiB of data in 64 files of 16 MiB plus 100,000 small files.
 * --short: 128 MiB of data and 5,000 small files (the smoke test). JSON on stdout at the end.
 */
import { spawnSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import fs from 'node:fs'
import { mkdir, open, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { createBackupFormat, LevelStore } from '../backup/index.ts'
import type { BackupSummary, ByteSink } from '../backup/types.ts'
import { LocalVfs } from '../vfs/local/local-vfs.ts'
import { median, round } from './results.ts'

const MiB = 1024 * 1024
const { values: args } = parseArgs({
  options: {
    short: { type: 'boolean', default: false },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string' },
    data: { type: 'string' },
    files: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
})
const runs = Number(args.runs)
const dataMiB = Number(args.data ?? (args.short ? 128 : 1024))
const smallFiles = Number(args.files ?? (args.short ? 5000 : 100_000))
const base = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-bench-backup-'))

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9
}

/** A tape file written through one file handle, as the NDMP tape service does. */
async function tapeSink(file: string): Promise<ByteSink & { close(): Promise<void> }> {
  const fh = await open(file, 'w')
  return {
    async write(chunk: Buffer): Promise<void> {
      let done = 0
      while (done < chunk.length) done += (await fh.write(chunk, done)).bytesWritten
    },
    close: () => fh.close(),
  }
}

function makeBigTree(dir: string): void {
  fs.mkdirSync(dir, { recursive: true })
  // Half random bytes, half text: compressors get something to do, and nothing trivial.
  const chunk = Buffer.alloc(MiB)
  randomFillSync(chunk, 0, MiB / 2)
  let text = ''
  for (let i = 0; text.length < MiB / 2; i++) text += `line ${i} of a log file, status=${i % 7 === 0 ? 'warn' : 'ok'} took ${(i * 37) % 1000} ms\n`
  chunk.write(text.slice(0, MiB / 2), MiB / 2, 'latin1')
  const files = Math.max(1, dataMiB / 16)
  for (let f = 0; f < files; f++) {
    const fd = fs.openSync(path.join(dir, `big-${f}.bin`), 'w')
    for (let m = 0; m < 16; m++) {
      randomFillSync(chunk, 0, MiB / 2)
      fs.writeSync(fd, chunk)
    }
    fs.closeSync(fd)
  }
}

function makeSmallTree(dir: string): void {
  const perDir = 1000
  for (let i = 0; i < smallFiles; i++) {
    const d = path.join(dir, `d${Math.floor(i / perDir)}`)
    if (i % perDir === 0) fs.mkdirSync(d, { recursive: true })
    fs.writeFileSync(path.join(d, `f${i}.txt`), `small file ${i}\n`)
  }
}

async function ours(src: string, tape: string, level: number, store: LevelStore | null, compress: 'gzip' | 'brotli' | null = null): Promise<{ secs: number; sum: BackupSummary; tapeBytes: number }> {
  const vfs = new LocalVfs({ root: src, stateDir: path.join(base, 'vfs-state', String(Math.random()).slice(2)) })
  const format = createBackupFormat({ levels: store })
  const sink = await tapeSink(tape)
  const t0 = now()
  const sum = await format.writeBackup({ vfs, root: vfs.root(), live: true, name: src }, sink, {
    level,
    base: store === null ? null : store.base(src, level),
    compress,
  })
  await sink.close()
  const secs = now() - t0
  await vfs.close()
  if (store !== null) await store.record(src, sum)
  return { secs, sum, tapeBytes: fs.statSync(tape).size }
}

function tarCf(src: string, tape: string): number {
  const t0 = now()
  const r = spawnSync('tar', ['cf', tape, '-C', src, '.'])
  if (r.status !== 0) throw new Error(`tar cf failed: ${r.stderr.toString()}`)
  return now() - t0
}

async function main(): Promise<void> {
  await mkdir(base, { recursive: true })
  const big = path.join(base, 'big')
  const small = path.join(base, 'small')
  const tape = path.join(base, 'tape')
  console.error(`bench/backup: building ${dataMiB} MiB in ${dataMiB / 16} files and ${smallFiles} small files under ${base}`)
  makeBigTree(big)
  makeSmallTree(small)

  // Level 0 vs tar cf of the same tree, interleaved so both see the same cache and load.
  const oursSecs: number[] = []
  const tarSecs: number[] = []
  let streamBytes = 0n
  tarCf(big, tape) // warm the page cache for both
  for (let r = 0; r < runs; r++) {
    const o = await ours(big, tape, 0, null)
    oursSecs.push(o.secs)
    streamBytes = o.sum.bytes
    tarSecs.push(tarCf(big, tape))
  }
  const oursRate = Number(streamBytes) / MiB / median(oursSecs)
  const tarRate = Number(streamBytes) / MiB / median(tarSecs)

  // The many-file tree: level 0, then level 1 of the unchanged tree, each `runs` times.
  const l0: number[] = []
  const l1: number[] = []
  let l1files = -1
  for (let r = 0; r < runs; r++) {
    const store = await LevelStore.open(path.join(base, `levels-${r}`))
    await new Promise((res) => setTimeout(res, 20))
    l0.push((await ours(small, tape, 0, store)).secs)
    const inc = await ours(small, tape, 1, store)
    l1.push(inc.secs)
    l1files = inc.sum.files
  }

  const comp: Record<string, { mibPerSec: number; ratio: number }> = {}
  for (const how of ['gzip', 'brotli'] as const) {
    const o = await ours(big, tape, 0, null, how)
    comp[how] = { mibPerSec: round(Number(o.sum.bytes) / MiB / o.secs, 1), ratio: round(o.tapeBytes / Number(o.sum.bytes), 3) }
  }

  const result = {
    dataMiB,
    smallFiles,
    runs,
    level0: { oursSecs: oursSecs.map((s) => round(s, 3)), tarSecs: tarSecs.map((s) => round(s, 3)), oursMiBps: round(oursRate, 1), tarMiBps: round(tarRate, 1), ratio: round(oursRate / tarRate, 3) },
    incremental: { level0Secs: l0.map((s) => round(s, 3)), level1Secs: l1.map((s) => round(s, 3)), level1Files: l1files, ratio: round(median(l1) / median(l0), 3) },
    compression: comp,
    loadavg: os.loadavg().map((l) => round(l, 2)),
  }
  console.log(JSON.stringify(result, null, 1))
  if (!args.keep) await rm(base, { recursive: true, force: true })
}

await main()
