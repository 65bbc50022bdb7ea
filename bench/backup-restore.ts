/*
 * Single-file restore from the catalog (issue 16 §6, §9: "< 1 s regardless of backup size"): a
 * level-0 backup by our backup manager over NDMP (our server as data and tape agent, a local
 * export) of a tree with one large file and many small ones, then the restore of one small file
 * (`tsnfs backup restore --path`: catalog plan, DIRECT=y, one MOVER_READ per header/body). Prints
 * the backup size and time (the file history ingest at the job's end included, and its own time
 * from the job log), the restores' seconds (the first right after the backup, then warm ones)
 * and the stream bytes the mover read from tape.
 *
 *   npx tsx bench/backup-restore.ts [--big MiB] [--files N] [--dir DIR] [--keep]
 *
 * Default: a 1 GiB file and 10,000 small files. JSON on stdout at the end.
 */
import { randomFillSync } from 'node:crypto'
import fs from 'node:fs'
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { driversFor } from '../dma/drivers/select.ts'
import { queryLogs } from '../dma/jobs/log.ts'
import { jobsDir } from '../dma/jobs/registry.ts'
import { DmaService } from '../dma/jobs/service.ts'
import { Pool } from '../dma/pool/pool.ts'
import { restoreExport } from '../dma/restore/run.ts'
import { parseExport } from '../dma/schedule/export-spec.ts'
import { startNdmpServer } from '../server/ndmp/server.ts'
import type { NdmpExport } from '../server/ndmp/service-types.ts'
import { LocalVfs } from '../vfs/local/local-vfs.ts'

const MiB = 1024 * 1024
const { values: args } = parseArgs({
  options: {
    big: { type: 'string', default: '1024' },
    files: { type: 'string', default: '10000' },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
})
const bigMiB = Number(args.big)
const small = Number(args.files)
const base = args.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tsnfs-bench-restore-'))

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9
}

function makeTree(dir: string): void {
  fs.mkdirSync(dir, { recursive: true })
  const chunk = Buffer.alloc(MiB)
  randomFillSync(chunk)
  const fd = fs.openSync(path.join(dir, 'big.bin'), 'w')
  for (let i = 0; i < bigMiB; i++) fs.writeSync(fd, chunk)
  fs.closeSync(fd)
  for (let i = 0; i < small; i++) {
    const d = path.join(dir, `d${Math.floor(i / 500)}`)
    if (i % 500 === 0) fs.mkdirSync(d, { recursive: true })
    fs.writeFileSync(path.join(d, `f${i}.txt`), `small file ${i}\n`.repeat(8))
  }
}

function localExport(exportPath: string, dir: string): NdmpExport {
  const vfs = new LocalVfs({ root: dir, stateDir: path.join(base, 'vfs-state', path.basename(dir)) })
  return { path: exportPath, backend: 'local', vfs, root: vfs.root() }
}

async function main(): Promise<void> {
  const src = path.join(base, 'src')
  const dst = path.join(base, 'dst')
  fs.mkdirSync(dst, { recursive: true })
  let t0 = now()
  makeTree(src)
  process.stderr.write(`tree: ${bigMiB} MiB file + ${small} small files in ${(now() - t0).toFixed(1)} s\n`)
  const pool = path.join(base, 'pool')
  await Pool.label(pool, 'B1', { capacity: (bigMiB + 1024) * MiB })
  const exp = localExport('/src', src)
  const out = localExport('/dst', dst)
  const server = await startNdmpServer({ port: 0, host: '127.0.0.1', credentials: new Map([['dma', 'secret']]), exports: () => [exp, out], tapes: [{ name: pool, path: pool }], stateDir: path.join(base, 'srv') })
  const state = path.join(base, 'state')
  const service = await DmaService.open(state, driversFor(state))
  await writeFile(path.join(state, 'ndmp-auth'), '127.0.0.1 dma secret md5\n')
  const exportText = `127.0.0.1:${server.port}:/src`
  try {
    t0 = now()
    const job = await service.wait((await service.start({ name: 'manual', spec: parseExport(exportText), pool, level: 0 })).id)
    const backupS = now() - t0
    if (job.state !== 'done') throw new Error(`backup ${job.state}: ${job.error ?? ''}`)
    const ingestLine = (await queryLogs(jobsDir(state), { job: job.id })).map((l) => l.message).find((m) => m.startsWith('file history in the catalog'))
    const ingestMs = Number(/, (\d+) ms\)$/.exec(ingestLine ?? '')?.[1] ?? Number.NaN)
    process.stderr.write(`backup: ${job.bytes} bytes in ${backupS.toFixed(1)} s; ${ingestLine ?? 'no ingest at the job end'}\n`)
    const pick = `/d${Math.floor(small / 1000)}/f${Math.floor(small / 2)}.txt`
    const restores: Array<{ seconds: number; bytesRead: string; reads: number }> = []
    for (const [i, to] of ['/dst/r1', '/dst/r2', '/dst/r3'].entries()) {
      t0 = now()
      const r = await restoreExport({ stateDir: state, export: exportText, atNs: BigInt(Date.now() + 1000) * 1_000_000n, paths: [pick], to, overwrite: false })
      const s = now() - t0
      if (r.job.state !== 'done') throw new Error(`restore ${r.job.state}: ${r.job.error ?? ''}`)
      const got = fs.readFileSync(path.join(dst, to.slice(5), pick))
      if (!got.equals(fs.readFileSync(path.join(src, pick)))) throw new Error('restored file differs')
      restores.push({ seconds: Math.round(s * 1000) / 1000, bytesRead: String(r.bytesMoved), reads: r.reads })
      process.stderr.write(`restore ${i + 1} of ${pick}${i === 0 ? ' (the first after the backup)' : ''}: ${s.toFixed(3)} s, ${r.bytesMoved} bytes read from tape, ${r.reads} reads\n`)
    }
    process.stdout.write(`${JSON.stringify({ bigMiB, smallFiles: small, backupBytes: job.bytes, backupSeconds: Math.round(backupS * 10) / 10, ingestMs, file: pick, restores })}\n`)
  } finally {
    await server.close()
    if (!args.keep && args.dir === undefined) fs.rmSync(base, { recursive: true, force: true })
  }
}

await main()
