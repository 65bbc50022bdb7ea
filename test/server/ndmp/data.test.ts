/*
 * The DATA service end to end in one process: real memory exports, the real backup format, real
 * data connections (TCP to a test "mover" socket, LOCAL through the session's pipe), GNU tar as
 * the judge of the stream; posts (LOG, FH, NOTIFY) as the DMA would decode them.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { MemoryVfs } from '../../../vfs/memory/memory-vfs.ts'
import * as v4 from '../../../xdr/generated/ndmp4.ts'
import * as v3 from '../../../xdr/generated/ndmp3.ts'
import { localDataPort, u32ToIpv4 } from '../../../server/ndmp/mover/connection.ts'
import type { NdmpExport } from '../../../server/ndmp/service-types.ts'
import { mkdirp, writeFile, symlink, resolve } from '../../backup/helpers.ts'
import { TestSession } from './data-harness.ts'

const M = v4.ndmp4_message
const E = v4.ndmp4_error

async function makeExport(p: string): Promise<NdmpExport> {
  const vfs = new MemoryVfs()
  return { path: p, backend: 'memory', vfs, root: vfs.root() }
}

async function fillTree(e: NdmpExport): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {
    'a.txt': Buffer.from('alpha\n'),
    'dir/b.bin': Buffer.alloc(200_000, 7),
    'dir/sub/c.txt': Buffer.from('gamma '.repeat(1000)),
    'skip.o': Buffer.from('object'),
  }
  await mkdirp(e.vfs, 'dir/sub')
  for (const [p, data] of Object.entries(files)) await writeFile(e.vfs, p, data)
  await symlink(e.vfs, 'dir/link', '../a.txt')
  return files
}

async function readAll(e: NdmpExport, p: string): Promise<Buffer> {
  const ref = await resolve(e.vfs, p)
  const parts: Buffer[] = []
  let off = 0n
  for (;;) {
    const r = await e.vfs.read(ref, off, 65536)
    parts.push(Buffer.from(r.data))
    off += BigInt(r.data.length)
    if (r.eof || r.data.length === 0) break
  }
  return Buffer.concat(parts)
}

/** DATA_LISTEN TCP, then a test mover connects and collects the stream. */
async function listenAndCollect(s: TestSession): Promise<{ done: Promise<Buffer> }> {
  const r = await s.call(M.NDMP4_DATA_LISTEN, { addr_type: 1 })
  if (r.error !== 0) throw new Error(`DATA_LISTEN: ${r.error}`)
  const addr = (r.reply as v4.ndmp4_data_listen_reply).connect_addr
  if (addr.addr_type !== 1) throw new Error('not TCP')
  const a = addr.tcp_addr[0]
  if (a === undefined) throw new Error('no address')
  const sock = net.connect({ host: u32ToIpv4(a.ip_addr), port: a.port })
  const parts: Buffer[] = []
  sock.on('data', (d: Buffer) => parts.push(d))
  const done = new Promise<Buffer>((res, rej) => {
    sock.on('end', () => {
      sock.end()
      res(Buffer.concat(parts))
    })
    sock.on('error', rej)
  })
  await new Promise<void>((res) => sock.once('connect', () => { res(); }))
  await waitState(s, v4.ndmp4_data_state.NDMP4_DATA_STATE_CONNECTED)
  return { done }
}

/** DATA_LISTEN TCP, then a test mover connects and sends `data`. */
async function listenAndSend(s: TestSession, data: Buffer): Promise<void> {
  const r = await s.call(M.NDMP4_DATA_LISTEN, { addr_type: 1 })
  const addr = (r.reply as v4.ndmp4_data_listen_reply).connect_addr
  if (addr.addr_type !== 1) throw new Error('not TCP')
  const a = addr.tcp_addr[0]
  if (a === undefined) throw new Error('no address')
  const sock = net.connect({ host: u32ToIpv4(a.ip_addr), port: a.port })
  sock.on('error', () => undefined)
  await new Promise<void>((res) => sock.once('connect', () => { res(); }))
  sock.end(data)
  await waitState(s, v4.ndmp4_data_state.NDMP4_DATA_STATE_CONNECTED)
}

async function state(s: TestSession): Promise<v4.ndmp4_data_get_state_reply> {
  return (await s.call(M.NDMP4_DATA_GET_STATE)).reply as v4.ndmp4_data_get_state_reply
}

async function waitState(s: TestSession, want: number): Promise<v4.ndmp4_data_get_state_reply> {
  for (let i = 0; i < 300; i++) {
    const st = await state(s)
    if (st.state === want) return st
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`state never became ${want}`)
}

function logs(s: TestSession): string[] {
  return s.postsOf(M.NDMP4_LOG_MESSAGE).map((b) => (b as v4.ndmp4_log_message_post).entry)
}

t.test('backup over TCP: GNU tar lists the stream, FH node form, env, halt SUCCESSFUL; then restore it', async (t) => {
  const dir = t.testdir()
  const exp = await makeExport('/exp')
  const files = await fillTree(exp)
  const s = new TestSession(4, [exp], dir)
  t.teardown(() => s.closeAll())

  const mover = await listenAndCollect(s)
  const start = await s.call(M.NDMP4_DATA_START_BACKUP, {
    butype_name: 'tar',
    env: [{ name: 'FILESYSTEM', value: '/exp' }, { name: 'HIST', value: 'y' }, { name: 'EXCLUDE', value: '*.o' }, { name: 'UPDATE', value: 'y' }, { name: 'USER', value: 'x' }],
  })
  t.equal(start.error, E.NDMP4_NO_ERR)
  const halted = await s.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)
  t.strictSame(halted.body, { reason: v4.ndmp4_data_halt_reason.NDMP4_DATA_HALT_SUCCESSFUL })
  const stream = await mover.done
  const st = await state(s)
  t.equal(st.state, v4.ndmp4_data_state.NDMP4_DATA_STATE_HALTED)
  t.equal(st.operation, v4.ndmp4_data_operation.NDMP4_DATA_OP_BACKUP)
  t.equal(st.bytes_processed, BigInt(stream.length))

  const tape = path.join(dir, 'tape.tar')
  fs.writeFileSync(tape, stream)
  const listing = execFileSync('tar', ['-tf', tape], { encoding: 'utf8' }).split('\n').filter((l) => l !== '' && !l.includes('.tsnfs'))
  for (const p of ['a.txt', 'dir/b.bin', 'dir/sub/c.txt', 'dir/link']) t.ok(listing.some((l) => l.replace(/^\.\//, '') === p), `tar lists ${p}`)
  t.notOk(listing.some((l) => l.includes('skip.o')), 'EXCLUDE left skip.o out')
  const out = path.join(dir, 'x')
  fs.mkdirSync(out)
  execFileSync('tar', ['-xf', tape, '-C', out])
  t.ok(fs.readFileSync(path.join(out, 'dir/b.bin')).equals(files['dir/b.bin'] ?? Buffer.alloc(0)), 'GNU tar extracts b.bin byte for byte')

  const dirs = s.postsOf(M.NDMP4_FH_ADD_DIR).flatMap((b) => (b as v4.ndmp4_fh_add_dir_post).dirs)
  const names = dirs.map((d) => (d.names[0]?.fs_type === 0 ? d.names[0].unix_name.toString() : '?'))
  t.strictSame(names.slice(0, 2), ['.', '..'], 'root first, as "." then ".."')
  t.equal(dirs[0]?.node, dirs[0]?.parent)
  t.ok(names.includes('c.txt') && names.includes('sub'), 'every name has a dir entry')
  const nodes = s.postsOf(M.NDMP4_FH_ADD_NODE).flatMap((b) => (b as v4.ndmp4_fh_add_node_post).nodes)
  t.equal(nodes.length, dirs.length - 1, 'one node per object (the root named twice)')
  const bNode = nodes.find((n) => n.stats[0]?.size === 200_000n)
  t.ok(bNode !== undefined && bNode.fh_info > 0n, 'fh_info is the stream offset')

  const env = (await s.call(M.NDMP4_DATA_GET_ENV)).reply as v4.ndmp4_data_get_env_reply
  const envMap = Object.fromEntries(env.env.map((p) => [p.name, p.value]))
  t.match(envMap, { FILESYSTEM: '/exp', LEVEL: '0', TYPE: 'tar', HIST: 'y', UPDATE: 'y', SNAPSHOT: 'n', USER: 'x' })
  t.ok(logs(s).some((l) => l.includes('read live')), 'a live read is said in a LOG_MESSAGE')
  t.ok(logs(s).some((l) => l.includes('env ignored: USER')))
  t.ok(fs.existsSync(path.join(dir, 'ndmp', 'levels', 'dumpdates.json')), 'UPDATE=y recorded the level')

  t.equal((await s.call(M.NDMP4_DATA_STOP)).error, 0)
  t.equal((await state(s)).state, v4.ndmp4_data_state.NDMP4_DATA_STATE_IDLE)

  // Full restore into another export, under PREFIX.
  const exp2 = await makeExport('/exp2')
  const s2 = new TestSession(4, [exp, exp2], dir)
  t.teardown(() => s2.closeAll())
  await listenAndSend(s2, stream)
  const rec = await s2.call(M.NDMP4_DATA_START_RECOVER, { env: [{ name: 'PREFIX', value: '/exp2/restored' }], nlist: [], butype_name: 'tar' })
  t.equal(rec.error, 0)
  t.strictSame((await s2.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)).body, { reason: 1 })
  for (const p of ['a.txt', 'dir/b.bin', 'dir/sub/c.txt']) t.ok((await readAll(exp2, `restored/${p}`)).equals(files[p] ?? Buffer.alloc(0)), `${p} restored byte for byte`)
  const lf = s2.postsOf(M.NDMP4_LOG_FILE).map((b) => (b as v4.ndmp4_log_file_post).name)
  t.ok(lf.includes('dir/sub/c.txt'), 'LOG_FILE per restored file')

  // Chosen files: one found, one not; LOG_FILE for each name.
  const s3 = new TestSession(4, [exp, exp2], dir)
  t.teardown(() => s3.closeAll())
  await listenAndSend(s3, stream)
  const none = 0xffffffffffffffffn
  const pick = await s3.call(M.NDMP4_DATA_START_RECOVER, {
    env: [{ name: 'FILESYSTEM', value: '/exp' }],
    nlist: [
      { original_path: Buffer.from('dir/sub/c.txt'), destination_path: Buffer.from('/exp2/one/c.txt'), name: Buffer.alloc(0), other_name: Buffer.alloc(0), node: none, fh_info: none },
      { original_path: Buffer.from('nope.txt'), destination_path: Buffer.from('/exp2/one/nope.txt'), name: Buffer.alloc(0), other_name: Buffer.alloc(0), node: none, fh_info: none },
    ],
    butype_name: 'tar',
  })
  t.equal(pick.error, 0)
  await s3.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)
  t.ok((await readAll(exp2, 'one/c.txt')).equals(files['dir/sub/c.txt'] ?? Buffer.alloc(0)), 'the chosen file at its destination')
  t.strictSame(s3.postsOf(M.NDMP4_LOG_FILE), [
    { name: 'dir/sub/c.txt', recovery_status: v4.ndmp4_recovery_status.NDMP4_RECOVERY_SUCCESSFUL },
    { name: 'nope.txt', recovery_status: v4.ndmp4_recovery_status.NDMP4_RECOVERY_FAILED_NOT_FOUND },
  ])

  // RECOVER_FILEHIST: file history only, nothing written.
  const s4 = new TestSession(4, [exp, exp2], dir)
  t.teardown(() => s4.closeAll())
  await listenAndSend(s4, stream)
  t.equal((await s4.call(M.NDMP4_DATA_START_RECOVER_FILEHIST, { env: [{ name: 'HIST_TYPE', value: 'file' }], nlist: [], butype_name: 'tar' })).error, 0)
  t.strictSame((await s4.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)).body, { reason: 1 })
  const fhFiles = s4.postsOf(M.NDMP4_FH_ADD_FILE).flatMap((b) => (b as v4.ndmp4_fh_add_file_post).files)
  const fnames = fhFiles.map((f) => (f.names[0]?.fs_type === 0 ? f.names[0].unix_name.toString() : '?'))
  t.ok(fnames.includes('/dir/sub/c.txt') && fnames.includes('/dir/link'), 'every object in the file form')
  t.equal((await state(s4)).operation, v4.ndmp4_data_operation.NDMP4_DATA_OP_RECOVER_FILEHIST)

  // DIRECT=y with fh_info on a stream the DMA says is compressed: refused before any read (the
  // offsets are the plain stream's), the data service stays CONNECTED for a recover without DIRECT.
  const s5 = new TestSession(4, [exp, exp2], dir)
  t.teardown(() => s5.closeAll())
  await listenAndSend(s5, stream)
  const dar = await s5.call(M.NDMP4_DATA_START_RECOVER, {
    env: [{ name: 'FILESYSTEM', value: '/exp' }, { name: 'DIRECT', value: 'y' }, { name: 'COMPRESS', value: 'gzip' }],
    nlist: [{ original_path: Buffer.from('a.txt'), destination_path: Buffer.from('/exp2/dar/a.txt'), name: Buffer.alloc(0), other_name: Buffer.alloc(0), node: none, fh_info: 1536n }],
    butype_name: 'tar',
  })
  t.equal(dar.error, E.NDMP4_ILLEGAL_ARGS_ERR, 'DIRECT=y with COMPRESS=gzip: NDMP_ILLEGAL_ARGS_ERR')
  t.ok(logs(s5).includes('DATA_START_RECOVER: DIRECT=y on a gzip-compressed stream (COMPRESS=gzip): its file history offsets are those of the uncompressed stream, so direct access cannot seek in it; recover without DIRECT=y (the stream is read from its start)'), 'a LOG says why')
  t.equal((await state(s5)).state, v4.ndmp4_data_state.NDMP4_DATA_STATE_CONNECTED, 'nothing started, nothing read')
  t.same(s5.postsOf(M.NDMP4_NOTIFY_DATA_READ), [], 'no NOTIFY_DATA_READ')
})

t.test('a corrupt stream halts INTERNAL_ERROR with a LOG naming the offset; what came before is restored', async (t) => {
  const dir = t.testdir()
  const exp = await makeExport('/exp')
  await fillTree(exp)
  const s = new TestSession(4, [exp], dir)
  t.teardown(() => s.closeAll())
  const mover = await listenAndCollect(s)
  await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'tar', env: [{ name: 'FILESYSTEM', value: '/exp' }] })
  await s.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)
  const stream = await mover.done
  // Break the header checksum of the member that comes after a.txt.
  const at = stream.indexOf(Buffer.from('dir/b.bin'))
  t.ok(at > 0)
  const bad = Buffer.from(stream)
  const hdr = at - (at % 512)
  bad[hdr + 148] = 0x39
  bad[hdr + 149] = 0x39

  const exp2 = await makeExport('/r')
  const s2 = new TestSession(4, [exp2], dir)
  t.teardown(() => s2.closeAll())
  await listenAndSend(s2, bad)
  t.equal((await s2.call(M.NDMP4_DATA_START_RECOVER, { env: [{ name: 'PREFIX', value: '/r' }], nlist: [], butype_name: 'tar' })).error, 0)
  t.strictSame((await s2.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)).body, { reason: v4.ndmp4_data_halt_reason.NDMP4_DATA_HALT_INTERNAL_ERROR })
  const err = logs(s2).find((l) => l.startsWith('recover stopped:'))
  t.ok(err !== undefined, `LOG names the offset: ${err ?? ''}`)
  t.match(err ?? '', new RegExp(`at byte ${hdr}\\b`))
  t.ok((await readAll(exp2, 'a.txt')).equals(Buffer.from('alpha\n')), 'a.txt, before the fault, is restored')
})

t.test('refusals: wrong state, unknown FILESYSTEM, bad butype, bogus listen type; abort and stop', async (t) => {
  const dir = t.testdir()
  const exp = await makeExport('/exp')
  const s = new TestSession(4, [exp], dir)
  t.teardown(() => s.closeAll())
  const st = await state(s)
  t.match(st, { state: 0, operation: 0, halt_reason: 0, unsupported: 3 })
  t.equal((await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'tar', env: [{ name: 'FILESYSTEM', value: '/exp' }] })).error, E.NDMP4_ILLEGAL_STATE_ERR, 'START_BACKUP in IDLE')
  t.equal((await s.call(M.NDMP4_DATA_ABORT)).error, E.NDMP4_ILLEGAL_STATE_ERR)
  t.equal((await s.call(M.NDMP4_DATA_STOP)).error, E.NDMP4_ILLEGAL_STATE_ERR)
  t.equal((await s.call(M.NDMP4_DATA_GET_ENV)).error, E.NDMP4_ILLEGAL_STATE_ERR)
  t.equal((await s.call(M.NDMP4_DATA_LISTEN, { addr_type: 123 })).error, E.NDMP4_ILLEGAL_ARGS_ERR)

  // LOCAL: listen, the session's mover side connects through the pipe.
  const l = await s.call(M.NDMP4_DATA_LISTEN, { addr_type: 0 })
  t.strictSame(l, { error: 0, reply: { error: 0, connect_addr: { addr_type: 0 } } })
  t.equal((await s.call(M.NDMP4_DATA_LISTEN, { addr_type: 0 })).error, E.NDMP4_ILLEGAL_STATE_ERR)
  const moverEnd = localDataPort(s).connect()
  await waitState(s, v4.ndmp4_data_state.NDMP4_DATA_STATE_CONNECTED)
  t.equal((await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'dump', env: [{ name: 'FILESYSTEM', value: '/exp' }] })).error, E.NDMP4_ILLEGAL_ARGS_ERR)
  t.equal((await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'tar', env: [{ name: 'FILESYSTEM', value: '/nope' }] })).error, E.NDMP4_ILLEGAL_ARGS_ERR)
  t.ok(logs(s).some((l) => l.includes('/nope is not an export')), 'the LOG says why')
  t.equal((await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'tar', env: [{ name: 'FILESYSTEM', value: '/exp' }, { name: 'LEVEL', value: 'x' }] })).error, E.NDMP4_ILLEGAL_ARGS_ERR)
  t.equal((await state(s)).state, v4.ndmp4_data_state.NDMP4_DATA_STATE_CONNECTED, 'still CONNECTED after refusals')

  // A backup through the LOCAL pipe, aborted while the mover reads nothing.
  await writeFile(exp.vfs, 'big', Buffer.alloc(8 * 1024 * 1024, 1))
  t.equal((await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'tar', env: [{ name: 'FILESYSTEM', value: '/exp' }] })).error, 0)
  t.equal((await state(s)).state, v4.ndmp4_data_state.NDMP4_DATA_STATE_ACTIVE)
  t.equal((await s.call(M.NDMP4_DATA_STOP)).error, E.NDMP4_ILLEGAL_STATE_ERR, 'STOP while ACTIVE')
  t.equal((await s.call(M.NDMP4_DATA_ABORT)).error, 0)
  t.match(await state(s), { state: v4.ndmp4_data_state.NDMP4_DATA_STATE_HALTED, halt_reason: v4.ndmp4_data_halt_reason.NDMP4_DATA_HALT_ABORTED })
  t.strictSame((await s.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)).body, { reason: 2 })
  moverEnd.close()
  t.equal((await s.call(M.NDMP4_DATA_STOP)).error, 0)
  t.equal((await state(s)).state, 0)
})

t.test('v3: listen, backup and the v3 shapes of posts', async (t) => {
  const dir = t.testdir()
  const exp = await makeExport('/exp')
  await fillTree(exp)
  const s = new TestSession(3, [exp], dir)
  t.teardown(() => s.closeAll())
  const M3 = v3.ndmp3_message
  const r = await s.call(M3.NDMP3_DATA_LISTEN, { addr_type: 1 })
  const addr = (r.reply as v3.ndmp3_data_listen_reply).data_connection_addr
  if (addr.addr_type !== 1) throw new Error('not TCP')
  const sock = net.connect({ host: u32ToIpv4(addr.tcp_addr.ip_addr), port: addr.tcp_addr.port })
  const parts: Buffer[] = []
  sock.on('data', (d: Buffer) => parts.push(d))
  const ended = new Promise<void>((res) => sock.on('end', () => {
    sock.end()
    res()
  }))
  await new Promise<void>((res) => sock.once('connect', () => { res(); }))
  for (let i = 0; i < 100 && ((await s.call(M3.NDMP3_DATA_GET_STATE)).reply as v3.ndmp3_data_get_state_reply).state !== 4; i++) await new Promise((res) => setTimeout(res, 20))
  t.equal((await s.call(M3.NDMP3_DATA_START_BACKUP, { bu_type: 'tar', env: [{ name: 'FILESYSTEM', value: '/exp' }, { name: 'HIST', value: 'y' }, { name: 'HIST_TYPE', value: 'file' }] })).error, 0)
  t.strictSame((await s.waitPost(M3.NDMP3_NOTIFY_DATA_HALTED)).body, { reason: 1, text_reason: 'successful' })
  await ended
  t.ok(Buffer.concat(parts).length > 200_000)
  const files = s.postsOf(M3.NDMP3_FH_ADD_FILE).flatMap((b) => (b as v3.ndmp3_fh_add_file_request).files)
  t.ok(files.length >= 6, `${files.length} files in FH_ADD_FILE`)
  t.ok(s.postsOf(M3.NDMP3_LOG_MESSAGE).length > 0)
})

t.test('a file changing during the backup is noted in a LOG and the job completes', async (t) => {
  const dir = t.testdir()
  const exp = await makeExport('/exp')
  await writeFile(exp.vfs, 'grow.bin', Buffer.alloc(16 * 1024 * 1024, 3))
  const s = new TestSession(4, [exp], dir)
  t.teardown(() => s.closeAll())
  t.equal((await s.call(M.NDMP4_DATA_LISTEN, { addr_type: 0 })).error, 0)
  const mover = localDataPort(s).connect()
  await waitState(s, v4.ndmp4_data_state.NDMP4_DATA_STATE_CONNECTED)
  t.equal((await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'tar', env: [{ name: 'FILESYSTEM', value: '/exp' }] })).error, 0)
  // The mover reads nothing yet: the backup waits on the pipe while the file grows under it.
  await new Promise((r) => setTimeout(r, 300))
  const ref = await resolve(exp.vfs, 'grow.bin')
  await exp.vfs.write(ref, 16n * 1024n * 1024n, Buffer.alloc(4096, 4), 'unstable')
  let total = 0
  for (;;) {
    const chunk = await mover.read(1 << 20)
    if (chunk === null) break
    total += chunk.length
  }
  t.strictSame((await s.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)).body, { reason: v4.ndmp4_data_halt_reason.NDMP4_DATA_HALT_SUCCESSFUL }, 'the job completes')
  t.ok(total > 16 * 1024 * 1024)
  const noted = logs(s).find((l) => l.includes('changed while read'))
  t.ok(noted !== undefined && noted.includes('grow.bin'), `noted: ${noted ?? ''}`)
})

t.test('an export with snapshots: the backup reads the snapshot, says so, releases it', async (t) => {
  const dir = t.testdir()
  const live = await makeExport('/snap')
  await writeFile(live.vfs, 'now.txt', 'live data\n')
  const frozen = new MemoryVfs()
  await writeFile(frozen, 'then.txt', 'frozen data\n')
  let released = 0
  const exp: NdmpExport = {
    ...live,
    snapshot: () => Promise.resolve({ vfs: frozen, root: frozen.root(), name: 'ndmp-1', release: () => {
      released++
      return Promise.resolve()
    } }),
  }
  const s = new TestSession(4, [exp], dir)
  t.teardown(() => s.closeAll())
  const mover = await listenAndCollect(s)
  t.equal((await s.call(M.NDMP4_DATA_START_BACKUP, { butype_name: 'tar', env: [{ name: 'FILESYSTEM', value: '/snap' }] })).error, 0)
  t.strictSame((await s.waitPost(M.NDMP4_NOTIFY_DATA_HALTED)).body, { reason: 1 })
  const stream = (await mover.done).toString('latin1')
  t.ok(stream.includes('frozen data') && !stream.includes('live data'), 'the stream holds the snapshot, not the live tree')
  t.equal(released, 1, 'the snapshot is released after the backup')
  t.ok(logs(s).some((l) => l.includes('reading a snapshot')))
  const env = (await s.call(M.NDMP4_DATA_GET_ENV)).reply as v4.ndmp4_data_get_env_reply
  t.ok(env.env.some((p) => p.name === 'SNAPSHOT' && p.value === 'y'))
})
