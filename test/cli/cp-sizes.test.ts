/*
 * tsnfs cp against servers that do not match the 1 MiB block: small odd
 * transfer sizes (rtmax = wtmax = 10,000: 8 KiB blocks), READs answered
 * short (a proxy asks the server for less than the client did), WRITEs
 * answered short (the proxy cuts the data: the client must send the rest),
 * write verifiers that change (what the COMMIT's does not cover is read
 * again from the source and re-sent; one COMMIT otherwise),
 * files around the 1 MiB block and past the window of WRITEs in flight and
 * of data held for COMMIT, and errors in the middle of a copy both ways (the
 * export fills up; the local disk is full), which must print the exact
 * error and exit 1.
 */
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryVfs } from '../../vfs/memory/memory-vfs.ts'
import { PROC_COMMIT, PROC_WRITE, startVerfProxy } from '../client/file-proxy.ts'
import { nfsArgsAt, startProxy } from '../client/proxy.ts'
import { startServer } from '../helpers/server.ts'
import { ensureBuilt, ok, tsnfs } from './run-cli.ts'

await ensureBuilt()
// Dozens of CLI processes (about a second of start-up each on a loaded 2-core machine): a guard against a hang, not a speed limit.
t.setTimeout(300_000)

const MIB = 1024 * 1024
const EXPORTS = '/export *(rw,insecure,no_root_squash,backend=memory)\n'
const work = mkdtempSync(join(tmpdir(), 'tsnfs-cp-sizes-'))
t.teardown(() => {
  rmSync(work, { recursive: true, force: true })
})

/** A local file of n random bytes. */
function local(name: string, n: number): { path: string; data: Buffer } {
  const path = join(work, name)
  const data = n === 0 ? Buffer.alloc(0) : randomBytes(n)
  writeFileSync(path, data)
  return { path, data }
}

t.test('transfer sizes of 10,000 bytes (8 KiB blocks): files around the block, up and down byte-exact', async t => {
  const fx = await startServer(t, EXPORTS, { nfs3Limits: { rtmax: 10_000, rtpref: 10_000, wtmax: 10_000, wtpref: 10_000 } })
  for (const n of [0, 1, 8191, 8192, 8193, 3 * MIB + 1]) {
    const src = local(`small-${String(n)}`, n)
    await ok(t, ['cp', src.path, fx.url('/export', `/s${String(n)}`)])
    const back = join(work, `small-back-${String(n)}`)
    await ok(t, ['cp', fx.url('/export', `/s${String(n)}`), back])
    t.ok(readFileSync(back).equals(src.data), `${String(n)} bytes: up and down byte-exact`)
  }
})

t.test('READs answered short (the server asked for 1,000 bytes less): downloads byte-exact', async t => {
  const fx = await startServer(t, EXPORTS)
  const proxy = await startProxy(t, fx.port)
  let shortened = 0
  proxy.rewrite = call => {
    const argsAt = nfsArgsAt(call, 6)
    if (argsAt < 0) return call
    // READ3args: nfs_fh3 (opaque<64>), offset (uint64), count (uint32).
    const countAt = argsAt + 4 + Math.ceil(call.readUInt32BE(argsAt) / 4) * 4 + 8
    const count = call.readUInt32BE(countAt)
    if (count <= 1000) return call
    const out = Buffer.from(call)
    out.writeUInt32BE(count - 1000, countAt)
    shortened++
    return out
  }
  for (const n of [MIB - 1, MIB + 1, 3 * MIB + 1]) {
    const src = local(`short-${String(n)}`, n)
    await ok(t, ['cp', src.path, fx.url('/export', `/r${String(n)}`)])
    const back = join(work, `short-back-${String(n)}`)
    await ok(t, ['cp', `nfs://127.0.0.1/export/r${String(n)}?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`, back])
    t.ok(readFileSync(back).equals(src.data), `${String(n)} bytes through short READs: byte-exact`)
  }
  t.ok(shortened >= 7, `READs were answered short (${String(shortened)})`)
})

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

t.test('WRITEs answered short (the proxy cuts 1,000 bytes off each larger one): the client sends the rest, uploads byte-exact', async t => {
  const fx = await startServer(t, EXPORTS)
  const proxy = await startProxy(t, fx.port)
  let writes = 0
  let shortened = 0
  proxy.rewrite = call => {
    const argsAt = nfsArgsAt(call, 7)
    if (argsAt < 0) return call
    writes++
    // WRITE3args: nfs_fh3 (opaque<64>), offset (uint64), count, stable, data (opaque<>).
    const countAt = argsAt + 4 + Math.ceil(call.readUInt32BE(argsAt) / 4) * 4 + 8
    const count = call.readUInt32BE(countAt)
    const dataAt = countAt + 8
    if (count <= 1000 || call.readUInt32BE(dataAt) !== count) return call
    // The server then writes count - 1000 bytes and says so; the last 1,000 are the client's to send again.
    const n = count - 1000
    const out = Buffer.alloc(dataAt + 4 + Math.ceil(n / 4) * 4)
    call.copy(out, 0, 0, dataAt + 4 + n)
    out.writeUInt32BE(n, countAt)
    out.writeUInt32BE(n, dataAt)
    shortened++
    return out
  }
  const via = (name: string): string => `nfs://127.0.0.1/export/${name}?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`
  // Blocks of 1 MiB: each WRITE of more than 1,000 bytes is cut short and followed by one of the last 1,000; a 1-byte tail is not cut.
  for (const [n, cut, sent] of [[MIB - 1, 1, 2], [MIB, 1, 2], [3 * MIB + 1, 3, 7]] as const) {
    writes = 0
    shortened = 0
    const src = local(`shortw-${String(n)}`, n)
    await ok(t, ['cp', src.path, via(`w${String(n)}`)])
    t.equal(shortened, cut, `${String(n)} bytes: every WRITE of more than 1,000 bytes was answered short`)
    t.equal(writes, sent, `${String(n)} bytes: each short WRITE followed by one WRITE of the rest`)
    // Read back straight from the server, not through the proxy.
    const back = join(work, `shortw-back-${String(n)}`)
    await ok(t, ['cp', fx.url('/export', `/w${String(n)}`), back])
    t.equal(sha256(readFileSync(back)), sha256(src.data), `${String(n)} bytes through short WRITEs: the same sha256`)
  }
})

t.test('uploads COMMIT once; ranges whose write verifier the COMMIT does not match are read again and re-sent', async t => {
  const fx = await startServer(t, EXPORTS)
  const proxy = await startVerfProxy(t, fx.port)
  const via = (name: string): string => `nfs://127.0.0.1/export/${name}?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`
  const src = local('verf', 5 * MIB + 3)
  const check = async (name: string, what: string): Promise<void> => {
    const back = join(work, `verf-back-${name}`)
    await ok(t, ['cp', fx.url('/export', `/${name}`), back])
    t.equal(sha256(readFileSync(back)), sha256(src.data), `${what}: the same sha256`)
  }
  // Unchanged verifiers: 6 WRITEs (5 blocks and 3 bytes) and one COMMIT at the end.
  proxy.calls.clear()
  await ok(t, ['cp', src.path, via('v0')])
  t.equal(proxy.calls.get(PROC_WRITE), 6, 'one WRITE per block')
  t.equal(proxy.calls.get(PROC_COMMIT), 1, 'one COMMIT')
  await check('v0', 'steady verifiers')
  // The first two WRITE replies carry another verifier (a server that restarted after them): those two ranges go again.
  proxy.calls.clear()
  proxy.flip.set(PROC_WRITE, 2)
  await ok(t, ['cp', src.path, via('v1')])
  t.equal(proxy.calls.get(PROC_WRITE), 8, 'the two blocks whose verifier changed re-sent')
  t.equal(proxy.calls.get(PROC_COMMIT), 1, 'the re-sends are FILE_SYNC: no second COMMIT')
  await check('v1', 'two blocks re-sent')
  // The COMMIT answers another verifier: every range is read again and re-sent.
  proxy.calls.clear()
  proxy.flip.set(PROC_COMMIT, 1)
  await ok(t, ['cp', src.path, via('v2')])
  t.equal(proxy.calls.get(PROC_WRITE), 12, 'all 6 WRITEs re-sent')
  t.equal(proxy.calls.get(PROC_COMMIT), 1, 'one COMMIT')
  await check('v2', 'everything re-sent')
})

t.test('1 MiB blocks: sizes around the block and past the WRITEs in flight and the data held for COMMIT, up and down the same sha256', async t => {
  const fx = await startServer(t, EXPORTS)
  for (const n of [MIB - 1, MIB, MIB + 1, 2 * MIB - 1, 33 * MIB + 7]) {
    const src = local(`mib-${String(n)}`, n)
    await ok(t, ['cp', src.path, fx.url('/export', `/m${String(n)}`)])
    const back = join(work, `mib-back-${String(n)}`)
    await ok(t, ['cp', fx.url('/export', `/m${String(n)}`), back])
    t.equal(sha256(readFileSync(back)), sha256(src.data), `${String(n)} bytes: up and down, the same sha256`)
    rmSync(back)
  }
})

t.test('an export that fills up in the middle of an upload: the exact error, exit 1', async t => {
  const fx = await startServer(t, EXPORTS, { backends: new Map([['memory', () => new MemoryVfs({ capacityBytes: BigInt(2 * MIB) })]]) })
  const src = local('too-big', 5 * MIB)
  const url = fx.url('/export', '/full')
  const r = await tsnfs(['cp', src.path, url])
  t.equal(r.code, 1, 'exit 1')
  t.equal(r.stderr, `tsnfs cp: ${url}: No space left on device\n`)
})

t.test('a full local disk in the middle of a download: the exact error, exit 1', async t => {
  const fx = await startServer(t, EXPORTS)
  const src = local('to-full', 3 * MIB)
  await ok(t, ['cp', src.path, fx.url('/export', '/tofull')])
  const r = await tsnfs(['cp', fx.url('/export', '/tofull'), '/dev/full'])
  t.equal(r.code, 1, 'exit 1')
  t.equal(r.stderr, 'tsnfs cp: /dev/full: No space left on device\n')
})

t.test('a READ that fails in the middle of a download: the exact error, exit 1, no success printed', async t => {
  const fx = await startServer(t, EXPORTS)
  const src = local('read-fails', 5 * MIB)
  await ok(t, ['cp', src.path, fx.url('/export', '/readfails')])
  const proxy = await startProxy(t, fx.port)
  let failed = 0
  proxy.intercept = call => {
    const argsAt = nfsArgsAt(call, 6)
    if (argsAt < 0) return null
    // READ3args: nfs_fh3, offset (uint64), count. The READ of the third block is answered NFS3ERR_IO (5), no attributes.
    if (call.readBigUInt64BE(argsAt + 4 + Math.ceil(call.readUInt32BE(argsAt) / 4) * 4) !== BigInt(2 * MIB)) return null
    failed++
    const reply = Buffer.alloc(32)
    // RFC 5531 accepted reply: xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier (flavor, length), SUCCESS; then READ3resfail.
    ;[call.readUInt32BE(0), 1, 0, 0, 0, 0, 5, 0].forEach((w, i) => reply.writeUInt32BE(w, i * 4))
    return reply
  }
  const url = `nfs://127.0.0.1/export/readfails?nfsport=${String(proxy.port)}&mountport=${String(fx.port)}`
  const r = await tsnfs(['cp', url, join(work, 'read-fails-back')])
  t.equal(failed, 1, 'the READ of the third block was answered with the error')
  t.equal(r.code, 1, 'exit 1')
  t.equal(r.stdout, '', 'nothing on stdout')
  t.equal(r.stderr, `tsnfs cp: ${url}: Input/output error\n`)
})

t.test('server → server between block sizes of 8 KiB and 1 MiB both ways, and within one mount: byte-exact', async t => {
  const small = await startServer(t, EXPORTS, { nfs3Limits: { rtmax: 10_000, rtpref: 10_000, wtmax: 10_000, wtpref: 10_000 } })
  const large = await startServer(t, EXPORTS)
  for (const n of [0, 1, MIB + 1, 3 * MIB + 1]) {
    const src = local(`s2s-${String(n)}`, n)
    const name = `/x${String(n)}`
    await ok(t, ['cp', src.path, large.url('/export', name)])
    await ok(t, ['cp', large.url('/export', name), small.url('/export', name)])
    await ok(t, ['cp', small.url('/export', name), large.url('/export', `${name}.back`)])
    await ok(t, ['cp', large.url('/export', `${name}.back`), large.url('/export', `${name}.again`)])
    const back = join(work, `s2s-back-${String(n)}`)
    await ok(t, ['cp', large.url('/export', `${name}.again`), back])
    t.ok(readFileSync(back).equals(src.data), `${String(n)} bytes: 1 MiB → 8 KiB → 1 MiB blocks → the same mount, byte-exact`)
  }
})

t.test('server → server into an export that fills up: the exact error, exit 1', async t => {
  const from = await startServer(t, EXPORTS)
  const full = await startServer(t, EXPORTS, { backends: new Map([['memory', () => new MemoryVfs({ capacityBytes: BigInt(2 * MIB) })]]) })
  const src = local('s2s-big', 5 * MIB)
  await ok(t, ['cp', src.path, from.url('/export', '/big')])
  const url = full.url('/export', '/big')
  const r = await tsnfs(['cp', from.url('/export', '/big'), url])
  t.equal(r.code, 1, 'exit 1')
  t.equal(r.stderr, `tsnfs cp: ${url}: No space left on device\n`)
})
