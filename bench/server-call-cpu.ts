/*
 * The server's own CPU per NFS call on the small-file path of cp -a / tar x
 * through a mount (issue 11): per file a CREATE (GUARDED), a 3 KiB FILE_SYNC
 * WRITE and a SETATTR of mode and both times, from a lone raw-RPC client
 * (nfs-driver.ts), K files at a time, against a memory export served by
 * `node BUILD serve` as a child process. The figure is the server process's
 * user + system CPU (/proc/PID/stat) over the measured files divided by the
 * calls: steadier under load than wall time. Several builds are measured in
 * turn, alternating, and the medians printed (bench/README.md, "session 38").
 *
 *   npx tsx bench/server-call-cpu.ts [--runs R] [-N files] [-K inflight] BUILD/dist/cli/main.js...
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { NFS_PROGRAM, time_how } from '../xdr/generated/nfs3.ts'
import { NfsDriver, parseBenchUrl } from './nfs-driver.ts'
import { median } from './results.ts'
import { serveChild } from './targets.ts'
import { cpuOf } from './tree-procs.ts'

const P = NFS_PROGRAM.versions.NFS_V3.procs
const PROG = NFS_PROGRAM.prog
const CALLS_PER_FILE = 3
const WARMUP_FILES = 1000
const FILES_PER_DIR = 500

interface Server {
  pid: number
  url: string
  close(): Promise<void>
}

async function startServer(entry: string): Promise<Server> {
  const stateDir = await mkdtemp(join(tmpdir(), 'tsnfs-callcpu-'))
  const exportsFile = join(stateDir, 'exports')
  await writeFile(exportsFile, '/export *(rw,insecure,no_root_squash,async,backend=memory)\n')
  const { child, port } = await serveChild(entry, exportsFile, stateDir)
  const pid = child.pid
  if (pid === undefined) throw new Error('no pid')
  return {
    pid,
    url: `nfs://127.0.0.1/export?nfsport=${port}&mountport=${port}`,
    async close() {
      const exited = new Promise((ok) => child.once('exit', ok))
      child.kill('SIGTERM')
      await exited
      await rm(stateDir, { recursive: true, force: true })
    },
  }
}

/** One file as cp -a makes it through the mount: CREATE, WRITE FILE_SYNC, SETATTR mode + times. */
async function oneFile(d: NfsDriver, dir: Buffer, name: string, data: Buffer, i: number): Promise<void> {
  const fh = await d.create(dir, name)
  const w = await d.write(fh, 0n, data, 2)
  if (w.status !== 0) throw new Error(`WRITE: status ${w.status}`)
  const s = await d.rpc.call(PROG, 3, P.NFSPROC3_SETATTR, {
    object: { data: fh },
    new_attributes: {
      mode: 0o644, uid: null, gid: null, size: null,
      atime: { set_it: time_how.SET_TO_CLIENT_TIME, atime: { seconds: 1_600_000_000 + i, nseconds: 123_456_789 } },
      mtime: { set_it: time_how.SET_TO_CLIENT_TIME, mtime: { seconds: 1_600_000_000 + i, nseconds: 987_654_321 } },
    },
    guard: null,
  })
  if (s.status !== 0) throw new Error(`SETATTR: status ${s.status}`)
}

async function files(d: NfsDriver, tag: string, n: number, k: number, data: Buffer): Promise<void> {
  let next = 0
  let dir = d.root
  let dirOf = -1
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++
      if (i >= n) return
      const want = Math.floor(i / FILES_PER_DIR)
      // Directories of FILES_PER_DIR, as a source tree has, made before any of their files.
      if (want !== dirOf) {
        dirOf = want
        dir = await d.mkdir(d.root, `${tag}-${want}`)
      }
      await oneFile(d, dir, `f${i}`, data, i)
    }
  }
  await Promise.all(Array.from({ length: k }, worker))
}

/** Server CPU µs per call over n files (after a warm-up in the same server). */
async function measure(entry: string, n: number, k: number): Promise<number> {
  const server = await startServer(entry)
  try {
    const d = await NfsDriver.connect(parseBenchUrl(server.url))
    try {
      const data = Buffer.alloc(3 * 1024, 'x')
      await files(d, 'warm', WARMUP_FILES, k, data)
      const before = cpuOf(server.pid)
      await files(d, 'run', n, k, data)
      const after = cpuOf(server.pid)
      return ((after - before) * 1e6) / (n * CALLS_PER_FILE)
    } finally {
      await d.close()
    }
  } finally {
    await server.close()
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { runs: { type: 'string', default: '3' }, N: { type: 'string', short: 'N', default: '6000' }, K: { type: 'string', short: 'K', default: '1' } },
  })
  const runs = Number(values.runs)
  const n = Number(values.N)
  const k = Number(values.K)
  const builds = positionals.length > 0 ? positionals : [resolve(import.meta.dirname, '..', 'dist', 'cli', 'main.js')]
  const results = new Map<string, number[]>(builds.map(b => [b, []]))
  console.log(`files ${n} (+${WARMUP_FILES} warm-up) x ${CALLS_PER_FILE} calls, ${k} in flight, ${runs} runs alternated`)
  for (let r = 0; r < runs; r++) {
    // Rotate the order each run, so neither build always runs first on a machine whose load drifts.
    for (let j = 0; j < builds.length; j++) {
      const b = builds[(r + j) % builds.length] ?? ''
      const us = await measure(b, n, k)
      results.get(b)?.push(us)
      console.log(`run ${r + 1}  ${b}  server CPU ${us.toFixed(1)} µs/call`)
    }
  }
  const ref = median(results.get(builds[0] ?? '') ?? [])
  for (const b of builds) {
    const m = median(results.get(b) ?? [])
    console.log(`${b.padEnd(50)} median ${m.toFixed(1)} µs/call  (${(m / ref).toFixed(2)} of the first)`)
  }
}

await main()
