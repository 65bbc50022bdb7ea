/*
 * Two builds' READDIRPLUS (or the backend's readdir alone) in one process, measured in interleaved
 * slices: on a machine other work shares, separate runs of engine-dispatch.bench.js swing more than
 * the differences worth finding, while slices a few hundred milliseconds apart see the same load.
 * Each build (a tree with dist/, e.g. main's `git archive` built beside this one) gets its own
 * rig: a backend with one directory of FILES files, pages of 32 KiB (dircount 8192, as nfsprobe
 * asks) resuming at each cookie of a whole listing in turn. Prints each build's CPU µs per call
 * and the per-pair ratio B/A. The rig made second came out 3–16 % cheaper even against its own
 * build (bench/README.md, session 40): run both orders and read the two ratios together.
 *
 *   npx tsx bench/paired-readdirplus.ts DIST_ROOT_A DIST_ROOT_B [ROUNDS] [SLICE_MS]   (roots: trees with dist/ built)
 *   env BACKEND=engine|memory (or BACKEND_A, BACKEND_B apart), FILES=10000, WHAT=rdp|readdir
 */
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type * as CallModule from '../client/rpc/call.ts'
import type * as DispatchModule from '../server/rpc/dispatch.ts'
import type * as Nfs3Module from '../xdr/generated/nfs3.ts'
import type * as DispatchBenchModule from './dispatch.bench.ts'
import type * as TargetsModule from './targets.ts'

interface Rig {
  op: () => Promise<unknown>
  /** CPU µs per page of the first listing (cold code), the client's decoding included. */
  coldUs: number
  pages: number
}

async function rig(root: string, backend: string, files: number, what: string): Promise<Rig> {
  // Each build's own modules, typed as this tree's (the builds compared differ inside, not in these).
  const m = async (p: string): Promise<unknown> => import(join(root, 'dist', p))
  const { dispatchRig } = (await m('bench/dispatch.bench.js')) as typeof DispatchBenchModule
  const { makeEngineImage } = (await m('bench/targets.js')) as typeof TargetsModule
  const { dispatch } = (await m('server/rpc/dispatch.js')) as typeof DispatchModule
  const { encodeCall, decodeReply } = (await m('client/rpc/call.js')) as typeof CallModule
  const { NFS_PROGRAM, READDIRPLUS3res } = (await m('xdr/generated/nfs3.js')) as typeof Nfs3Module
  const dir = await mkdtemp(join(tmpdir(), 'tsnfs-paired-'))
  const image = join(dir, 'engine.img')
  if (backend === 'engine') await makeEngineImage(image, 256 * 1024 * 1024)
  const options = backend === 'engine' ? `backend=engine,image=${image}` : 'backend=memory'
  const { vfs, host, exp, env, origin, cred } = await dispatchRig(`/export *(rw,insecure,no_root_squash,${options})`, dir)
  const owner = { uid: 0, gid: 0 }
  const big = await vfs.mkdir(vfs.root(), Buffer.from('big'), {}, owner)
  let made = 0
  const worker = async (): Promise<void> => {
    while (made < files) await vfs.create(big.ref, Buffer.from(`file.${made++}`), { how: 'unchecked', attr: {} }, owner)
  }
  await Promise.all(Array.from({ length: 64 }, worker))
  const bigFh = host.handle(exp.id, big.ref)
  const procs = NFS_PROGRAM.versions.NFS_V3.procs
  const call = (xid: number, cookie: bigint): Buffer =>
    Buffer.concat(encodeCall(xid, NFS_PROGRAM.prog, 3, procs.NFSPROC3_READDIRPLUS, { dir: { data: bigFh }, cookie, cookieverf: Buffer.alloc(8), dircount: 8192, maxcount: 32768 }, cred))
  const cookies: bigint[] = []
  const cpu0 = process.cpuUsage()
  for (let cookie = 0n, xid = 10; ; xid++) {
    cookies.push(cookie)
    const reply = await dispatch(env, call(xid, cookie), origin)
    if (reply === null) throw new Error('READDIRPLUS produced no reply')
    const res = decodeReply(Buffer.concat(reply), READDIRPLUS3res)
    if (res.status !== 0) throw new Error(`READDIRPLUS status ${String(res.status)}`)
    for (const e of res.resok.reply.entries) cookie = e.cookie
    if (res.resok.reply.eof) break
  }
  const cold = process.cpuUsage(cpu0)
  const pages = cookies.map((c, i) => call(40_000 + i, c))
  let next = 0
  const op = what === 'readdir'
    ? (): Promise<unknown> => vfs.readdir(big.ref, cookies[next++ % cookies.length] ?? 0n, 200)
    : (): Promise<unknown> => dispatch(env, pages[next++ % pages.length] as Buffer, origin)
  return { op, coldUs: (cold.user + cold.system) / cookies.length, pages: cookies.length }
}

/** CPU µs per call over one slice of `ms`. */
async function slice(r: Rig, ms: number): Promise<number> {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let n = 0
  while (performance.now() - t0 < ms) {
    for (let i = 0; i < 10; i++) await r.op()
    n += 10
  }
  const used = process.cpuUsage(cpu0)
  return (used.user + used.system) / n
}

function median(xs: readonly number[]): number {
  return [...xs].sort((p, q) => p - q)[xs.length >> 1] ?? NaN
}

function range(xs: readonly number[], digits = 0): string {
  return `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const [a, b] = [process.argv[2], process.argv[3]]
  if (a === undefined || b === undefined) throw new Error('usage: paired-readdirplus DIST_ROOT_A DIST_ROOT_B [ROUNDS] [SLICE_MS]')
  const rounds = Number(process.argv[4] ?? 20)
  const sliceMs = Number(process.argv[5] ?? 200)
  const backend = process.env.BACKEND ?? 'engine'
  const files = Number(process.env.FILES ?? 10_000)
  const what = process.env.WHAT ?? 'rdp'
  const ra = await rig(a, process.env.BACKEND_A ?? backend, files, what)
  const rb = await rig(b, process.env.BACKEND_B ?? backend, files, what)
  console.log(`first listing (cold, decoding included), CPU µs per page: A ${ra.coldUs.toFixed(0)}, B ${rb.coldUs.toFixed(0)} (${ra.pages} pages)`)
  for (let i = 0; i < 3; i++) {
    await slice(ra, sliceMs)
    await slice(rb, sliceMs)
  }
  const xa: number[] = []
  const xb: number[] = []
  // Alternate which goes first in a pair, so neither always follows the other's garbage.
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      xa.push(await slice(ra, sliceMs))
      xb.push(await slice(rb, sliceMs))
    } else {
      xb.push(await slice(rb, sliceMs))
      xa.push(await slice(ra, sliceMs))
    }
  }
  const ratios = xa.map((x, i) => (xb[i] ?? NaN) / x)
  console.log(`${what} CPU µs per call: A ${median(xa).toFixed(1)} [${range(xa)}], B ${median(xb).toFixed(1)} [${range(xb)}]; B/A per pair ${median(ratios).toFixed(3)} [${range(ratios, 2)}]`)
  process.exit(0)
}
