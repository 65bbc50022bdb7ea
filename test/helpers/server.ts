/*
 * A whole tsnfs server (createServer) on port 0 for end-to-end tests, plus a
 * typed NFS/MOUNT client over our RPC client and a mount helper.
 */
import type { Test } from 'tap'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import type { AuthSys } from '../../client/rpc/auth.ts'
import { MOUNT_PROGRAM } from '../../xdr/generated/mount.ts'
import { NFS_PROGRAM } from '../../xdr/generated/nfs3.ts'
import { parseExports } from '../../server/exports/parse.ts'
import { createServer } from '../../server/index.ts'
import type { ServerOptions, TsnfsServer } from '../../server/index.ts'

export const run = promisify(execFile)

export interface ServerFixture {
  server: TsnfsServer
  port: number
  stateDir: string
  /** libnfs URL of an export (with nfsport/mountport, no portmapper needed). */
  url(exportPath: string, path?: string, query?: string): string
}

/** Start a server with the given export list text (default: the embedded /export). */
export async function startServer(
  t: Test,
  exportsText = '/export *(rw,insecure,root_squash,backend=memory)\n',
  extra: Partial<ServerOptions> = {},
): Promise<ServerFixture> {
  // Not t.testdir(): a test has one testdir, and the caller may be using it.
  let stateDir = extra.stateDir
  if (stateDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'tsnfs-state-'))
    t.teardown(() => {
      rmSync(dir, { recursive: true, force: true })
    })
    stateDir = dir
  }
  const server = await createServer({
    exports: parseExports(exportsText, 'exports'),
    stateDir,
    port: 0,
    host: '127.0.0.1',
    ...extra,
  })
  t.teardown(() => server.close())
  const port = server.port
  return {
    server,
    port,
    stateDir,
    url: (exportPath, path = '', query = '') =>
      `nfs://127.0.0.1${exportPath}${path}?nfsport=${port}&mountport=${port}${query === '' ? '' : `&${query}`}`,
  }
}

export const ROOT_CRED: AuthSys = { uid: 0, gid: 0, gids: [], machinename: 'test' }

export const NFS3 = NFS_PROGRAM.versions.NFS_V3.procs
export const MOUNT3 = MOUNT_PROGRAM.versions.MOUNT_V3.procs
export const MOUNT1 = MOUNT_PROGRAM.versions.MOUNT_V1.procs

/** A TCP RPC client to the server, closed at teardown. */
export async function connect(t: Test, port: number): Promise<RpcTcpClient> {
  const c = await RpcTcpClient.connect('127.0.0.1', port, { cred: ROOT_CRED })
  t.teardown(() => c.close())
  return c
}

/** MNT an export and return its root handle. */
export async function mountRoot(c: RpcTcpClient, path: string): Promise<Buffer> {
  const r = await c.call(MOUNT_PROGRAM.prog, 3, MOUNT3.MOUNTPROC3_MNT, Buffer.from(path))
  if (r.fhs_status !== 0) throw new Error(`MNT ${path}: status ${r.fhs_status}`)
  return Buffer.from(r.mountinfo.fhandle)
}
