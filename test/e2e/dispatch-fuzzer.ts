/*
 * The dispatcher under hostile records, shared by the quick tap sample
 * (fuzz-dispatch.test.ts) and the long run (bench/fuzz.ts): the real program
 * set wired as createServer wires it (PORTMAP, MOUNT v1+v3, NFSv3 over a
 * MemoryVfs), instrumented handlers included, fed real captured calls
 * (test/fixtures/wire, with minted handles patched in) and their mutations.
 * Properties per record: dispatch resolves (never throws, never hangs), and a
 * reply is a well-formed RPC reply for the call's xid whose SUCCESS results
 * decode with the procedure's result codec to the last byte.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { ServerHost, DEFAULT_NFS3_LIMITS } from '../../server/host.ts'
import { BackendSet } from '../../server/backends.ts'
import { ExportTable } from '../../server/exports/table.ts'
import { parseExports } from '../../server/exports/parse.ts'
import type { Logger } from '../../server/logger.ts'
import { silentLogger } from '../../server/logger.ts'
import { CallMetrics } from '../../server/metrics/instrument.ts'
import { createMountProgram } from '../../server/mount/program.ts'
import { ExportMountResolver } from '../../server/mount/mnt.ts'
import { HandleCodec } from '../../server/nfs3/filehandle.ts'
import { createNfs3Program } from '../../server/nfs3/program.ts'
import { createPortmapProgram } from '../../server/portmap/program.ts'
import { PortRegistry } from '../../server/portmap/registry.ts'
import { MAX_UDP_REPLY, dispatch } from '../../server/rpc/dispatch.ts'
import type { DispatchEnv } from '../../server/rpc/dispatch.ts'
import { DuplicateRequestCache } from '../../server/rpc/drc.ts'
import type { RpcProgram, Transport } from '../../server/rpc/program.ts'
import { createStats } from '../../server/rpc/stats.ts'
import { openStateDir, Rmtab, WriteVerifier } from '../../server/state.ts'
import { openLocking } from '../../server/locking.ts'
import { MOUNT_PROGRAM } from '../../xdr/generated/mount.ts'
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import { NLM_PROG, nlm4_statsNames } from '../../xdr/generated/nlm.ts'
import { SM_PROG } from '../../xdr/generated/nsm.ts'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import type { ProgramDef } from '../../xdr/runtime/program.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import { XdrReader } from '../../xdr/runtime/reader.ts'
import { XdrWriter } from '../../xdr/runtime/writer.ts'
import { authsys_parms } from '../../xdr/rpc/auth.ts'
import type { OpaqueAuth } from '../../xdr/rpc/auth.ts'
import { auth_flavor } from '../../xdr/rpc/constants.ts'
import { decodeReplyHeader } from '../../xdr/rpc/reply.ts'
import { FH32, FHDIR } from '../fixtures/wire/data.ts'
import { readFixture } from '../fixtures/wire/check.ts'
import { WIRE_DIR } from '../fixtures/wire/make.ts'
import { lockCallArbitrary, lockSeedCalls } from './lock-calls.ts'
import type { LockHandles } from './lock-calls.ts'

const EXPORTS = `
/export *(rw,insecure,no_root_squash,backend=memory)
/squash *(rw,insecure,root_squash,backend=memory)
/ro     *(ro,insecure,backend=memory)
`
/** A hung handler is a failure, not a stuck run. */
const CASE_TIMEOUT_MS = 5000
/**
 * Where the lock manager's calls back (GRANTED, the *_RES replies, SM_NOTIFY) look for the
 * client's portmapper: port 1 on loopback, where nothing listens, so each is refused at once.
 */
const NO_PORTMAPPER = 1

export interface ProcInfo {
  prog: number
  vers: number
  proc: number
  name: string
  args: Codec<unknown>
  res: Codec<unknown>
}

export interface Seed {
  name: string
  proc: ProcInfo
  /** The captured argument body, with minted handles in place of the fixture's. */
  args: Buffer
}

export interface Outcome {
  ok: boolean
  /** 'SUCCESS', 'GARBAGE_ARGS', 'AUTH_ERROR', 'none' (no reply) ... or the failure. */
  kind: string
}

export interface Tally {
  cases: number
  failures: number
  byKind: Record<string, number>
  /** Handlers that threw, encoders that failed: logged as errors by the dispatcher. */
  internalErrors: number
  firstFailure: string | null
  /** What the lock manager answered (NLM4_GRANTED, NLM4_DENIED, ...): evidence that the calls reached the lock table. */
  lockStats: Record<string, number>
}

const procTable = (): Map<string, ProcInfo> => {
  const out = new Map<string, ProcInfo>()
  const programs: ProgramDef[] = [PMAP_PROG, MOUNT_PROGRAM, NFS_PROGRAM, NLM_PROG, SM_PROG]
  for (const p of programs) {
    for (const v of Object.values(p.versions)) {
      for (const d of Object.values(v.procs)) {
        out.set(`${String(p.prog)}/${String(v.vers)}/${String(d.proc)}`, { prog: p.prog, vers: v.vers, proc: d.proc, name: `${v.name}.${d.name}`, args: d.args as Codec<unknown>, res: d.res as Codec<unknown> })
      }
    }
  }
  return out
}

export class DispatchFuzzer {
  readonly procs = procTable()
  readonly seeds: Seed[]
  /** The handles the lock calls name (set with the seeds). */
  handles: LockHandles = { file: Buffer.alloc(0), dir: Buffer.alloc(0) }
  readonly tally: Tally = { cases: 0, failures: 0, byKind: {}, internalErrors: 0, firstFailure: null, lockStats: {} }
  private readonly env: DispatchEnv
  private readonly log: Logger
  private readonly abort = new AbortController()
  private readonly cleanup: () => Promise<void>

  /** The lock table's counts (held ranges, waiters, shares, files): bounded whatever the calls. */
  lockTableSize: () => { held: number; waiting: number; shares: number; files: number } = () => ({ held: 0, waiting: 0, shares: 0, files: 0 })

  private constructor(env: DispatchEnv, seeds: Seed[], log: Logger, cleanup: () => Promise<void>) {
    this.env = env
    this.seeds = seeds
    this.log = log
    this.cleanup = cleanup
  }

  static async create(): Promise<DispatchFuzzer> {
    const stateDir = mkdtempSync(join(tmpdir(), 'tsnfs-fuzz-'))
    let internal = 0
    const log: Logger = {
      ...silentLogger,
      error: () => {
        internal++
      },
      child: () => log,
    }
    const list = parseExports(EXPORTS, 'fuzz-exports')
    const state = await openStateDir(stateDir)
    const rmtab = await Rmtab.open(stateDir, log)
    const table = new ExportTable(list)
    const backends = new BackendSet({ stateDir })
    await backends.sync(table.all())
    const host = new ServerHost(table, backends, new HandleCodec(state.handleKey), new WriteVerifier(), DEFAULT_NFS3_LIMITS)
    const registry = new PortRegistry()
    const mount = createMountProgram({ resolver: new ExportMountResolver(table, backends, host), rmtab, exportsList: () => table.list(), log })
    const nfs3 = createNfs3Program(host)
    const portmap = createPortmapProgram(registry)
    // NLM and NSM as `tsnfs serve` runs them, without a grace period (so locks are granted at once)
    // and with short retries of the calls back, which all fail (NO_PORTMAPPER).
    const locking = await openLocking({
      nsm: { name: 'fuzz-server', peerPortmapPort: NO_PORTMAPPER, callTimeoutMs: 200, notifyFirstRetryMs: 100, notifyMaxRetryMs: 500, notifyGiveUpMs: 2000, portCache: null },
      nlm: { graceMs: 0, grantRetryMs: 100, grantMaxRetryMs: 500 },
    }, host, stateDir, log)
    const all = [portmap, mount, nfs3, ...locking.programs]
    registry.registerAll(all, 2049)
    const metrics = new CallMetrics()
    const programs = new Map<number, RpcProgram>(all.map((p) => [p.prog, metrics.instrument(p)]))
    const env: DispatchEnv = { programs, drc: new DuplicateRequestCache({ max: 16_384, ttlMs: 120_000 }), stats: createStats() }
    const fuzzer = new DispatchFuzzer(env, [], log, async () => {
      await locking.close()
      await backends.close()
      rmSync(stateDir, { recursive: true, force: true })
    })
    Object.defineProperty(fuzzer.tally, 'internalErrors', { get: () => internal, enumerable: true })
    fuzzer.lockTableSize = () => locking.nlm.table.size
    fuzzer.seeds.push(...(await fuzzer.loadSeeds()))
    return fuzzer
  }

  close(): Promise<void> {
    this.abort.abort()
    return this.cleanup()
  }

  get drcSize(): number {
    return this.env.drc.size
  }

  /** Mint real handles (the export root, a file, a directory) and patch them into the captured calls. */
  private async loadSeeds(): Promise<Seed[]> {
    const P3 = NFS_PROGRAM.versions.NFS_V3.procs
    const M3 = MOUNT_PROGRAM.versions.MOUNT_V3.procs
    const call = async <A, R>(prog: number, vers: number, p: { proc: number; args: Codec<A>; res: Codec<R> }, args: A): Promise<R> => {
      const reply = await dispatch(this.env, record(1, prog, vers, p.proc, ROOT_CRED, encodeToBuffer(p.args, args)), this.origin('tcp'))
      const r = new XdrReader(Buffer.concat(reply ?? []))
      decodeReplyHeader(r)
      return p.res.decode(r)
    }
    const mnt = await call(MOUNT_PROGRAM.prog, 3, M3.MOUNTPROC3_MNT, Buffer.from('/export'))
    if (mnt.fhs_status !== 0) throw new Error(`fuzz setup: MNT ${String(mnt.fhs_status)}`)
    const root = Buffer.from(mnt.mountinfo.fhandle)
    const made = await call(NFS_PROGRAM.prog, 3, P3.NFSPROC3_CREATE, {
      where: { dir: { data: root }, name: Buffer.from('a.txt') },
      how: { mode: 0, obj_attributes: { mode: 0o644, uid: null, gid: null, size: null, atime: { set_it: 0 }, mtime: { set_it: 0 } } },
    })
    if (made.status !== 0 || made.resok.obj === null) throw new Error('fuzz setup: CREATE failed')
    const file = Buffer.from(made.resok.obj.data)
    if (file.length !== 32 || root.length !== 32) throw new Error('fuzz setup: handles are not 32 bytes')
    const byFile: Record<string, ProcInfo[]> = {
      portmap: [...this.procs.values()].filter((p) => p.prog === PMAP_PROG.prog),
      mount3: [...this.procs.values()].filter((p) => p.prog === MOUNT_PROGRAM.prog && p.vers === 3),
      mount1: [...this.procs.values()].filter((p) => p.prog === MOUNT_PROGRAM.prog && p.vers === 1),
      nfs3: [...this.procs.values()].filter((p) => p.prog === NFS_PROGRAM.prog),
    }
    const seeds: Seed[] = []
    this.handles = { file, dir: root }
    for (const c of lockSeedCalls(this.handles)) {
      const proc = this.procs.get(`${String(c.prog)}/${String(c.vers)}/${String(c.proc)}`)
      if (proc === undefined) throw new Error(`fuzz setup: no procedure for ${c.name}`)
      seeds.push({ name: `lock-${String(c.vers)}-${c.name}`, proc, args: c.args })
    }
    for (const f of readdirSync(WIRE_DIR).filter((n) => /-call(-[\w]+)?\.hex$/.test(n))) {
      const [prog = '', proc = ''] = f.split('-')
      const info = byFile[prog]?.find((p) => p.name.toLowerCase().endsWith(`_${proc}`))
      if (info === undefined) throw new Error(`fuzz setup: no procedure for ${f}`)
      seeds.push({ name: f.slice(0, -4), proc: info, args: patch(patch(readFixture(f.slice(0, -4)), FH32, file), FHDIR, root) })
    }
    return seeds
  }

  private origin(transport: Transport): Parameters<typeof dispatch>[2] {
    return { peer: { address: '127.0.0.1', port: 800, family: 'IPv4' }, transport, signal: this.abort.signal, log: this.log }
  }

  /** Dispatch one record and check the reply; counts into `tally`. */
  async run(rec: Buffer, transport: Transport): Promise<Outcome> {
    const out = await this.check(rec, transport)
    this.tally.cases++
    this.tally.byKind[out.kind] = (this.tally.byKind[out.kind] ?? 0) + 1
    if (!out.ok) {
      this.tally.failures++
      this.tally.firstFailure ??= `${out.kind} (record ${rec.subarray(0, 64).toString('hex')}${rec.length > 64 ? '…' : ''}, ${String(rec.length)} bytes)`
    }
    return out
  }

  private countLockStat(res: unknown): void {
    const code = lockStatOf(res)
    if (code === undefined) return
    // The versions share the first five codes' meanings; version 4's names stand for all.
    const name = nlm4_statsNames[code] ?? String(code)
    this.tally.lockStats[name] = (this.tally.lockStats[name] ?? 0) + 1
  }

  private async check(rec: Buffer, transport: Transport): Promise<Outcome> {
    let timer: NodeJS.Timeout | undefined
    let reply: Buffer[] | null
    try {
      const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(resolve, CASE_TIMEOUT_MS, 'hung')))
      const r = await Promise.race([dispatch(this.env, rec, this.origin(transport)), hung])
      if (r === 'hung') return { ok: false, kind: `no answer within ${String(CASE_TIMEOUT_MS)} ms` }
      reply = r
    } catch (err) {
      return { ok: false, kind: `dispatch threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}` }
    } finally {
      clearTimeout(timer)
    }
    if (reply === null) return { ok: true, kind: 'none' }
    const bytes = Buffer.concat(reply)
    if (transport === 'udp' && bytes.length > MAX_UDP_REPLY) return { ok: false, kind: `UDP reply of ${String(bytes.length)} bytes` }
    const r = new XdrReader(bytes)
    try {
      const h = decodeReplyHeader(r)
      if (rec.length >= 4 && h.xid !== rec.readUInt32BE(0)) return { ok: false, kind: `reply xid ${String(h.xid)} for call ${String(rec.readUInt32BE(0))}` }
      if (h.kind !== 'SUCCESS') {
        r.done()
        return { ok: true, kind: h.kind }
      }
      const p = this.procs.get(`${String(rec.readUInt32BE(12))}/${String(rec.readUInt32BE(16))}/${String(rec.readUInt32BE(20))}`)
      if (p === undefined) return { ok: false, kind: 'SUCCESS for a procedure that does not exist' }
      const res = p.res.decode(r)
      r.done()
      if (p.prog === NLM_PROG.prog) this.countLockStat(res)
      return { ok: true, kind: 'SUCCESS' }
    } catch (err) {
      return { ok: false, kind: `malformed reply: ${(err as Error).message}` }
    }
  }
}

function lockStatOf(res: unknown): number | undefined {
  // nlm_res and nlm4_res: stat.stat; the test replies: test_stat.stat; the share replies: stat.
  const v = res as { stat?: number | { stat: number }; test_stat?: { stat: number } } | undefined
  if (v === undefined) return undefined
  return typeof v.stat === 'number' ? v.stat : v.stat?.stat ?? v.test_stat?.stat
}

function patch(buf: Buffer, from: Buffer, to: Buffer): Buffer {
  const out = Buffer.from(buf)
  for (let at = out.indexOf(from); at !== -1; at = out.indexOf(from, at + to.length)) to.copy(out, at)
  return out
}

const sys = (uid: number, gid: number, gids: number[]): OpaqueAuth => ({
  flavor: auth_flavor.AUTH_SYS,
  body: encodeToBuffer(authsys_parms, { stamp: 1, machinename: 'fuzz', uid, gid, gids }),
})
export const ROOT_CRED = sys(0, 0, [])

/** A CALL record: header words, credential, AUTH_NONE verifier, argument body. */
export function record(xid: number, prog: number, vers: number, proc: number, cred: OpaqueAuth, args: Buffer): Buffer {
  const w = new XdrWriter(64)
  for (const v of [xid, 0, 2, prog, vers, proc, cred.flavor]) w.u32(v >>> 0)
  w.opaque(cred.body)
  w.u32(0)
  w.u32(0)
  return Buffer.concat([w.toBuffer(), args])
}

// ---- arbitraries -------------------------------------------------------

/** Words that make decoders take unusual paths: bools, small counts, sign and length edges. */
export const interestingWord = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 4 }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 1100 }) },
  { weight: 2, arbitrary: fc.constantFrom(0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffc, 0xffff_fffd, 0x0010_0000, 0x0100_0000, 65_536, 65_535, 8192, 32_768) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff_ffff }) },
)

const creds = fc.oneof(
  { weight: 5, arbitrary: fc.constant(ROOT_CRED) },
  { weight: 2, arbitrary: fc.constant(sys(1000, 1000, [0, 100])) },
  { weight: 2, arbitrary: fc.constant<OpaqueAuth>({ flavor: auth_flavor.AUTH_NONE, body: Buffer.alloc(0) }) },
  { weight: 1, arbitrary: fc.record({ flavor: fc.constantFrom(0, 1, 2, 3, 6, 390_003), body: fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)) }) },
)

export type Mutation =
  | { kind: 'as-is' }
  | { kind: 'flip'; at: number; bits: number }
  | { kind: 'cut'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'word'; at: number; value: number }
  | { kind: 'words'; at: number; values: number[] }
  | { kind: 'deep'; at: number; count: number; stride: number }

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'as-is' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bits: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('word' as const), at: fc.nat(), value: interestingWord }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('words' as const), at: fc.nat(), values: fc.array(interestingWord, { minLength: 2, maxLength: 12 }) }) },
  // Long lists: TRUE markers (value follows) repeated, as an entry list or a groups list would be.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deep' as const), at: fc.nat(), count: fc.constantFrom(1000, 20_000, 100_000), stride: fc.integer({ min: 1, max: 4 }) }) },
)

/**
 * Mutations of a body that is mostly left whole (as-is four times in thirteen): the NDMP and
 * replication fuzzers, whose sessions need most messages to reach the handlers.
 */
export const bodyMutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Mutation>({ kind: 'as-is' }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bits: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('word' as const), at: fc.nat(), value: interestingWord }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('words' as const), at: fc.nat(), values: fc.array(interestingWord, { minLength: 2, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deep' as const), at: fc.nat(), count: fc.constantFrom(1000, 20_000), stride: fc.integer({ min: 1, max: 4 }) }) },
)

/** XDR words (unsigned 32-bit, big-endian) as a body. */
export function words(ws: readonly number[]): Buffer {
  const b = Buffer.alloc(ws.length * 4)
  ws.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4))
  return b
}

export function mutate(b: Buffer, m: Mutation): Buffer {
  switch (m.kind) {
    case 'as-is':
      return b
    case 'flip': {
      const out = Buffer.from(b)
      if (out.length === 0) return out
      for (let i = 0; i < m.bits; i++) {
        const bit = (m.at + i * 2_654_435_761) % (out.length * 8)
        out[bit >> 3] = (out[bit >> 3] ?? 0) ^ (1 << (bit & 7))
      }
      return out
    }
    case 'cut':
      return b.subarray(0, b.length === 0 ? 0 : m.at % b.length)
    case 'append':
      return Buffer.concat([b, m.bytes])
    case 'word':
    case 'words': {
      const out = Buffer.from(b)
      const values = m.kind === 'word' ? [m.value] : m.values
      const nwords = out.length >> 2
      if (nwords === 0) return Buffer.concat([out, ...values.map(word)])
      values.forEach((v, i) => {
        const at = ((m.at + i) % nwords) * 4
        out.writeUInt32BE(v >>> 0, at)
      })
      return out
    }
    case 'deep': {
      const at = (b.length >> 2) === 0 ? 0 : (m.at % ((b.length >> 2) + 1)) * 4
      const unit = Buffer.alloc(4 * (1 + m.stride))
      unit.writeUInt32BE(1, 0)
      return Buffer.concat([b.subarray(0, at), Buffer.alloc(unit.length * m.count, unit), b.subarray(at)])
    }
  }
}

function word(v: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(v >>> 0, 0)
  return b
}

export interface FuzzCase {
  rec: Buffer
  transport: Transport
}

/** Captured calls with mutated arguments (most), mutated headers, and records of random words. */
export function caseArbitrary(f: DispatchFuzzer): fc.Arbitrary<FuzzCase> {
  const xid = fc.integer({ min: 0, max: 0xffff_ffff })
  const transport = fc.constantFrom<Transport>('tcp', 'tcp', 'udp')
  const procs = [...f.procs.values()]
  const seeded = fc
    .tuple(xid, fc.constantFrom(...f.seeds), creds, mutation, transport)
    .map(([x, s, cred, m, tr]) => ({ rec: record(x, s.proc.prog, s.proc.vers, s.proc.proc, cred, mutate(s.args, m)), transport: tr }))
  // The whole record mutated, header included: rpcvers, msg type, credential lengths, program numbers.
  const header = fc
    .tuple(xid, fc.constantFrom(...f.seeds), creds, mutation, transport)
    .map(([x, s, cred, m, tr]) => ({ rec: mutate(record(x, s.proc.prog, s.proc.vers, s.proc.proc, cred, s.args), m), transport: tr }))
  // Random words as the arguments of a random procedure (or one that does not exist).
  const randomArgs = fc
    .tuple(xid, fc.oneof(fc.constantFrom(...procs), fc.record({ prog: fc.constantFrom(100000, 100003, 100005, 100021, 100024, 7), vers: fc.integer({ min: 0, max: 5 }), proc: fc.integer({ min: 0, max: 30 }) })), creds, fc.array(interestingWord, { maxLength: 80 }), transport)
    .map(([x, p, cred, ws, tr]) => ({ rec: record(x, p.prog, p.vers, p.proc, cred, Buffer.concat(ws.map(word))), transport: tr }))
  const bytes = fc.tuple(fc.uint8Array({ maxLength: 200 }), transport).map(([a, tr]) => ({ rec: Buffer.from(a), transport: tr }))
  // Lock calls that mostly decode (few owners, files and ranges: they meet in the table), some mutated.
  const locks = fc
    .tuple(xid, lockCallArbitrary(f.handles), creds, fc.oneof({ weight: 4, arbitrary: fc.constant<Mutation>({ kind: 'as-is' }) }, { weight: 1, arbitrary: mutation }), transport)
    .map(([x, c, cred, m, tr]) => ({ rec: record(x, c.prog, c.vers, c.proc, cred, mutate(c.args, m)), transport: tr }))
  return fc.oneof({ weight: 12, arbitrary: seeded }, { weight: 4, arbitrary: header }, { weight: 3, arbitrary: randomArgs }, { weight: 1, arbitrary: bytes }, { weight: 4, arbitrary: locks })
}
