/*
 * Compression over NDMP end to end (issue 16 §9): our manager (dma/) backs up a memory export of
 * our NDMP server (a frozen copy, ADDR_LOCAL to our own mover and tape service, a pool tape file)
 * with COMPRESS unset, gzip and brotli, runs interleaved; medians of the job's wall time. The rate
 * is of the uncompressed tar stream (MiB/s), the ratio tape bytes / stream bytes. The data is the
 * backup bench's: per MiB, half random bytes and half log-like text, in 16 MiB files.
 *
 *   npx tsx bench/ndmp-compress.ts [--data MiB] [--runs N]     (default 256 MiB, 3 runs)
 */
import { randomFillSync } from 'node:crypto'
import fs from 'node:fs'
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { driversFor } from '../dma/drivers/select.ts'
import { DmaService } from '../dma/jobs/service.ts'
import { Pool } from '../dma/pool/pool.ts'
import { parseExport } from '../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../server/ndmp/server.ts'
import { snapshotOf } from '../server/ndmp/exports.ts'
import type { NdmpExport } from '../server/ndmp/service-types.ts'
import { MemoryVfs } from '../vfs/memory/memory-vfs.ts'
import { median, round } from './results.ts'

const MiB = 1024 * 1024
const { values: args } = parseArgs({ options: { data: { type: 'string', default: '256' }, runs: { type: 'string', default: '3' } } })
const dataMiB = Number(args.data)
const runs = Number(args.runs)

async function fill(vfs: MemoryVfs): Promise<number> {
  const chunk = Buffer.alloc(MiB)
  let text = ''
  for (let i = 0; text.length < MiB / 2; i++) text += `line ${i} of a log file, status=${i % 7 === 0 ? 'warn' : 'ok'} took ${(i * 37) % 1000} ms\n`
  chunk.write(text.slice(0, MiB / 2), MiB / 2, 'latin1')
  let bytes = 0
  for (let f = 0; f < Math.max(1, dataMiB / 16); f++) {
    const { ref } = await vfs.create(vfs.root(), Buffer.from(`big-${f}.bin`), { how: 'unchecked', attr: { mode: 0o644 } }, { uid: 0, gid: 0 })
    for (let m = 0; m < 16; m++) {
      randomFillSync(chunk, 0, MiB / 2)
      await vfs.write(ref, BigInt(m * MiB), chunk, 'unstable')
      bytes += MiB
    }
  }
  return bytes
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-bench-ndmpz-'))
  try {
    const vfs = new MemoryVfs()
    const bytes = await fill(vfs)
    const snapshot = snapshotOf(vfs)
    const exp: NdmpExport = { path: '/mem', backend: 'memory', vfs, root: vfs.root(), ...(snapshot === undefined ? {} : { snapshot }) }
    const pool = path.join(dir, 'pool')
    const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'pw']]), exports: () => [exp], tapes: [{ name: pool, path: pool }], stateDir: path.join(dir, 'srv') })
    const state = path.join(dir, 'state')
    const service = await DmaService.open(state, driversFor(state))
    await writeFile(path.join(state, 'ndmp-auth'), '127.0.0.1 dma pw\n')
    const kinds = ['none', 'gzip', 'brotli'] as const
    const secs: Record<string, number[]> = { none: [], gzip: [], brotli: [] }
    const tape: Record<string, number> = {}
    let label = 0
    for (let r = 0; r < runs; r++) {
      for (const how of kinds) {
        const l = `B${String(++label).padStart(3, '0')}`
        await Pool.label(pool, l, { capacity: 8 * 1024 * MiB })
        const t0 = performance.now()
        const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(`127.0.0.1:${server.port}:/mem`), pool, level: 0, ...(how === 'none' ? {} : { compress: how }) })).id)
        const s = (performance.now() - t0) / 1000
        if (job.state !== 'done') throw new Error(`job ${job.id}: ${job.error ?? job.state}`)
        secs[how]?.push(s)
        tape[how] = job.bytes
        fs.rmSync(path.join(pool, `${l}.tape`), { force: true })
        process.stderr.write(`run ${r + 1} ${how}: ${round(s, 2)} s, ${job.bytes} bytes moved\n`)
      }
    }
    await server.close()
    const rows = kinds.map((how) => {
      const m = median(secs[how] ?? [])
      return { compress: how, seconds: round(m, 2), mibPerSec: round(bytes / MiB / m, 1), ratio: round((tape[how] ?? 0) / bytes, 3) }
    })
    for (const r of rows) process.stdout.write(`| ${r.compress} | ${r.seconds} s | ${r.mibPerSec} MiB/s | ${r.ratio} |\n`)
    process.stdout.write(`${JSON.stringify({ dataMiB, runs, rows })}\n`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

await main()
