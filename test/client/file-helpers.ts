/* Shared by the file API tests: mounts with data path options, RPC counting, random data. */
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { NfsClient } from '../../client/nfs-client.ts'
import type { ClientOptions } from '../../client/options.ts'
import type { FileDataOptions } from '../../client/file-options.ts'
import type { ServerFixture } from '../helpers/server.ts'

export const KIB = 1024
export const MIB = 1024 * 1024

export async function mountFiles(t: Test, fx: ServerFixture | string, opts: ClientOptions = {}, files: FileDataOptions = {}): Promise<NfsClient> {
  const c = await NfsClient.mount(typeof fx === 'string' ? fx : fx.url('/export'), opts)
  c.configureFiles(files)
  t.teardown(() => c.umount().catch(() => undefined))
  return c
}

/** NFS calls made while fn runs, by procedure. */
export async function callsDuring(c: NfsClient, fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = c.stats().nfs
  await fn()
  const after = c.stats().nfs
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0)
  return out
}

export function extra(c: NfsClient, group: string, key: string): number {
  return c.stats().extra[group]?.[key] ?? 0
}

export function random(n: number): Buffer {
  return n === 0 ? Buffer.alloc(0) : randomBytes(n)
}
