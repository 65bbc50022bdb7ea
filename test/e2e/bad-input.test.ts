/*
 * Hostile input against a whole server (RFC 5531 §9, §11; brief: "Malformed
 * RPC → GARBAGE_ARGS or a closed connection, never a crash or unbounded
 * memory"): every procedure's decoder through the dispatcher, every
 * rejection arm with its exact reply bytes, framing attacks on TCP, garbage
 * on UDP.
 */
import { FRAGMENT_COST } from '../../xdr/record.ts'
import t from 'tap'
import type { Test } from 'tap'
import { once } from 'node:events'
import { connect as netConnect } from 'node:net'
import type { Socket } from 'node:net'
import { RpcTcpClient } from '../../client/rpc/tcp-client.ts'
import { nfsstat3 } from '../../xdr/generated/nfs3.ts'
import { PMAP_PROG } from '../../xdr/generated/portmap.ts'
import type { ProcedureDef } from '../../xdr/runtime/program.ts'
import type { ArgsOf } from '../../xdr/runtime/program.ts'
import type { Codec } from '../../xdr/runtime/codec.ts'
import { encodeToBuffer } from '../../xdr/runtime/codec.ts'
import { auth_flavor, auth_stat } from '../../xdr/rpc/constants.ts'
import { RawConnection, words } from '../helpers/rpc.ts'
import { MOUNT1, MOUNT3, NFS3, connect, startServer } from '../helpers/server.ts'
import { MOUNT_PROG, NFS_PROG, NO_ATTRS, PMAP_PROG_NUMBER, b, fh, rawRecord, replyWords, results, udpExchange, udpSocket } from '../helpers/e2e.ts'

const PMAP = PMAP_PROG.versions.PMAP_VERS.procs
/** A well-formed handle the server did not mint: full args decode, then BADHANDLE. */
const H = fh(Buffer.alloc(32, 7))
const where = { dir: H, name: b('x') }
const sattrs = NO_ATTRS

interface Case {
  label: string
  prog: number
  vers: number
  p: ProcedureDef
  args: Buffer
}
function c<P extends ProcedureDef>(prog: number, vers: number, p: P, args: ArgsOf<P>): Case {
  return { label: `${prog}/${vers}/${p.name}`, prog, vers, p, args: encodeToBuffer(p.args as Codec<ArgsOf<P>>, args) }
}

const CASES: Case[] = [
  c(NFS_PROG, 3, NFS3.NFSPROC3_GETATTR, { object: H }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_SETATTR, { object: H, new_attributes: sattrs, guard: null }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_LOOKUP, { what: where }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_ACCESS, { object: H, access: 0x3f }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_READLINK, { symlink: H }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_READ, { file: H, offset: 0n, count: 10 }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_WRITE, { file: H, offset: 0n, count: 3, stable: 0, data: b('abc') }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_CREATE, { where, how: { mode: 0, obj_attributes: sattrs } }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_MKDIR, { where, attributes: sattrs }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_SYMLINK, { where, symlink: { symlink_attributes: sattrs, symlink_data: b('t') } }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_MKNOD, { where, what: { type: 7, pipe_attributes: sattrs } }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_REMOVE, { object: where }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_RMDIR, { object: where }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_RENAME, { from: where, to: where }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_LINK, { file: H, link: where }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_READDIR, { dir: H, cookie: 0n, cookieverf: Buffer.alloc(8), count: 4096 }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_READDIRPLUS, { dir: H, cookie: 0n, cookieverf: Buffer.alloc(8), dircount: 4096, maxcount: 8192 }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_FSSTAT, { fsroot: H }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_FSINFO, { fsroot: H }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_PATHCONF, { object: H }),
  c(NFS_PROG, 3, NFS3.NFSPROC3_COMMIT, { file: H, offset: 0n, count: 0 }),
  c(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_MNT, b('/nowhere')),
  c(MOUNT_PROG, 3, MOUNT3.MOUNTPROC3_UMNT, b('/nowhere')),
  c(MOUNT_PROG, 1, MOUNT1.MOUNTPROC_MNT, b('/nowhere')),
  c(MOUNT_PROG, 1, MOUNT1.MOUNTPROC_UMNT, b('/nowhere')),
  c(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_SET, { prog: 999_999, vers: 1, prot: 6, port: 1 }),
  c(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_UNSET, { prog: 999_998, vers: 1, prot: 6, port: 0 }),
  c(PMAP_PROG_NUMBER, 2, PMAP.PMAPPROC_GETPORT, { prog: 999_997, vers: 1, prot: 6, port: 0 }),
]

const hex = (x: Buffer): string => x.toString('hex')
const FH_32 = Buffer.concat([words(32), Buffer.alloc(32, 7)])

/** Over-long lengths for each case: an nfs_fh3 of 65 bytes, a name of 2^32-1 bytes, a dirpath of 1025. */
function overLong(cs: Case): Buffer[] {
  if (cs.prog === NFS_PROG) {
    const out = [Buffer.concat([words(65), Buffer.alloc(68)])]
    if ([3, 8, 9, 10, 11, 12, 13, 14].includes(cs.p.proc)) out.push(Buffer.concat([FH_32, words(0xffff_ffff), Buffer.alloc(8)]))
    if (cs.p.proc === 15) out.push(Buffer.concat([FH_32, FH_32, words(0xffff_ffff)]))
    return out
  }
  if (cs.prog === MOUNT_PROG) return [Buffer.concat([words(1025), Buffer.alloc(1028, 0x61)]), words(0xffff_ffff)]
  return []
}

/** 32-bit xorshift: the same "random" bytes on every run. */
function noise(n: number, seed: number): Buffer {
  const out = Buffer.alloc((n + 3) & ~3)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out.writeUInt32BE(x, i)
  }
  return out.subarray(0, n)
}

async function stillServes(port: number): Promise<void> {
  const c = await RpcTcpClient.connect('127.0.0.1', port, { timeoutMs: 5000 })
  try {
    await c.call(NFS_PROG, 3, NFS3.NFSPROC3_NULL, undefined)
  } finally {
    await c.close()
  }
}

t.test('every procedure: full args decode; truncated, padded and over-long args are GARBAGE_ARGS', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  let xid = 0x1000
  for (const cs of CASES) {
    const ok = await cl.callRaw(rawRecord(++xid, cs.prog, cs.vers, cs.p.proc, cs.args))
    const value = results(ok, cs.p) as { status?: number } | undefined
    if (cs.prog === NFS_PROG) t.equal(value?.status, nfsstat3.NFS3ERR_BADHANDLE, `${cs.label}: full args decode`)
    else t.pass(`${cs.label}: full args decode`)
    const bad = [
      cs.args.subarray(0, 3),
      Buffer.alloc(0),
      cs.args.subarray(0, cs.args.length - 4),
      Buffer.concat([cs.args, words(0)]),
      ...overLong(cs),
    ]
    for (const [i, args] of bad.entries()) {
      const x = ++xid
      t.equal(hex(await cl.callRaw(rawRecord(x, cs.prog, cs.vers, cs.p.proc, args))), hex(replyWords.garbageArgs(x)), `${cs.label} bad args #${i}`)
    }
  }
})

t.test('rejections have their exact reply bytes', async (t) => {
  const { port } = await startServer(t)
  const cl = await connect(t, port)
  const cases: [string, Buffer, (xid: number) => Buffer][] = [
    ['unknown program', rawRecord(1, 123_456, 1, 0, Buffer.alloc(0)), (x) => replyWords.progUnavail(x)],
    ['NFS v2', rawRecord(2, NFS_PROG, 2, 0, Buffer.alloc(0)), (x) => replyWords.progMismatch(x, 3, 3)],
    ['NFS v4', rawRecord(3, NFS_PROG, 4, 0, Buffer.alloc(0)), (x) => replyWords.progMismatch(x, 3, 3)],
    ['MOUNT v2', rawRecord(4, MOUNT_PROG, 2, 0, Buffer.alloc(0)), (x) => replyWords.progMismatch(x, 1, 3)],
    ['rpcbind v3', rawRecord(5, PMAP_PROG_NUMBER, 3, 0, Buffer.alloc(0)), (x) => replyWords.progMismatch(x, 2, 2)],
    ['rpcbind v4', rawRecord(6, PMAP_PROG_NUMBER, 4, 0, Buffer.alloc(0)), (x) => replyWords.progMismatch(x, 2, 2)],
    ['NFS procedure 22', rawRecord(7, NFS_PROG, 3, 22, Buffer.alloc(0)), (x) => replyWords.procUnavail(x)],
    ['MOUNT procedure 6', rawRecord(8, MOUNT_PROG, 3, 6, Buffer.alloc(0)), (x) => replyWords.procUnavail(x)],
    [
      'AUTH_DH credential',
      rawRecord(9, NFS_PROG, 3, 0, Buffer.alloc(0), { flavor: auth_flavor.AUTH_DH, body: Buffer.alloc(16, 1) }),
      (x) => replyWords.authError(x, auth_stat.AUTH_BADCRED),
    ],
    [
      'AUTH_SYS body cut short',
      rawRecord(10, NFS_PROG, 3, 0, Buffer.alloc(0), { flavor: auth_flavor.AUTH_SYS, body: words(1, 4) }),
      (x) => replyWords.authError(x, auth_stat.AUTH_BADCRED),
    ],
    [
      'AUTH_SYS with 17 gids',
      rawRecord(11, NFS_PROG, 3, 0, Buffer.alloc(0), { flavor: auth_flavor.AUTH_SYS, body: words(1, 0, 0, 0, 17, ...Array<number>(17).fill(5)) }),
      (x) => replyWords.authError(x, auth_stat.AUTH_BADCRED),
    ],
  ]
  for (const [label, record, want] of cases) {
    t.equal(hex(await cl.callRaw(record)), hex(want(record.readUInt32BE(0))), label)
  }
  const v3 = rawRecord(12, NFS_PROG, 3, 0, Buffer.alloc(0))
  v3.writeUInt32BE(3, 8)
  t.equal(hex(await cl.callRaw(v3)), hex(replyWords.rpcMismatch(12)), 'rpcvers 3 → RPC_MISMATCH(2, 2)')
})

function rawSocket(t: Test, port: number): Promise<Socket> {
  const s = netConnect({ port, host: '127.0.0.1' })
  s.on('error', () => undefined)
  t.teardown(() => s.destroy())
  return once(s, 'connect').then(() => s)
}

t.test('framing attacks close only the offending connection', async (t) => {
  const { port } = await startServer(t)
  const before = await connect(t, port)
  for (const mark of [0x7fff_ffff, 0xffff_ffff, 0x8000_0000 | (1024 * 1024 + 64 * 1024 + 1)]) {
    const raw = await RawConnection.open(t, port)
    raw.send(words(mark))
    await raw.closed
    t.pass(`mark ${(mark >>> 0).toString(16)} closed the connection`)
  }
  await before.call(NFS_PROG, 3, NFS3.NFSPROC3_NULL, undefined)
  t.pass('a client connected before is still served')
  await stillServes(port)
  t.pass('a new client is served')

  const cut = await RawConnection.open(t, port)
  cut.send(Buffer.concat([words(0x8000_0000 | 100), Buffer.alloc(10)]))
  cut.socket.end()
  await cut.closed
  t.equal(cut.records.length, 0, 'a truncated record then EOF: no reply, connection closed')

  const noisy = await RawConnection.open(t, port)
  noisy.send(noise(1024 * 1024, 0x5eed))
  noisy.socket.end()
  await noisy.closed
  t.pass('1 MiB of noise: the connection ends')
  await stillServes(port)
  t.pass('the server still serves')
})

t.test('memory stays bounded under huge declared records', async (t) => {
  const { port, server } = await startServer(t)
  const max = 1024 * 1024 + 64 * 1024
  const rss0 = process.memoryUsage().rss
  // 200 connections each declaring a record 1 KiB over the limit: each closed before anything is buffered.
  const over = await Promise.all(Array.from({ length: 200 }, () => RawConnection.open(t, port)))
  for (const r of over) r.send(Buffer.concat([words(0x8000_0000 | (max + 1024)), Buffer.alloc(64 * 1024)]))
  await Promise.all(over.map((r) => r.closed))
  // 50 connections each holding a partial record just under the limit (which also charges FRAGMENT_COST per fragment).
  const body = Buffer.alloc(max - 16 - FRAGMENT_COST, 0x55)
  const partial = await Promise.all(Array.from({ length: 50 }, () => rawSocket(t, port)))
  await Promise.all(partial.map((s) => new Promise<void>((resolve) => s.write(Buffer.concat([words(0x8000_0000 | (max - 8 - FRAGMENT_COST)), body]), () => { resolve() }))))
  await stillServes(port)
  const growth = process.memoryUsage().rss - rss0
  t.ok(growth < 200 * 1024 * 1024, `rss grew by ${Math.round(growth / 1024 / 1024)} MiB`)
  t.equal(server.stats.framingErrors, 200, 'every over-long mark counted as a framing error')
  for (const s of partial) s.destroy()
})

// xdr/record.ts charges each fragment a fixed cost against maxRecordSize: a view per fragment costs ~100 heap bytes.
t.test('a record of one-byte fragments does not amplify memory', async (t) => {
  const { port, server } = await startServer(t)
  const n = 1_000_000
  const wire = Buffer.alloc(n * 5)
  for (let i = 0; i < n; i++) {
    wire.writeUInt32BE(1, i * 5)
    wire[i * 5 + 4] = 0x41
  }
  const conns = await Promise.all(Array.from({ length: 4 }, () => RawConnection.open(t, port)))
  const mem = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers
  const m0 = mem()
  const in0 = server.stats.bytesIn
  for (const c of conns) c.send(wire)
  // Wait until the server has read everything, or closed the connections.
  while (server.stats.bytesIn - in0 < 4 * wire.length && !conns.every((c) => c.socket.destroyed)) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const growth = mem() - m0
  t.ok(growth < 100 * 1024 * 1024, `20 MB of fragment headers grew the heap by ${Math.round(growth / 1024 / 1024)} MiB`)
  for (const c of conns) c.socket.destroy()
  await stillServes(port)
  t.pass('the server still serves')
})

t.test('garbage over UDP: no crash, the server keeps answering', async (t) => {
  const { port } = await startServer(t)
  const junk = await udpSocket(t)
  for (let i = 0; i < 100; i++) junk.send(noise(8 + ((i * 97) % 1400), i + 1), port, '127.0.0.1')
  junk.send(Buffer.alloc(0), port, '127.0.0.1')
  junk.send(words(1, 0), port, '127.0.0.1')
  const s = await udpSocket(t)
  const getattr = rawRecord(0x77, NFS_PROG, 3, NFS3.NFSPROC3_GETATTR.proc, Buffer.from([0, 0, 0]))
  t.equal(hex((await udpExchange(s, port, getattr)) ?? Buffer.alloc(0)), hex(replyWords.garbageArgs(0x77)), 'truncated GETATTR over UDP')
  const longFh = rawRecord(0x78, NFS_PROG, 3, NFS3.NFSPROC3_GETATTR.proc, Buffer.concat([words(65), Buffer.alloc(68)]))
  t.equal(hex((await udpExchange(s, port, longFh)) ?? Buffer.alloc(0)), hex(replyWords.garbageArgs(0x78)), 'nfs_fh3 of 65 bytes over UDP')
  const nul = rawRecord(0x79, NFS_PROG, 3, 0, Buffer.alloc(0))
  t.equal(hex((await udpExchange(s, port, nul)) ?? Buffer.alloc(0)), hex(words(0x79, 1, 0, 0, 0, 0)), 'NULL over UDP still answered')
  await stillServes(port)
  t.pass('TCP still served')
})
