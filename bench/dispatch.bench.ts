/*
 * Record -> dispatch -> reply without sockets: the real server host (export
 * table, HMAC handles, memory backend), the NFSv3 program and dispatch(),
 * fed CALL records built by the client's encoder. GETATTR (the smallest
 * call), READDIRPLUS of 32 KiB pages (about 200 entries with attributes and
 * handles) over a 10,000-entry directory, and CREATE (non-idempotent: DRC,
 * wcc data, a new handle).
 */
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { encodeCall } from '../client/rpc/call.ts'
import { authSys } from '../client/rpc/auth.ts'
import { NFS_PROGRAM } from '../xdr/generated/nfs3.ts'
import { BackendSet } from '../server/backends.ts'
import { parseExports } from '../server/exports/parse.ts'
import { ExportTable } from '../server/exports/table.ts'
import type { Export } from '../server/exports/table.ts'
import { DEFAULT_NFS3_LIMITS, ServerHost } from '../server/host.ts'
import { silentLogger } from '../server/logger.ts'
import { HandleCodec } from '../server/nfs3/filehandle.ts'
import { createNfs3Program } from '../server/nfs3/program.ts'
import { dispatch } from '../server/rpc/dispatch.ts'
import type { CallOrigin, DispatchEnv } from '../server/rpc/dispatch.ts'
import { DuplicateRequestCache } from '../server/rpc/drc.ts'
import { createStats } from '../server/rpc/stats.ts'
import { WriteVerifier } from '../server/state.ts'
import type { Vfs } from '../vfs/types.ts'
import { measureAsync } from './harness.ts'
import type { Result } from './harness.ts'

/** A server without sockets: one export's host, the NFSv3 program behind dispatch(), and what a call needs. */
export interface DispatchRig {
  backends: BackendSet
  exp: Export
  vfs: Vfs
  host: ServerHost
  env: DispatchEnv
  origin: CallOrigin
  cred: ReturnType<typeof authSys>
}

/** The rig for the first export of `exportLine` (close `backends` when done). */
export async function dispatchRig(exportLine: string, stateDir: string): Promise<DispatchRig> {
  const table = new ExportTable(parseExports(`${exportLine}\n`, '<bench>'))
  const backends = new BackendSet({ stateDir })
  await backends.sync(table.all())
  const exp = table.all()[0]
  const vfs = exp === undefined ? undefined : backends.get(exp.id)
  if (exp === undefined || vfs === undefined) throw new Error('no export')
  const host = new ServerHost(table, backends, new HandleCodec(randomBytes(32)), new WriteVerifier(), DEFAULT_NFS3_LIMITS)
  const nfs3 = createNfs3Program(host)
  const env: DispatchEnv = { programs: new Map([[nfs3.prog, nfs3]]), drc: new DuplicateRequestCache({ max: 1024, ttlMs: 60_000 }), stats: createStats() }
  const origin: CallOrigin = { peer: { address: '127.0.0.1', port: 700, family: 'IPv4' }, transport: 'tcp', signal: new AbortController().signal, log: silentLogger }
  const cred = authSys({ uid: 0, gid: 0, gids: [], machinename: 'bench', stamp: 0 })
  return { backends, exp, vfs, host, env, origin, cred }
}

/**
 * `only`: run just the benches whose name matches (for profiling one path);
 * `exportLine`: another export to measure (e.g. a local directory, `/tmp/x *(rw,insecure,no_root_squash)`).
 */
export async function dispatchBenches(only?: RegExp, exportLine = '/export *(rw,insecure,no_root_squash,async,backend=memory)'): Promise<Result[]> {
  const { exp, vfs, host, env, origin, cred } = await dispatchRig(exportLine, tmpdir())
  const root = host.handle(exp.id, vfs.root())
  const procs = NFS_PROGRAM.versions.NFS_V3.procs
  const record = Buffer.concat(encodeCall(1, NFS_PROGRAM.prog, 3, procs.NFSPROC3_GETATTR, { object: { data: root } }, cred))
  const probe = await dispatch(env, record, origin)
  if (probe === null || probe.length === 0) throw new Error('GETATTR produced no reply')
  const want = (name: string): boolean => only === undefined || only.test(name)
  const results: Result[] = []
  if (want('GETATTR')) results.push(await measureAsync('dispatch GETATTR record -> reply', () => dispatch(env, record, origin)))

  const owner = { uid: 0, gid: 0 }
  const big = await vfs.mkdir(vfs.root(), Buffer.from('big'), {}, owner)
  for (let i = 0; i < 10_000; i++) await vfs.create(big.ref, Buffer.from(`file.${i}`), { how: 'unchecked', attr: {} }, owner)
  const bigFh = host.handle(exp.id, big.ref)
  const rdp = Buffer.concat(encodeCall(2, NFS_PROGRAM.prog, 3, procs.NFSPROC3_READDIRPLUS, {
    dir: { data: bigFh }, cookie: 0n, cookieverf: Buffer.alloc(8), dircount: 8192, maxcount: 32768,
  }, cred))
  if (want('READDIRPLUS')) results.push(await measureAsync('dispatch READDIRPLUS 32 KiB page -> reply', () => dispatch(env, rdp, origin), 1000, 20))

  // Each CREATE a new name and xid (a repeated xid would be a DRC replay), records built up front.
  const creates: Buffer[] = []
  const dir = await vfs.mkdir(vfs.root(), Buffer.from('creates'), {}, owner)
  const dirFh = host.handle(exp.id, dir.ref)
  for (let i = 0; i < 200_000; i++) {
    creates.push(Buffer.concat(encodeCall(1000 + i, NFS_PROGRAM.prog, 3, procs.NFSPROC3_CREATE, {
      where: { dir: { data: dirFh }, name: Buffer.from(`f${i}`) }, how: { mode: 1, obj_attributes: NO_ATTRS },
    }, cred)))
  }
  let next = 0
  if (want('CREATE')) results.push(await measureAsync('dispatch CREATE record -> reply', () => dispatch(env, creates[next++ % creates.length] ?? record, origin), 1000, 200))
  return results
}

const NO_ATTRS = {
  mode: 0o644, uid: null, gid: null, size: null, atime: { set_it: 0 }, mtime: { set_it: 0 },
} as const
