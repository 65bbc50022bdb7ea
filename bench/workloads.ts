/*
 * The workloads of issue 6, driven through our own raw-RPC client
 * (nfs-driver.ts). Each returns one PhaseResult per phase. Everything is
 * created in a fresh work directory at the export root and removed at the
 * end, as nfsprobe does.
 */
import { randomInt } from 'node:crypto'
import type { NfsDriver } from './nfs-driver.ts'
import { pipelined, phaseResult, round } from './results.ts'
import type { PhaseResult } from './results.ts'

export interface WorkloadOptions {
  label: string
  /** Files for meta; files for small. */
  files: number
  smallFiles: number
  /** Requests in flight. */
  inflight: number
  /** seq/rand file size in MiB. */
  sizeMiB: number
  /** seq request size in bytes (capped at the server's rtmax/wtmax). */
  reqSize: number
  /** rand and mixed duration in seconds. */
  seconds: number
  /** seq variants: UNSTABLE + COMMIT, FILE_SYNC, or both. */
  stable: 'unstable' | 'filesync' | 'both'
}

export const WORKLOADS = ['meta', 'seq', 'rand', 'small', 'mixed'] as const
export type Workload = (typeof WORKLOADS)[number]

const MiB = 1024 * 1024
const FOUR_K = 4096
const UNSTABLE = 0
const FILE_SYNC = 2

let serial = 0
function workDirName(mode: string): string {
  return `tsnfs-bench.${mode}.${process.pid}.${serial++}`
}

/** A fixed pseudo-random pattern (so compression or dedup in a server cannot flatter it). */
function pattern(bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes)
  let x = 0x9e3779b9
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    b.writeInt32LE(x | 0, i)
  }
  return b
}

export async function runWorkload(d: NfsDriver, w: Workload, o: WorkloadOptions): Promise<PhaseResult[]> {
  switch (w) {
    case 'meta': return meta(d, o)
    case 'seq': return seq(d, o)
    case 'rand': return rand(d, o)
    case 'small': return small(d, o)
    case 'mixed': return mixed(d, o)
  }
}

async function meta(d: NfsDriver, o: WorkloadOptions): Promise<PhaseResult[]> {
  const k = o.inflight
  const dirName = workDirName('meta')
  const dir = await d.mkdir(d.root, dirName)
  const names = Array.from({ length: o.files }, (_, i) => `f${String(i).padStart(6, '0')}`)
  const handles: Buffer[] = new Array<Buffer>(o.files)
  const out: PhaseResult[] = []
  out.push(phaseResult('meta', 'create', o.label, k, await pipelined(k, async (i) => {
    handles[i] = await d.create(dir, names[i] ?? '')
  }, o.files)))
  out.push(phaseResult('meta', 'getattr', o.label, k, await pipelined(k, (i) => d.getattr(handles[i] ?? dir), o.files)))
  out.push(phaseResult('meta', 'lookup', o.label, k, await pipelined(k, (i) => d.lookup(dir, names[i] ?? ''), o.files)))
  // READDIRPLUS is a chain of cookies: one call at a time; the headline is entries per second.
  let entries = 0
  let cookie = 0n
  let verf = Buffer.alloc(8)
  let eof = false
  const rdp = await pipelined(1, async () => {
    if (eof) return
    const r = await d.readdirplus(dir, cookie, verf)
    verf = Buffer.from(r.resok.cookieverf)
    for (const e of r.resok.reply.entries) {
      entries++
      cookie = e.cookie
    }
    eof = r.resok.reply.eof
  }, Number.MAX_SAFE_INTEGER, undefined, () => eof)
  out.push(phaseResult('meta', 'readdirplus', o.label, 1, rdp, { entries_per_s: round(entries / rdp.secs, 1) }))
  out.push(phaseResult('meta', 'remove', o.label, k, await pipelined(k, (i) => d.remove(dir, names[i] ?? ''), o.files)))
  await d.rmdir(d.root, dirName)
  return out
}

async function seq(d: NfsDriver, o: WorkloadOptions): Promise<PhaseResult[]> {
  const { rtmax, wtmax } = await d.fsinfo()
  const k = o.inflight
  const bytes = o.sizeMiB * MiB
  const out: PhaseResult[] = []
  const variants = o.stable === 'both' ? (['unstable', 'filesync'] as const) : [o.stable]
  for (const stable of variants) {
    const req = Math.min(o.reqSize, wtmax, rtmax)
    const data = pattern(req)
    const n = Math.ceil(bytes / req)
    const name = workDirName('seq')
    const fh = await d.create(d.root, name)
    const how = stable === 'unstable' ? UNSTABLE : FILE_SYNC
    const suffix = stable === 'unstable' ? '' : '-filesync'
    const w = await pipelined(k, (i) => {
      const off = i * req
      return d.write(fh, BigInt(off), off + req <= bytes ? data : data.subarray(0, bytes - off), how)
    }, n)
    if (stable === 'unstable') {
      const t0 = performance.now()
      await d.commit(fh)
      w.secs += (performance.now() - t0) / 1000
    }
    out.push(phaseResult('seq', `write${suffix}`, o.label, k, w, { bytes, mib_per_s: round(bytes / MiB / w.secs, 2), req_size: req, stable }))
    const r = await pipelined(k, (i) => d.read(fh, BigInt(i * req), req), n)
    out.push(phaseResult('seq', `read${suffix}`, o.label, k, r, { bytes, mib_per_s: round(bytes / MiB / r.secs, 2), req_size: req, stable }))
    await d.remove(d.root, name)
  }
  return out
}

async function fillFile(d: NfsDriver, fh: Buffer, bytes: number, k: number): Promise<void> {
  const req = Math.min(MiB, (await d.fsinfo()).wtmax)
  const data = pattern(req)
  await pipelined(k, (i) => d.write(fh, BigInt(i * req), data.subarray(0, Math.min(req, bytes - i * req)), UNSTABLE), Math.ceil(bytes / req))
  await d.commit(fh)
}

async function rand(d: NfsDriver, o: WorkloadOptions): Promise<PhaseResult[]> {
  const name = workDirName('rand')
  const fh = await d.create(d.root, name)
  const bytes = o.sizeMiB * MiB
  await fillFile(d, fh, bytes, o.inflight)
  const blocks = bytes / FOUR_K
  const r = await pipelined(o.inflight, () => d.read(fh, BigInt(randomInt(blocks) * FOUR_K), FOUR_K), Number.MAX_SAFE_INTEGER, o.seconds * 1000)
  await d.remove(d.root, name)
  return [phaseResult('rand', 'randread', o.label, o.inflight, r, { bytes: r.ops * FOUR_K, mib_per_s: round((r.ops * FOUR_K) / MiB / r.secs, 2), req_size: FOUR_K })]
}

/** A source tree or mail spool: many 4 KiB files in 100-file directories, written (FILE_SYNC) and read back. */
async function small(d: NfsDriver, o: WorkloadOptions): Promise<PhaseResult[]> {
  const top = workDirName('small')
  const root = await d.mkdir(d.root, top)
  const perDir = 100
  const dirs: Buffer[] = []
  for (let i = 0; i * perDir < o.smallFiles; i++) dirs.push(await d.mkdir(root, `d${i}`))
  const data = pattern(FOUR_K)
  const dirOf = (i: number): Buffer => dirs[Math.floor(i / perDir)] ?? root
  const nameOf = (i: number): string => `m${i}.txt`
  const k = o.inflight
  const w = await pipelined(k, async (i) => {
    const fh = await d.create(dirOf(i), nameOf(i))
    await d.write(fh, 0n, data, FILE_SYNC)
  }, o.smallFiles)
  const r = await pipelined(k, async (i) => {
    const fh = await d.lookup(dirOf(i), nameOf(i))
    await d.read(fh, 0n, FOUR_K)
  }, o.smallFiles)
  const mib = (n: number, secs: number): number => round((n * FOUR_K) / MiB / secs, 2)
  const out = [
    phaseResult('small', 'write', o.label, k, w, { mib_per_s: mib(w.ops, w.secs), bytes: w.ops * FOUR_K }),
    phaseResult('small', 'read', o.label, k, r, { mib_per_s: mib(r.ops, r.secs), bytes: r.ops * FOUR_K }),
  ]
  await pipelined(k, (i) => d.remove(dirOf(i), nameOf(i)), o.smallFiles)
  for (let i = 0; i < dirs.length; i++) await d.rmdir(root, `d${i}`)
  await d.rmdir(d.root, top)
  return out
}

/** A mix for T seconds: 40% GETATTR, 20% LOOKUP, 20% 4 KiB READ, 10% 4 KiB WRITE, 5% CREATE, 5% REMOVE. */
async function mixed(d: NfsDriver, o: WorkloadOptions): Promise<PhaseResult[]> {
  const top = workDirName('mixed')
  const dir = await d.mkdir(d.root, top)
  const files = 256
  const handles: Buffer[] = []
  for (let i = 0; i < files; i++) {
    const fh = await d.create(dir, `f${i}`)
    await d.write(fh, 0n, pattern(64 * 1024), UNSTABLE)
    handles.push(fh)
  }
  const data = pattern(FOUR_K)
  const pick = (): Buffer => handles[randomInt(files)] ?? dir
  let made = 0
  const live: string[] = []
  const r = await pipelined(o.inflight, async () => {
    const x = randomInt(100)
    if (x < 40) return d.getattr(pick())
    if (x < 60) return d.lookup(dir, `f${randomInt(files)}`)
    if (x < 80) return d.read(pick(), BigInt(randomInt(16) * FOUR_K), FOUR_K)
    if (x < 90) return d.write(pick(), BigInt(randomInt(16) * FOUR_K), data, UNSTABLE)
    const old = x < 95 ? undefined : live.shift()
    if (old !== undefined) return d.remove(dir, old)
    const name = `n${made++}`
    await d.create(dir, name)
    live.push(name)
  }, Number.MAX_SAFE_INTEGER, o.seconds * 1000)
  for (const name of live) await d.remove(dir, name)
  for (let i = 0; i < files; i++) await d.remove(dir, `f${i}`)
  await d.rmdir(d.root, top)
  return [phaseResult('mixed', 'mixed', o.label, o.inflight, r)]
}
