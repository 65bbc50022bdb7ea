/*
 * What a bench run talks to. A target is either a URL (any NFSv3 server:
 * `nfs://127.0.0.1/mem?nfsport=20490&mountport=20048`) or one of our own
 * servers, named `tsnfs-BACKEND` (tsnfs-memory; tsnfs-local once that backend
 * is served), started in this process or, with `process`, as a child
 * `tsnfs serve`. The export list is plain export-file text, so any backend
 * the server knows can be benchmarked without changes here.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { existsSync } from 'node:fs'
import type { Readable } from 'node:stream'
import { parseExports } from '../server/exports/parse.ts'
import { createServer } from '../server/index.ts'
import { ImageFile } from '../vfs/engine/blockdev/image-file.ts'
import { makeFileSystem } from '../vfs/engine/mkfs/mkfs.ts'

export interface Target {
  /** Short name for tables ("A", "tsnfs-memory", …). */
  label: string
  url: string
  close(): Promise<void>
}

export interface TargetOptions {
  /** Run our server as a separate `tsnfs serve` process instead of in this one. */
  process: boolean
  /** Export-list text for our server; default: one export /export on the named backend. */
  exportsText?: string
  /** Directory for a `local` export when no exportsText is given. */
  localDir?: string
  /** Image file for an `engine` export when no exportsText is given (made anew, sparse, by our mkfs). */
  engineImage?: string
  /** Its size in bytes (default 4 GiB). */
  engineImageBytes?: number
  /** Its buffer cache limit (`cache=`, bytes; default: the server's). */
  engineCacheBytes?: number
}

/** The export list a `tsnfs-BACKEND` target serves by default (root may write, as Ganesha's No_Root_Squash). */
const DEFAULT_LOCAL_DIR = '/tmp/tsnfs-bench-local'
/** Same disk as the local export and Ganesha VFS's /tmp/ganesha-vfs/export. */
const DEFAULT_ENGINE_IMAGE = '/tmp/tsnfs-bench-engine.img'
const DEFAULT_ENGINE_IMAGE_BYTES = 4 * 2 ** 30

export function defaultExportsText(backend: string, localDir?: string, engine?: { image: string; cacheBytes?: number }): string {
  if (backend === 'engine') {
    const image = engine?.image ?? DEFAULT_ENGINE_IMAGE
    const cache = engine?.cacheBytes === undefined ? '' : `,cache=${String(engine.cacheBytes)}`
    return `/export  *(rw,insecure,no_root_squash,backend=engine,image=${image}${cache})\n`
  }
  const path = backend === 'local' ? (localDir ?? DEFAULT_LOCAL_DIR) : '/export'
  return `${path}  *(rw,insecure,no_root_squash,async,backend=${backend})\n`
}

/** A fresh, empty engine image: each opening of the target starts from a new file system. */
export async function makeEngineImage(path: string, bytes: number): Promise<void> {
  const dev = await ImageFile.create(path, bytes, { overwrite: true })
  try {
    await makeFileSystem(dev, { zeroed: true, allocateJournal: true })
  } finally {
    await dev.close()
  }
}

export async function openTarget(spec: string, opts: TargetOptions): Promise<Target> {
  if (spec.startsWith('nfs://')) return { label: spec, url: spec, close: () => Promise.resolve() }
  const m = /^tsnfs-([a-z]+)$/.exec(spec)
  if (m === null) throw new Error(`unknown target "${spec}": give an nfs:// URL or tsnfs-BACKEND (e.g. tsnfs-memory)`)
  const backend = m[1] ?? 'memory'
  if (opts.exportsText === undefined && backend === 'local') await mkdir(opts.localDir ?? DEFAULT_LOCAL_DIR, { recursive: true })
  const engine = { image: opts.engineImage ?? DEFAULT_ENGINE_IMAGE, ...(opts.engineCacheBytes === undefined ? {} : { cacheBytes: opts.engineCacheBytes }) }
  if (opts.exportsText === undefined && backend === 'engine') await makeEngineImage(engine.image, opts.engineImageBytes ?? DEFAULT_ENGINE_IMAGE_BYTES)
  const text = opts.exportsText ?? defaultExportsText(backend, opts.localDir, engine)
  const list = parseExports(text, '<bench exports>')
  const first = list.exports[0]
  if (first === undefined) throw new Error('the export list is empty')
  const stateDir = await mkdtemp(join(tmpdir(), 'tsnfs-bench-state-'))
  if (!opts.process) {
    const server = await createServer({ exports: list, stateDir, port: 0, host: '127.0.0.1' })
    return {
      label: spec,
      url: urlFor(first.path, server.port),
      async close() {
        await server.close()
        await rm(stateDir, { recursive: true, force: true })
      },
    }
  }
  return spawnServer(spec, text, first.path, stateDir)
}

function urlFor(path: string, port: number): string {
  return `nfs://127.0.0.1${path}?nfsport=${port}&mountport=${port}`
}

/**
 * `node ENTRY serve --port 0` on 127.0.0.1 (TSNFS_BENCH_NODE_ARGS before ENTRY, e.g. a profiler's
 * flags); resolves once it listens, with the port read from its first line.
 */
export async function serveChild(entry: string, exportsFile: string, stateDir: string): Promise<{ child: ChildProcessByStdio<null, Readable, null>; port: number }> {
  const child = spawn(process.execPath, [...(process.env.TSNFS_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), entry, 'serve',
    '--port', '0', '--host', '127.0.0.1', '--exports', exportsFile, '--state-dir', stateDir, '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((ok, fail) => {
    let seen = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (s: string) => {
      seen += s
      const m = /port (\d+)/.exec(seen)
      if (m !== null) ok(Number(m[1]))
    })
    child.once('exit', (code) => { fail(new Error(`${entry} serve exited (${String(code)}) before listening`)) })
  })
  return { child, port }
}

/** `node dist/cli/main.js serve --port 0`: needs `npm run build`; the port is read from its first line. */
async function spawnServer(label: string, text: string, path: string, stateDir: string): Promise<Target> {
  // From the sources (bench/) the build is ../dist; from the build itself (dist/bench/) it is ..
  const here = import.meta.dirname
  const entry = resolve(here, '..', here.endsWith(join('dist', 'bench')) ? '' : 'dist', 'cli', 'main.js')
  if (!existsSync(entry)) throw new Error(`${entry} not found: run npm run build first`)
  const exportsFile = join(stateDir, 'exports')
  await writeFile(exportsFile, text)
  const { child, port } = await serveChild(entry, exportsFile, stateDir)
  return {
    label,
    url: urlFor(path, port),
    async close() {
      const exited = new Promise((ok) => child.once('exit', ok))
      child.kill('SIGTERM')
      await exited
      await rm(stateDir, { recursive: true, force: true })
    },
  }
}
