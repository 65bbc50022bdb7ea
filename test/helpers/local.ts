/*
 * Helpers for end-to-end tests of local (host-directory) exports: a server
 * exporting t.testdir() directories, typed NFS calls with any AUTH_SYS
 * credential, complete READDIR/READDIRPLUS paging, and `tsnfs serve` as a
 * separate process (for SIGKILL and SIGHUP tests).
 */
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { AuthSys } from '../../client/rpc/auth.ts'
import type { ProcedureRef } from '../../client/rpc/call.ts'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import type { nfsstat3, sattr3 } from '../../xdr/generated/nfs3.ts'
import { MOUNT_PROG, NFS_PROG, NO_ATTRS, b, fh } from './e2e.ts'
import { MOUNT3, NFS3, ROOT_CRED, run } from './server.ts'

export { NFS3, ROOT_CRED }

/** nfsstat3 values by name, for readable assertions. */
export const S = {
  OK: 0, PERM: 1, NOENT: 2, IO: 5, ACCES: 13, EXIST: 17, XDEV: 18, NOTDIR: 20, ISDIR: 21, INVAL: 22,
  ROFS: 30, NOTEMPTY: 66, STALE: 70, BADHANDLE: 10001, BAD_COOKIE: 10003, NOTSUPP: 10004,
} as const

/** ACCESS3 bits (RFC 1813 §3.3.4). */
export const A = { READ: 0x01, LOOKUP: 0x02, MODIFY: 0x04, EXTEND: 0x08, DELETE: 0x10, EXECUTE: 0x20, ALL: 0x3f } as const

/** Stability of WRITE (RFC 1813 §3.3.7). */
export const UNSTABLE = 0
export const DATA_SYNC = 1
export const FILE_SYNC = 2

export function cred(uid: number, gid: number, gids: number[] = []): AuthSys {
  return { uid, gid, gids, machinename: 'test' }
}

export const attrs = (set: Partial<sattr3>): sattr3 => ({ ...NO_ATTRS, ...set })

/** NFSv3 calls on one connection; each may carry its own credential (default root). */
export class Nfs3 {
  readonly c: RpcTcpClient
  constructor(c: RpcTcpClient) {
    this.c = c
  }

  static async connect(t: Test, port: number): Promise<Nfs3> {
    const c = await RpcTcpClient.connect('127.0.0.1', port, { cred: ROOT_CRED })
    t.teardown(() => c.close())
    return new Nfs3(c)
  }

  call<A, R>(p: ProcedureRef<A, R>, args: A, as: AuthSys = ROOT_CRED): Promise<R> {
    return this.c.call(NFS_PROG, 3, p, args, { cred: as })
  }

  async mount(path: string): Promise<Buffer> {
    const r = await this.c.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, Buffer.from(path))
    if (r.fhs_status !== 0) throw new Error(`MNT ${path}: status ${r.fhs_status}`)
    return Buffer.from(r.mountinfo.fhandle)
  }

  async mntStatus(path: string): Promise<number> {
    const r = await this.c.call(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, Buffer.from(path))
    return r.fhs_status
  }

  async getattr(obj: Buffer, as?: AuthSys): Promise<{ status: nfsstat3; fileid?: bigint; type?: number; size?: bigint; mode?: number }> {
    const r = await this.call(NFS3.NFSPROC3_GETATTR, { object: fh(obj) }, as)
    if (r.status !== 0) return { status: r.status }
    const a = r.resok.obj_attributes
    return { status: 0, fileid: a.fileid, type: a.type, size: a.size, mode: a.mode }
  }

  async lookup(dir: Buffer, name: string, as?: AuthSys): Promise<{ status: nfsstat3; fh?: Buffer; type?: number; fileid?: bigint }> {
    const r = await this.call(NFS3.NFSPROC3_LOOKUP, { what: { dir: fh(dir), name: b(name) } }, as)
    if (r.status !== 0) return { status: r.status }
    const a = r.resok.obj_attributes
    return { status: 0, fh: Buffer.from(r.resok.object.data), ...(a === null ? {} : { type: a.type, fileid: a.fileid }) }
  }

  /** LOOKUP that must succeed. */
  async walk(dir: Buffer, ...names: string[]): Promise<Buffer> {
    let cur = dir
    for (const n of names) {
      const r = await this.lookup(cur, n)
      if (r.fh === undefined) throw new Error(`LOOKUP ${n}: status ${r.status}`)
      cur = r.fh
    }
    return cur
  }

  async create(dir: Buffer, name: string, as?: AuthSys, set: Partial<sattr3> = {}): Promise<{ status: nfsstat3; fh?: Buffer }> {
    const r = await this.call(NFS3.NFSPROC3_CREATE, { where: { dir: fh(dir), name: b(name) }, how: { mode: 0, obj_attributes: attrs(set) } }, as)
    if (r.status !== 0) return { status: r.status }
    return { status: 0, ...(r.resok.obj === null ? {} : { fh: Buffer.from(r.resok.obj.data) }) }
  }

  async mkdir(dir: Buffer, name: string, as?: AuthSys, set: Partial<sattr3> = {}): Promise<{ status: nfsstat3; fh?: Buffer }> {
    const r = await this.call(NFS3.NFSPROC3_MKDIR, { where: { dir: fh(dir), name: b(name) }, attributes: attrs(set) }, as)
    if (r.status !== 0) return { status: r.status }
    return { status: 0, ...(r.resok.obj === null ? {} : { fh: Buffer.from(r.resok.obj.data) }) }
  }

  async remove(dir: Buffer, name: string, as?: AuthSys): Promise<nfsstat3> {
    return (await this.call(NFS3.NFSPROC3_REMOVE, { object: { dir: fh(dir), name: b(name) } }, as)).status
  }

  async rmdir(dir: Buffer, name: string, as?: AuthSys): Promise<nfsstat3> {
    return (await this.call(NFS3.NFSPROC3_RMDIR, { object: { dir: fh(dir), name: b(name) } }, as)).status
  }

  async rename(fromDir: Buffer, from: string, toDir: Buffer, to: string, as?: AuthSys): Promise<nfsstat3> {
    const r = await this.call(NFS3.NFSPROC3_RENAME, { from: { dir: fh(fromDir), name: b(from) }, to: { dir: fh(toDir), name: b(to) } }, as)
    return r.status
  }

  async setattr(obj: Buffer, set: Partial<sattr3>, as?: AuthSys): Promise<nfsstat3> {
    return (await this.call(NFS3.NFSPROC3_SETATTR, { object: fh(obj), new_attributes: attrs(set), guard: null }, as)).status
  }

  async access(obj: Buffer, asked: number, as?: AuthSys): Promise<{ status: nfsstat3; access?: number }> {
    const r = await this.call(NFS3.NFSPROC3_ACCESS, { object: fh(obj), access: asked }, as)
    return r.status === 0 ? { status: 0, access: r.resok.access } : { status: r.status }
  }

  async read(file: Buffer, offset: bigint, count: number, as?: AuthSys): Promise<{ status: nfsstat3; data?: Buffer; eof?: boolean }> {
    const r = await this.call(NFS3.NFSPROC3_READ, { file: fh(file), offset, count }, as)
    return r.status === 0 ? { status: 0, data: Buffer.from(r.resok.data), eof: r.resok.eof } : { status: r.status }
  }

  async write(
    file: Buffer, offset: bigint, data: Buffer, stable = FILE_SYNC, as?: AuthSys,
  ): Promise<{ status: nfsstat3; count?: number; committed?: number; verf?: Buffer }> {
    const r = await this.call(NFS3.NFSPROC3_WRITE, { file: fh(file), offset, count: data.length, stable, data }, as)
    if (r.status !== 0) return { status: r.status }
    return { status: 0, count: r.resok.count, committed: r.resok.committed, verf: Buffer.from(r.resok.verf) }
  }

  async commit(file: Buffer, offset = 0n, count = 0, as?: AuthSys): Promise<{ status: nfsstat3; verf?: Buffer }> {
    const r = await this.call(NFS3.NFSPROC3_COMMIT, { file: fh(file), offset, count }, as)
    return r.status === 0 ? { status: 0, verf: Buffer.from(r.resok.verf) } : { status: r.status }
  }

  async readdir(
    dir: Buffer, cookie = 0n, cookieverf: Buffer = Buffer.alloc(8), count = 8192, as?: AuthSys,
  ): Promise<{ status: nfsstat3; names?: string[]; cookies?: bigint[]; fileids?: bigint[]; verf?: Buffer; eof?: boolean }> {
    const r = await this.call(NFS3.NFSPROC3_READDIR, { dir: fh(dir), cookie, cookieverf, count }, as)
    if (r.status !== 0) return { status: r.status }
    const e = r.resok.reply.entries
    return {
      status: 0,
      names: e.map((x) => Buffer.from(x.name).toString()),
      cookies: e.map((x) => x.cookie),
      fileids: e.map((x) => x.fileid),
      verf: Buffer.from(r.resok.cookieverf),
      eof: r.resok.reply.eof,
    }
  }

  /** Every name of a directory by READDIR pages of `count` bytes; throws on a failed page. */
  async listAll(dir: Buffer, count = 8192): Promise<{ names: string[]; pages: number }> {
    const names: string[] = []
    let cookie = 0n
    let verf: Buffer = Buffer.alloc(8)
    for (let pages = 1; ; pages++) {
      const r = await this.readdir(dir, cookie, verf, count)
      if (r.status !== 0 || r.names === undefined || r.cookies === undefined || r.verf === undefined) {
        throw new Error(`READDIR page ${pages}: status ${r.status}`)
      }
      names.push(...r.names)
      if (r.eof === true) return { names, pages }
      const last = r.cookies.at(-1)
      if (last === undefined) throw new Error(`READDIR page ${pages}: no entries and no eof`)
      cookie = last
      verf = r.verf
    }
  }

  /** Every name by READDIRPLUS (with the handles given); throws on a failed page. */
  async listAllPlus(dir: Buffer, dircount = 8192, maxcount = 32768): Promise<{ names: string[]; handles: number; pages: number }> {
    const names: string[] = []
    let handles = 0
    let cookie = 0n
    let cookieverf: Buffer = Buffer.alloc(8)
    for (let pages = 1; ; pages++) {
      const r = await this.call(NFS3.NFSPROC3_READDIRPLUS, { dir: fh(dir), cookie, cookieverf, dircount, maxcount })
      if (r.status !== 0) throw new Error(`READDIRPLUS page ${pages}: status ${r.status}`)
      for (const e of r.resok.reply.entries) {
        names.push(Buffer.from(e.name).toString())
        if (e.name_handle !== null) handles++
      }
      if (r.resok.reply.eof) return { names, handles, pages }
      const last = r.resok.reply.entries.at(-1)
      if (last === undefined) throw new Error(`READDIRPLUS page ${pages}: no entries and no eof`)
      cookie = last.cookie
      cookieverf = Buffer.from(r.resok.cookieverf)
    }
  }
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const CLI = join(repoRoot, 'dist/cli/main.js')

/** npm test builds dist first; a bare `tap` run builds here (as test/cli/serve.test.ts does). */
export async function ensureBuilt(): Promise<void> {
  if (!existsSync(CLI)) await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: repoRoot })
}

export interface ServeProcess {
  child: ChildProcess
  port: number
  /** Everything written to stderr so far (pino JSON lines). */
  stderr(): string
  /** Resolves with the exit code or signal name. */
  exit: Promise<number | string | null>
}

/** `tsnfs serve --exports FILE --state-dir DIR --port 0` in a child process; resolves once it listens. */
export async function spawnServe(t: Test, exportsFile: string, stateDir: string, extraArgs: string[] = []): Promise<ServeProcess> {
  const args = [CLI, 'serve', '--exports', exportsFile, '--state-dir', stateDir, '--port', '0', '--host', '127.0.0.1', ...extraArgs]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exit = new Promise<number | string | null>((res) => child.on('exit', (code, signal) => {
    res(code ?? signal)
  }))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exit
    }
  })
  const port = await new Promise<number>((res, rej) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /port (\d+)\n/.exec(out)
      if (m?.[1] !== undefined) res(Number(m[1]))
    })
    void exit.then(() => {
      rej(new Error(`serve exited before listening: ${out} ${err}`))
    })
  })
  return { child, port, stderr: () => err, exit }
}
