/*
 * The engine server's resident memory over a large tree (issue 13 item 7): a fresh image made by
 * our mkfs, a tree of small (empty) files created through one `tsnfs serve` (engine export), then
 * for each buffer-cache limit (`cache=`) a new server on the same image that walks the whole tree
 * (READDIRPLUS of every directory, every page, then GETATTR of every file), sampling VmRSS and
 * VmHWM of the server after opening, after the walk and after a second walk. RSS minus the
 * cache limit is the fixed cost.
 *
 *   npm run build --silent && npx tsx bench/engine-rss.ts [--files 100000] [--per-dir 1000]
 *     [--caches 16m,64m,256m] [--image /tmp/tsnfs-bench-engine-rss.img] [-K 32] [--json]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
import { makeEngineImage } from './targets.ts'
import { rssOf, startServer } from './tree-procs.ts'
import type { ServerProc } from './tree-procs.ts'

const MiB = 2 ** 20

function size(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v)
  if (m === null) throw new Error(`not a size: ${v}`)
  const unit = (m[2] ?? '').toLowerCase()
  return Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? MiB : unit === 'g' ? 1024 * MiB : 1)
}

interface Sample { cacheMiB: number; phase: string; rssMiB: number; peakMiB: number; seconds: number }

async function serve(image: string, cacheBytes: number): Promise<{ server: ServerProc; driver: NfsDriver; cleanup(): Promise<void> }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'tsnfs-engine-rss-'))
  const exportsFile = join(stateDir, 'exports')
  await writeFile(exportsFile, `/export *(rw,insecure,no_root_squash,backend=engine,image=${image},cache=${String(cacheBytes)})\n`)
  const server = await startServer(exportsFile, stateDir)
  const driver = await NfsDriver.connect(parseBenchUrl(`nfs://127.0.0.1/export?nfsport=${String(server.port)}&mountport=${String(server.port)}`))
  return {
    server,
    driver,
    async cleanup() {
      await driver.close()
      await server.stop()
      await rm(stateDir, { recursive: true, force: true })
    },
  }
}

/** Run `n` jobs with at most `k` in flight. */
async function pool(n: number, k: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) await job(next++)
  }
  await Promise.all(Array.from({ length: Math.min(k, n) }, worker))
}

async function walk(d: NfsDriver, dirs: number, k: number): Promise<number> {
  let files = 0
  await pool(dirs, Math.min(k, 8), async (i) => {
    const dir = await d.lookup(d.root, `d${String(i)}`)
    const handles: Buffer[] = []
    let cookie = 0n
    let verf = Buffer.alloc(8)
    for (;;) {
      const r = await d.readdirplus(dir, cookie, verf)
      for (const e of r.resok.reply.entries) {
        cookie = e.cookie
        if (e.name_handle !== null && e.name.toString() !== '.' && e.name.toString() !== '..') handles.push(Buffer.from(e.name_handle.data))
      }
      verf = Buffer.from(r.resok.cookieverf)
      if (r.resok.reply.eof) break
    }
    await pool(handles.length, 4, async (j) => {
      const h = handles[j]
      if (h !== undefined) await d.getattr(h)
    })
    files += handles.length
  })
  return files
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      files: { type: 'string', default: '100000' },
      'per-dir': { type: 'string', default: '1000' },
      caches: { type: 'string', default: '16m,64m,256m' },
      image: { type: 'string', default: '/tmp/tsnfs-bench-engine-rss.img' },
      K: { type: 'string', short: 'K', default: '32' },
      json: { type: 'boolean', default: false },
    },
  })
  const files = Number(values.files)
  const perDir = Number(values['per-dir'])
  const k = Number(values.K)
  const caches = values.caches.split(',').map(size)
  const dirs = Math.ceil(files / perDir)
  const samples: Sample[] = []
  const t0 = Date.now()
  const note = (cacheMiB: number, phase: string, pid: number): void => {
    const s = { cacheMiB, phase, ...rssOf(pid), seconds: (Date.now() - t0) / 1000 }
    samples.push(s)
    process.stderr.write(`${JSON.stringify(s)}\n`)
  }

  await makeEngineImage(values.image, 4 * 1024 * MiB)
  const first = caches[0] ?? 16 * MiB
  const maker = await serve(values.image, first)
  try {
    note(first / MiB, 'empty, opened', maker.server.pid)
    const d = maker.driver
    const dirHandles: Buffer[] = []
    for (let i = 0; i < dirs; i++) dirHandles.push(await d.mkdir(d.root, `d${String(i)}`))
    await pool(files, k, async (i) => {
      const dir = dirHandles[Math.floor(i / perDir)]
      if (dir === undefined) throw new Error(`no directory for file ${String(i)}`)
      await d.create(dir, `f${String(i % perDir)}`)
    })
    note(first / MiB, `created ${String(files)} files`, maker.server.pid)
  } finally {
    await maker.cleanup()
  }

  for (const cache of caches) {
    const s = await serve(values.image, cache)
    try {
      note(cache / MiB, 'opened', s.server.pid)
      const seen = await walk(s.driver, dirs, k)
      if (seen !== files) throw new Error(`walk saw ${String(seen)} files, expected ${String(files)}`)
      note(cache / MiB, 'walked', s.server.pid)
      await walk(s.driver, dirs, k)
      note(cache / MiB, 'walked twice', s.server.pid)
    } finally {
      await s.cleanup()
    }
  }
  await rm(values.image, { force: true })

  if (values.json) {
    for (const s of samples) process.stdout.write(`${JSON.stringify(s)}\n`)
    return
  }
  process.stdout.write(`| cache= | phase | RSS MiB | peak RSS MiB | RSS − cache MiB |\n|---:|---|---:|---:|---:|\n`)
  for (const s of samples) {
    process.stdout.write(`| ${String(s.cacheMiB)}M | ${s.phase} | ${s.rssMiB.toFixed(0)} | ${s.peakMiB.toFixed(0)} | ${(s.rssMiB - s.cacheMiB).toFixed(0)} |\n`)
  }
}

await main()
