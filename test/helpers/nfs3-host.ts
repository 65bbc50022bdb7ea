/*
 * A test Nfs3Host over MemoryVfs exports, with a trivial 16-byte handle
 * (export id u32, file id u64, generation u32), a settable user and
 * read-only flag, and a typed way to call the program's handlers directly.
 */
import type { Test } from 'tap'
import { NFS_PROGRAM, nfsstat3, nfsstat3Names } from '../../xdr/generated/nfs3.ts'
import type { nfs_fh3, sattr3 } from '../../xdr/generated/nfs3.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import type { ArgsOf, ResOf } from '../../xdr/runtime/program.ts'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import type { FileRef, Owner, Vfs } from '../../vfs/types.ts'
import { silentLogger } from '../../server/logger.ts'
import type { Nfs3Host, Nfs3Limits, Nfs3User, ResolveFailure, Resolved } from '../../server/nfs3/host.ts'
import { createNfs3Program } from '../../server/nfs3/program.ts'
import type { CallContext, RpcProgram, Transport } from '../../server/rpc/program.ts'

export const b = (s: string): Buffer => Buffer.from(s)

export const ROOT: Nfs3User = { uid: 0, gid: 0, gids: [] }
export const ALICE: Nfs3User = { uid: 1000, gid: 1000, gids: [1000] }
export const BOB: Nfs3User = { uid: 1001, gid: 1001, gids: [1001] }

export const TCP_LIMITS: Nfs3Limits = {
  rtmax: 1024 * 1024,
  rtpref: 1024 * 1024,
  wtmax: 1024 * 1024,
  wtpref: 1024 * 1024,
  dtpref: 64 * 1024,
  maxReaddirCount: 1024 * 1024,
}

/** sattr3 with nothing set. */
export const NO_ATTRS: sattr3 = { mode: null, uid: null, gid: null, size: null, atime: { set_it: 0 }, mtime: { set_it: 0 } }

export function sattr(set: Partial<sattr3>): sattr3 {
  return { ...NO_ATTRS, ...set }
}

export class TestHost implements Nfs3Host {
  readonly exports = new Map<number, Vfs>()
  user: Nfs3User = ROOT
  readOnly = false
  /** The export's sync (default) or async. */
  sync = true
  limits: Nfs3Limits = TCP_LIMITS
  verifier = Buffer.from('verf0001')
  bumps = 0

  handleForReply(exportId: number, ref: FileRef): Buffer {
    return this.handle(exportId, ref)
  }

  writeHandle(exportId: number, ref: FileRef, out: Buffer, at: number): number {
    return this.handle(exportId, ref).copy(out, at)
  }

  handleSize(): number {
    return 16
  }

  handle(exportId: number, ref: FileRef): Buffer {
    const fh = Buffer.alloc(16)
    fh.writeUInt32BE(exportId, 0)
    fh.writeBigUInt64BE(ref.id, 4)
    fh.writeUInt32BE(ref.gen, 12)
    return fh
  }

  async resolve(fh: Buffer): Promise<Resolved | ResolveFailure> {
    if (fh.length !== 16) return { ok: false, status: nfsstat3.NFS3ERR_BADHANDLE }
    const exportId = fh.readUInt32BE(0)
    const vfs = this.exports.get(exportId)
    if (vfs === undefined) return { ok: false, status: nfsstat3.NFS3ERR_STALE }
    const ref = { id: fh.readBigUInt64BE(4), gen: fh.readUInt32BE(12) }
    try {
      await vfs.getattr(ref)
    } catch {
      return { ok: false, status: nfsstat3.NFS3ERR_STALE }
    }
    return { ok: true, exportId, vfs, ref, user: this.user, readOnly: this.readOnly, sync: this.sync }
  }

  writeVerifier(): Buffer {
    return this.verifier
  }

  bumpWriteVerifier(): void {
    this.bumps++
    this.verifier = Buffer.from(`verf${String(1000 + this.bumps)}`)
  }
}

type Procs = (typeof NFS_PROGRAM)['versions']['NFS_V3']['procs']
export type ProcName = keyof Procs

export interface Nfs3Fixture {
  host: TestHost
  vfs: MemoryVfs
  program: RpcProgram
  root: nfs_fh3
  rootRef: FileRef
  transport: Transport
  fh(ref: FileRef, exportId?: number): nfs_fh3
  call<K extends ProcName>(name: K, args: ArgsOf<Procs[K]>): Promise<ResOf<Procs[K]>>
  /** Set up state directly in the vfs, as this owner (default root). */
  file(name: string, content?: string, opts?: { mode?: number; owner?: Owner; dir?: FileRef }): Promise<FileRef>
  dir(name: string, opts?: { mode?: number; owner?: Owner; dir?: FileRef }): Promise<FileRef>
}

export function nfs3Fixture(t: Test, opts: { vfs?: MemoryVfs } = {}): Nfs3Fixture {
  const host = new TestHost()
  // An explicit root mode: the tests' permission expectations do not follow the backend's default.
  const vfs = opts.vfs ?? new MemoryVfs({ rootMode: 0o755 })
  host.exports.set(1, vfs)
  t.teardown(() => vfs.close())
  const program = createNfs3Program(host)
  const version = program.versions.get(3)
  if (version === undefined) throw new Error('no NFS v3')
  const rootRef = vfs.root()
  const fx: Nfs3Fixture = {
    host,
    vfs,
    program,
    rootRef,
    root: { data: host.handle(1, rootRef) },
    transport: 'tcp',
    fh: (ref, exportId = 1) => ({ data: host.handle(exportId, ref) }),
    async call(name, args) {
      const def = NFS_PROGRAM.versions.NFS_V3.procs[name]
      const proc = version.procs.get(def.proc)
      if (proc === undefined) throw new Error(`no handler for ${name}`)
      const ctx: CallContext = {
        xid: 1,
        prog: NFS_PROGRAM.prog,
        vers: 3,
        proc: def.proc,
        cred: { flavor: 'sys', uid: host.user.uid, gid: host.user.gid, gids: host.user.gids, machinename: 'test' },
        peer: { address: '127.0.0.1', port: 700, family: 'IPv4' },
        transport: fx.transport,
        log: silentLogger,
        signal: new AbortController().signal,
      }
      const res = await proc.handler(args, ctx)
      // Every reply must encode: a handler's result that the codec rejects is a bug.
      encodeToBuffer(def.res as Codec<unknown>, res)
      return res as ResOf<Procs[typeof name]>
    },
    async file(name, content, o = {}) {
      const owner = o.owner ?? { uid: 0, gid: 0 }
      const { ref } = await vfs.create(o.dir ?? rootRef, b(name), { how: 'guarded', attr: { mode: o.mode ?? 0o644 } }, owner)
      if (content !== undefined) await vfs.write(ref, 0n, b(content), 'file_sync')
      return ref
    },
    async dir(name, o = {}) {
      const owner = o.owner ?? { uid: 0, gid: 0 }
      return (await vfs.mkdir(o.dir ?? rootRef, b(name), { mode: o.mode ?? 0o755 }, owner)).ref
    },
  }
  return fx
}

/** Bytes of a value as its codec encodes it. */
export function encodedSize<T>(codec: Codec<T>, value: T): number {
  return encodeToBuffer(codec, value).length
}

type Ok<R> = R extends { status: 0; resok: infer X } ? X : never
type Fail<R> = R extends { resfail: infer F } ? F : never

/** The resok arm, or a thrown error naming the status. */
export function resok<R extends { status: number }>(r: R): Ok<R> {
  if (r.status !== 0) throw new Error(`expected NFS3_OK, got ${nfsstat3Names[r.status] ?? r.status}`)
  return (r as unknown as { resok: Ok<R> }).resok
}

/** The resfail arm, or a thrown error if the call succeeded. */
export function resfail<R extends { status: number }>(r: R): Fail<R> {
  if (r.status === 0) throw new Error('expected a failure, got NFS3_OK')
  return (r as unknown as { resfail: Fail<R> }).resfail
}

export function statusName(r: { status: number }): string {
  return nfsstat3Names[r.status] ?? String(r.status)
}
