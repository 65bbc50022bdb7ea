/*
 * NfsFile.readTo (client/file-download.ts): the whole file to a sink, in
 * order, one READ per block; short replies continued, eof ending the copy
 * where it says, and a READ that fails or a sink that throws ending it with
 * that error and nothing written after it. A relay counts the READs and
 * answers or rewrites chosen ones (test/client/proxy.ts).
 */
import t from 'tap'
import type { Test } from 'tap'
import { createHash } from 'node:crypto'
import { NfsError } from '../../client/errors.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { startServer } from '../helpers/server.ts'
import { startProxy } from './proxy.ts'
import type { TcpProxy } from './proxy.ts'
import { MIB, mountFiles } from './file-helpers.ts'
import type { NfsClient } from '../../client/nfs-client.ts'

const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const NFS_PROG = 100003
const PROC_READ = 6

/** n bytes of a fixed pattern (no two MiB alike, so a block written at the wrong offset shows). */
function pattern(n: number): Buffer {
  const b = Buffer.alloc(n)
  let x = 0x9e3779b9
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    b[i] = x & 0xff
  }
  return b
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Where a READ call's arguments start (RFC 5531 call header, then cred and verf), or -1 for any other call. */
function readArgsAt(call: Buffer): number {
  if (call.length < 32 || call.readUInt32BE(4) !== 0 || call.readUInt32BE(12) !== NFS_PROG || call.readUInt32BE(20) !== PROC_READ) return -1
  const credLen = call.readUInt32BE(28)
  const verfAt = 32 + Math.ceil(credLen / 4) * 4
  return verfAt + 8 + Math.ceil(call.readUInt32BE(verfAt + 4) / 4) * 4
}

/** READ3args (RFC 1813 §3.3.6): nfs_fh3, offset (uint64), count. */
function readArgs(call: Buffer, at: number): { offset: number; count: number; countAt: number } {
  const offsetAt = at + 4 + Math.ceil(call.readUInt32BE(at) / 4) * 4
  return { offset: Number(call.readBigUInt64BE(offsetAt)), count: call.readUInt32BE(offsetAt + 8), countAt: offsetAt + 8 }
}

/** An accepted RPC reply (AUTH_NONE verifier, SUCCESS) to `call`, with READ3res words and data after it. */
function readReply(call: Buffer, status: number, data: Buffer | null, eof: boolean): Buffer {
  const head = [call.readUInt32BE(0), 1, 0, 0, 0, 0, status, 0]
  if (data !== null) head.push(data.length, eof ? 1 : 0, data.length)
  const out = Buffer.alloc(head.length * 4 + (data === null ? 0 : Math.ceil(data.length / 4) * 4))
  head.forEach((w, i) => out.writeUInt32BE(w, i * 4))
  data?.copy(out, head.length * 4)
  return out
}

interface Fixture {
  proxy: TcpProxy
  reads: { offset: number; count: number }[]
  /** A client through the relay. */
  client: NfsClient
  data: Buffer
}

/** A file of n bytes written straight to the server, and a client that reads it through a counting relay. */
async function fixture(t: Test, n: number): Promise<Fixture> {
  const fx = await startServer(t, EXPORTS)
  const data = pattern(n)
  const writer = await mountFiles(t, fx)
  await writer.writeFile('f', data)
  const proxy = await startProxy(t, fx.port)
  const reads: { offset: number; count: number }[] = []
  const seen = (call: Buffer): Buffer => {
    const at = readArgsAt(call)
    if (at >= 0) reads.push(readArgs(call, at))
    return call
  }
  proxy.rewrite = seen
  const client = await mountFiles(t, `nfs://127.0.0.1/export?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`)
  return { proxy, reads, client, data }
}

/** readTo into memory: the pieces as the sink saw them, checked to come in order and without gaps. */
async function readAll(t: Test, c: NfsClient, onPiece?: (pos: number, n: number) => void): Promise<{ out: Buffer; n: number; pieces: number }> {
  const f = await c.open('f', 'r')
  const parts: Buffer[] = []
  let at = 0
  let pieces = 0
  try {
    const n = await f.readTo((buf, pos) => {
      t.equal(pos, at, 'each piece starts where the last ended')
      onPiece?.(pos, buf.length)
      // The buffer goes back to the pool when the sink returns: keep a copy.
      parts.push(Buffer.from(buf))
      at += buf.length
      pieces++
    })
    return { out: Buffer.concat(parts), n, pieces }
  } finally {
    await f.close()
  }
}

t.test('sizes around the 1 MiB block and past the READ window: byte-exact, one READ per block, none for an empty file', async t => {
  for (const n of [0, 1, MIB - 1, MIB, MIB + 1, 33 * MIB + 7]) {
    const fx = await fixture(t, n)
    fx.reads.length = 0
    const r = await readAll(t, fx.client)
    t.equal(r.n, n, `${String(n)} bytes: the count returned`)
    t.equal(sha256(r.out), sha256(fx.data), `${String(n)} bytes: the same sha256`)
    t.equal(fx.reads.length, Math.ceil(n / MIB), `${String(n)} bytes: ${String(Math.ceil(n / MIB))} READs`)
    t.strictSame(fx.reads.map(x => x.offset).sort((a, b) => a - b), Array.from({ length: Math.ceil(n / MIB) }, (_, i) => i * MIB), 'each block asked once')
    t.ok(fx.reads.every(x => x.count === MIB), 'each READ asks for a whole block, the last one too')
  }
})

t.test('READs answered short (the relay asks the server for 1,000 bytes less): each continued from where it stopped, byte-exact', async t => {
  const n = 3 * MIB + 1
  const fx = await fixture(t, n)
  fx.reads.length = 0
  fx.proxy.rewrite = call => {
    const at = readArgsAt(call)
    if (at < 0) return call
    const a = readArgs(call, at)
    fx.reads.push(a)
    if (a.count <= 1000) return call
    const out = Buffer.from(call)
    out.writeUInt32BE(a.count - 1000, a.countAt)
    return out
  }
  const r = await readAll(t, fx.client)
  t.equal(sha256(r.out), sha256(fx.data), 'the same sha256')
  // 3 whole blocks, each answered 1,000 bytes short and then read on for its last 1,000; the 1-byte tail is not cut.
  t.equal(fx.reads.length, 7, 'one more READ per short block')
  t.strictSame(fx.reads.filter(x => x.count === 1000).map(x => x.offset), [MIB - 1000, 2 * MIB - 1000, 3 * MIB - 1000], 'each continuation asks for the rest of its block')
})

t.test('eof ends the copy where it comes (the file shrank): READs still out are not written', async t => {
  const fx = await fixture(t, 4 * MIB)
  const tail = Buffer.from('0123456789')
  fx.proxy.intercept = call => {
    const at = readArgsAt(call)
    // The READ at 1 MiB finds the file ending 10 bytes further; every other READ is the server's (the whole file, had the client read on).
    if (at < 0 || readArgs(call, at).offset !== MIB) return null
    return readReply(call, nfsstat3.NFS3_OK, tail, true)
  }
  const r = await readAll(t, fx.client)
  t.equal(r.n, MIB + 10, 'the bytes up to eof')
  t.ok(r.out.equals(Buffer.concat([fx.data.subarray(0, MIB), tail])), 'the first block, then the 10 bytes of the eof reply')
})

t.test('a READ that fails in the middle: its error, nothing written after the block before it', async t => {
  const fx = await fixture(t, 6 * MIB)
  fx.proxy.intercept = call => {
    const at = readArgsAt(call)
    if (at < 0 || readArgs(call, at).offset !== 2 * MIB) return null
    return readReply(call, nfsstat3.NFS3ERR_IO, null, false)
  }
  let written = 0
  const err = await readAll(t, fx.client, (_pos, n) => {
    written += n
  }).then(() => null, (e: unknown) => e)
  t.ok(err instanceof NfsError, 'an NfsError')
  t.equal((err as NfsError).status, nfsstat3.NFS3ERR_IO, 'NFS3ERR_IO')
  t.equal((err as NfsError).errno, 'EIO', 'EIO')
  t.equal(written, 2 * MIB, 'the two blocks before it, and nothing after')
})

t.test('a sink that throws: its error, and no piece after it', async t => {
  const fx = await fixture(t, 5 * MIB)
  const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
  let calls = 0
  const f = await fx.client.open('f', 'r')
  t.teardown(() => f.close())
  const err = await f.readTo(() => {
    calls++
    if (calls === 2) throw full
  }).then(() => null, (e: unknown) => e)
  t.equal(err, full, 'the sink\'s own error')
  t.equal(calls, 2, 'no piece after it')
  // The READs still out when it threw give their buffers back; the client stays usable.
  const again = await readAll(t, fx.client)
  t.equal(sha256(again.out), sha256(fx.data), 'a second copy over the same mount: the same sha256')
})
