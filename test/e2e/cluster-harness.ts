/*
 * What the cluster end-to-end tests share: a fresh cluster database (its
 * password in a credentials file, as an operator would keep it), `tsnfs
 * cluster init`, several `tsnfs serve` processes exporting it, and a dump of
 * the whole tree as one server sees it (for comparing servers and oracles).
 */
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { serveProcess, tsnfs, type Served } from '../cli/cli.ts'
import { testDatabase } from '../helpers/postgres.ts'
import { freePort } from '../helpers/ports.ts'
import { S, type Nfs3 } from '../helpers/local.ts'
import { tempDir } from '../helpers/tsnfs-process.ts'

export interface ClusterDb {
  /** postgres://user@host:port/db, no password (the export parser refuses one). */
  meta: string
  /** The URL with its password, for the test's own queries. */
  adminUrl: string
  credentials: string
}

/** `url` (with a password) split into a password-free meta URL and a credentials file. */
export function clusterDbAt(t: Test, url: string): ClusterDb {
  const u = new URL(url)
  const password = decodeURIComponent(u.password)
  u.password = ''
  const credentials = join(tempDir(t, 'tsnfs-cluster-cred-'), 'cluster.cred')
  writeFileSync(credentials, `# test cluster\nmeta_password=${password}\n`, { mode: 0o600 })
  return { meta: u.toString(), adminUrl: url, credentials }
}

/** A fresh database (dropped at teardown), initialized by `tsnfs cluster init` with `data`. */
export async function freshCluster(t: Test, data = 'postgres'): Promise<ClusterDb> {
  const db = clusterDbAt(t, await testDatabase(t))
  await clusterInit(t, db, data)
  return db
}

export async function clusterInit(t: Test, db: ClusterDb, data = 'postgres'): Promise<void> {
  const r = await tsnfs(['cluster', 'init', '--meta', db.meta, '--data', data, '--credentials', db.credentials])
  if (r.code !== 0) throw new Error(`tsnfs cluster init: exit ${String(r.code)}\n${r.stdout}${r.stderr}`)
  t.match(r.stdout, /^initialized: /, 'tsnfs cluster init')
}

export function clusterExports(t: Test, db: ClusterDb, data = 'postgres', path = '/shared'): string {
  const file = join(tempDir(t, 'tsnfs-cluster-exports-'), 'exports')
  writeFileSync(file, `${path} *(rw,insecure,no_root_squash,backend=cluster,meta=${db.meta},data=${data},credentials=${db.credentials})\n`)
  return file
}

/** `n` servers of one cluster, each with its own port and state directory, started together. */
export function startServers(t: Test, exportsFile: string, n: number, extra: string[] = []): Promise<Served[]> {
  return Promise.all(Array.from({ length: n }, () => serveProcess(t, [
    '--exports', exportsFile, '--port', '0', '--host', '127.0.0.1', '--state-dir', tempDir(t, 'tsnfs-cluster-state-'),
    '--no-lock', '--admin', 'off', '--no-rpcbind', ...extra,
  ])))
}

/** One query on the cluster database with the test's own connection. */
export async function sql(db: ClusterDb, text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: db.adminUrl })
  await c.connect()
  try {
    return (await c.query(text, params)).rows as Record<string, unknown>[]
  } finally {
    await c.end()
  }
}

/** Path → 'dir' or the file's bytes as hex, for the whole tree under `dir` as one server sees it. */
export async function dumpTree(nfs: Nfs3, dir: Buffer, prefix = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const { names } = await nfs.listAll(dir)
  for (const name of names.sort()) {
    if (name === '.' || name === '..') continue
    const path = `${prefix}/${name}`
    const l = await nfs.lookup(dir, name)
    if (l.status !== S.OK || l.fh === undefined) throw new Error(`LOOKUP ${path}: status ${l.status}`)
    if (l.type === 2) {
      out.set(path, 'dir')
      for (const [p, v] of await dumpTree(nfs, l.fh, path)) out.set(p, v)
    } else {
      out.set(path, (await readWhole(nfs, l.fh)).toString('hex'))
    }
  }
  return out
}

/** Every byte of a file, by READs of 64 KiB until eof; throws on a failed READ. */
export async function readWhole(nfs: Nfs3, fh: Buffer): Promise<Buffer> {
  const parts: Buffer[] = []
  let offset = 0n
  for (;;) {
    const r = await nfs.read(fh, offset, 65536)
    if (r.status !== S.OK || r.data === undefined) throw new Error(`READ at ${String(offset)}: status ${r.status}`)
    parts.push(r.data)
    offset += BigInt(r.data.length)
    if (r.eof === true || r.data.length === 0) return Buffer.concat(parts)
  }
}

export interface PrivatePostgres {
  port: number
  /** postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres */
  url: string
  stop(mode?: 'fast' | 'immediate'): Promise<void>
  start(): Promise<void>
}

const PG_BIN = '/usr/lib/postgresql/15/bin'

/**
 * A PostgreSQL 15 of the test's own, in a temporary directory on a free port,
 * for tests that stop and restart the database (the shared one must stay up).
 * initdb and the server run as the postgres user (they refuse root); password
 * authentication, as in production. Stopped at teardown.
 */
export async function privatePostgres(t: Test): Promise<PrivatePostgres> {
  // Not tempDir: the directory must outlive the server, so one teardown stops it, then removes it.
  const dir = mkdtempSync(join(tmpdir(), 'tsnfs-pg-'))
  const data = join(dir, 'data')
  const password = 'private-pg-pw'
  writeFileSync(join(dir, 'pw'), `${password}\n`)
  await run('chown', ['-R', 'postgres:postgres', dir])
  await run('runuser', ['-u', 'postgres', '--', `${PG_BIN}/initdb`, '-D', data, '-U', 'postgres', '--pwfile', join(dir, 'pw'), '-A', 'scram-sha-256', '--no-sync'])
  const port = await freePort()
  const ctl = (args: string[]): Promise<void> => run('runuser', ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', data, '-l', join(dir, 'log'), ...args])
  const opts = `-p ${String(port)} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=60`
  const start = (): Promise<void> => ctl(['-o', opts, '-w', '-t', '30', 'start'])
  let running = false
  t.teardown(async () => {
    if (running) await ctl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  })
  await start()
  running = true
  return {
    port,
    url: `postgres://postgres:${password}@127.0.0.1:${String(port)}/postgres`,
    stop: async (mode = 'fast') => {
      await ctl(['-m', mode, '-w', 'stop'])
      running = false
    },
    start: async () => {
      await start()
      running = true
    },
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      if (code === 0) resolveRun()
      else reject(new Error(`${cmd} ${args.join(' ')}: exit ${String(code)}\n${out}`))
    })
  })
}
