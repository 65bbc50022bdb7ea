/*
 * The engine's read paths, record -> dispatch -> reply without sockets (as dispatch.bench.ts does
 * for the memory backend): a fresh engine image in a temp file served as `backend=engine`, one
 * directory of 10,000 files (an htree), then GETATTR of a file, LOOKUP of names in turn, and
 * READDIRPLUS 32 KiB pages (dircount 8192, as nfsprobe asks) both from the start and resuming at
 * the cookies of a whole listing in turn (a continuation must not re-list from the beginning).
 *
 *   npx tsx bench/engine-dispatch.bench.ts [FILTER]     (FILTER: a regexp over the bench names)
 *   ENGINE_BENCH_PROF=FILE node dist/bench/engine-dispatch.bench.js [FILTER]
 *     also writes a V8 CPU profile of the measured part alone (not the image's making) to FILE;
 *   ENGINE_BENCH_PROF_COLD=FILE: one of the first listing alone (cold code, as in a new server).
 *   ENGINE_BENCH_BACKEND=memory: the same calls through the memory backend (names keep "engine"):
 *     what the engine adds to a call is the difference, measured in one sitting.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { startProfile } from './cpu-profile.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeReply, encodeCall } from '../client/rpc/call.ts'
import { NFS_PROGRAM, READDIRPLUS3res } from '../xdr/generated/nfs3.ts'
import type { ProcedureRef } from '../client/rpc/call.ts'
import { dispatch } from '../server/rpc/dispatch.ts'
import { dispatchRig } from './dispatch.bench.ts'
import { measureAsync } from './harness.ts'
import type { Result } from './harness.ts'
import { makeEngineImage } from './targets.ts'

const FILES = 10_000

/** A Result with the process's CPU time (user + system) per call: steadier than wall time on a shared machine. */
export interface CpuResult extends Result {
  cpuUs: number
}

async function measureCpu(name: string, fn: () => Promise<unknown>, ms?: number, batch?: number): Promise<CpuResult> {
  let calls = 0
  const counted = (): Promise<unknown> => {
    calls++
    return fn()
  }
  const before = process.cpuUsage()
  const r = await measureAsync(name, counted, ms, batch)
  const used = process.cpuUsage(before)
  return { ...r, cpuUs: (used.user + used.system) / calls }
}

export async function engineDispatchBenches(only?: RegExp, backend: 'engine' | 'memory' = 'engine'): Promise<CpuResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-engine-micro-'))
  const image = join(dir, 'engine.img')
  if (backend === 'engine') await makeEngineImage(image, 256 * 1024 * 1024)
  const options = backend === 'engine' ? `backend=engine,image=${image}` : 'backend=memory'
  const { backends, exp, vfs, host, env, origin, cred } = await dispatchRig(`/export *(rw,insecure,no_root_squash,${options})`, dir)
  try {
    const procs = NFS_PROGRAM.versions.NFS_V3.procs
    const owner = { uid: 0, gid: 0 }

    // Created 64 at a time: each create waits for its commit, and concurrent ones share it. Each
    // handle is minted as CREATE's reply would (the HMAC is then cached, as in a server that made them).
    const big = await vfs.mkdir(vfs.root(), Buffer.from('big'), {}, owner)
    let made = 0
    const handles: Buffer[] = []
    const worker = async (): Promise<void> => {
      while (made < FILES) handles.push(host.handle(exp.id, (await vfs.create(big.ref, Buffer.from(`file.${made++}`), { how: 'unchecked', attr: {} }, owner)).ref))
    }
    await Promise.all(Array.from({ length: 64 }, worker))
    const bigFh = host.handle(exp.id, big.ref)
    const one = await vfs.lookup(big.ref, Buffer.from('file.1'))
    const oneFh = host.handle(exp.id, one.ref)

    const call = <A>(xid: number, proc: ProcedureRef<A, unknown>, args: A): Buffer => Buffer.concat(encodeCall(xid, NFS_PROGRAM.prog, 3, proc, args, cred))
    const rdpCall = (xid: number, cookie: bigint): Buffer =>
      call(xid, procs.NFSPROC3_READDIRPLUS, { dir: { data: bigFh }, cookie, cookieverf: Buffer.alloc(8), dircount: 8192, maxcount: 32768 })
    // The cookie of every page of one listing, page by page through dispatch, checked against the names made.
    // This first listing runs READDIRPLUS's code cold, as the e2e bench's one listing in a new server does:
    // its dispatch time alone is the "first listing" row (p50: the mean page, p99: the slowest).
    const cookies: bigint[] = []
    const seen = new Set<string>()
    let coldUs = 0
    let coldMaxUs = 0
    const stopColdProfile = await startProfile(process.env.ENGINE_BENCH_PROF_COLD)
    const cpu0 = process.cpuUsage()
    let cpuDecode = 0
    for (let cookie = 0n, xid = 10; ; xid++) {
      cookies.push(cookie)
      const call0 = performance.now()
      const reply = await dispatch(env, rdpCall(xid, cookie), origin)
      const us = (performance.now() - call0) * 1000
      coldUs += us
      coldMaxUs = Math.max(coldMaxUs, us)
      const dec0 = process.cpuUsage()
      if (reply === null) throw new Error('READDIRPLUS produced no reply')
      const res = decodeReply(Buffer.concat(reply), READDIRPLUS3res)
      if (res.status !== 0) throw new Error(`READDIRPLUS status ${res.status}`)
      for (const e of res.resok.reply.entries) {
        seen.add(e.name.toString())
        cookie = e.cookie
      }
      const dec = process.cpuUsage(dec0)
      cpuDecode += dec.user + dec.system
      if (res.resok.reply.eof) break
    }
    const coldCpu = process.cpuUsage(cpu0)
    await stopColdProfile()
    const firstListing: CpuResult = {
      name: `engine READDIRPLUS first listing (${cookies.length} pages, cold), per page`,
      opsPerSec: cookies.length / (coldUs / 1e6), p50us: coldUs / cookies.length, p99us: coldMaxUs,
      cpuUs: (coldCpu.user + coldCpu.system - cpuDecode) / cookies.length,
    }
    if (seen.size !== FILES + 2) throw new Error(`listing gave ${seen.size} names, not ${FILES + 2}`)

    const want = (name: string): boolean => only === undefined || only.test(name)
    const results: CpuResult[] = []
    if (want('READDIRPLUS')) results.push(firstListing)
    const stopProfile = await startProfile(process.env.ENGINE_BENCH_PROF)
    const getattr = call(1, procs.NFSPROC3_GETATTR, { object: { data: oneFh } })
    if (want('GETATTR')) results.push(await measureCpu('engine GETATTR record -> reply', () => dispatch(env, getattr, origin)))
    const getattrs = handles.map((fh, i) => call(60_000 + i, procs.NFSPROC3_GETATTR, { object: { data: fh } }))
    let nextGetattr = 0
    if (want('GETATTR')) results.push(await measureCpu('engine GETATTR (10,000 files in turn)', () => dispatch(env, getattrs[nextGetattr++ % FILES] as Buffer, origin)))
    const lookups = Array.from({ length: FILES }, (_, i) => call(20_000 + i, procs.NFSPROC3_LOOKUP, { what: { dir: { data: bigFh }, name: Buffer.from(`file.${i}`) } }))
    let nextLookup = 0
    if (want('LOOKUP')) results.push(await measureCpu('engine LOOKUP (10,000 names in turn)', () => dispatch(env, lookups[nextLookup++ % FILES] as Buffer, origin)))
    const first = rdpCall(2, 0n)
    if (want('READDIRPLUS')) results.push(await measureCpu('engine READDIRPLUS 32 KiB page at 0', () => dispatch(env, first, origin), 1000, 20))
    const pages = cookies.map((c, i) => rdpCall(40_000 + i, c))
    let nextPage = 0
    if (want('READDIRPLUS')) {
      results.push(await measureCpu(`engine READDIRPLUS 32 KiB page at each of ${pages.length} cookies`, () => dispatch(env, pages[nextPage++ % pages.length] as Buffer, origin), 1000, 20))
    }
    // The engine's part alone: the same pages straight from the vfs (entries with refs and attributes).
    let nextList = 0
    if (want('readdir')) {
      results.push(await measureCpu(`engine vfs.readdir of 200 at each of ${cookies.length} cookies`, () => vfs.readdir(big.ref, cookies[nextList++ % cookies.length] ?? 0n, 200), 1000, 20))
    }
    await stopProfile()
    return results
  } finally {
    await backends.sync([])
    await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const filter = process.argv[2]
  const backend = process.env.ENGINE_BENCH_BACKEND === 'memory' ? 'memory' : 'engine'
  const rows = await engineDispatchBenches(filter === undefined ? undefined : new RegExp(filter), backend)
  const w = Math.max(...rows.map((r) => r.name.length))
  console.log(`${'benchmark'.padEnd(w)}  ${'ops/s'.padStart(9)}  ${'p50 µs'.padStart(9)}  ${'CPU µs/op'.padStart(9)}`)
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${Math.round(r.opsPerSec).toString().padStart(9)}  ${r.p50us.toFixed(1).padStart(9)}  ${r.cpuUs.toFixed(1).padStart(9)}`)
}
