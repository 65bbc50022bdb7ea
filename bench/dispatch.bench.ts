/*
 * Record -> dispatch -> reply for GETATTR, without sockets: the real server
 * host (export table, HMAC handles, memory backend), the NFSv3 program and
 * dispatch(), fed a CALL record built by the client's encoder.
 */
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { encodeCall } from '../client/rpc/call.ts'
import { authSys } from '../client/rpc/auth.ts'
import { NFS_PROGRAM } from '../xdr/generated/nfs3.ts'
import { BackendSet } from '../server/backends.ts'
import { parseExports } from '../server/exports/parse.ts'
import { ExportTable } from '../server/exports/table.ts'
import { DEFAULT_NFS3_LIMITS, ServerHost } from '../server/host.ts'
import { silentLogger } from '../server/logger.ts'
import { HandleCodec } from '../server/nfs3/filehandle.ts'
import { createNfs3Program } from '../server/nfs3/program.ts'
import { dispatch } from '../server/rpc/dispatch.ts'
import type { CallOrigin, DispatchEnv } from '../server/rpc/dispatch.ts'
import { DuplicateRequestCache } from '../server/rpc/drc.ts'
import { createStats } from '../server/rpc/stats.ts'
import { WriteVerifier } from '../server/state.ts'
import { measureAsync } from './harness.ts'
import type { Result } from './harness.ts'

export async function dispatchBenches(): Promise<Result[]> {
  const table = new ExportTable(parseExports('/export *(rw,insecure,no_root_squash,async,backend=memory)\n', '<bench>'))
  const backends = new BackendSet({ stateDir: tmpdir() })
  await backends.sync(table.all())
  const exp = table.all()[0]
  const vfs = exp === undefined ? undefined : backends.get(exp.id)
  if (exp === undefined || vfs === undefined) throw new Error('no export')
  const host = new ServerHost(table, backends, new HandleCodec(randomBytes(32)), new WriteVerifier(), DEFAULT_NFS3_LIMITS)
  const nfs3 = createNfs3Program(host)
  const env: DispatchEnv = { programs: new Map([[nfs3.prog, nfs3]]), drc: new DuplicateRequestCache({ max: 1024, ttlMs: 60_000 }), stats: createStats() }
  const origin: CallOrigin = { peer: { address: '127.0.0.1', port: 700, family: 'IPv4' }, transport: 'tcp', signal: new AbortController().signal, log: silentLogger }
  const root = host.handle(exp.id, vfs.root())
  const cred = authSys({ uid: 0, gid: 0, gids: [], machinename: 'bench', stamp: 0 })
  const record = Buffer.concat(encodeCall(1, NFS_PROGRAM.prog, 3, NFS_PROGRAM.versions.NFS_V3.procs.NFSPROC3_GETATTR, { object: { data: root } }, cred))
  const probe = await dispatch(env, record, origin)
  if (probe === null || probe.length === 0) throw new Error('GETATTR produced no reply')
  return [await measureAsync('dispatch GETATTR record -> reply', () => dispatch(env, record, origin))]
}
