/*
 * A PostgreSQL of the test's own, in a directory of its own, for what the
 * shared server must not suffer: being stopped, killed and restarted.
 * Debian's postgresql-15 binaries run as the postgres user (initdb refuses
 * root); trust authentication on 127.0.0.1, no Unix socket.
 *
 * Not t.testdir(): tap removes a testdir before it runs the test's
 * teardowns, so the server was still running (writing WAL after a crash
 * restart) while its data directory was being removed. rimraf then failed
 * with ENOTEMPTY on pg_wal, the teardowns after it never ran, the open
 * database connections kept the test file alive and it timed out (CI of
 * stop 31). Here one teardown stops the server first, then removes it.
 */
import { execFile } from 'node:child_process'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { promisify } from 'node:util'
import path from 'node:path'
import type { Test } from 'tap'
import { freePort } from '../../../helpers/ports.ts'

const run = promisify(execFile)
const BIN = '/usr/lib/postgresql/15/bin'

export interface PrivatePostgres {
  url: string
  port: number
  start(): Promise<void>
  /** fast: backends are told to exit (57P01); immediate: everything is killed, as a crash. */
  stop(mode: 'fast' | 'immediate'): Promise<void>
}

async function asPostgres(cmd: string, args: string[]): Promise<void> {
  await run('runuser', ['-u', 'postgres', '--', path.join(BIN, cmd), ...args], { timeout: 60_000 })
}

export async function privatePostgres(t: Test): Promise<PrivatePostgres> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tsnfs-pg-'))
  // Registered first, so it runs last (tap runs teardowns in reverse): after the test's own
  // teardowns have closed its connections.
  let started = false
  t.teardown(async () => {
    if (started) await stop('immediate').catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  })
  const data = path.join(dir, 'data')
  const { uid, gid } = await idOf('postgres')
  chownSync(dir, uid, gid)
  await asPostgres('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'])
  const port = await freePort()
  const start = (): Promise<void> => asPostgres('pg_ctl', ['-D', data, '-l', path.join(dir, 'log'), '-w', '-t', '60',
    '-o', `-p ${port} -c unix_socket_directories='' -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB`, 'start'])
  const stop = (mode: 'fast' | 'immediate'): Promise<void> => asPostgres('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop'])
  started = true
  await start()
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, port, start, stop }
}

async function idOf(user: string): Promise<{ uid: number; gid: number }> {
  const [u, g] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])])
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) }
}
